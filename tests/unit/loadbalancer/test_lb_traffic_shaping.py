"""Token bucket rate limiting."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.loadbalancer import LoadBalancerConfigError, RateLimitConfig, RateLimiterRegistry, TokenBucket


@settings(max_examples=150, deadline=None)
@given(
    rate=st.floats(0.1, 1000),
    burst=st.integers(1, 100),
    gaps=st.lists(st.floats(0, 0.2), min_size=1, max_size=400),
)
def test_never_admits_more_than_burst_plus_rate_times_t(rate: float, burst: int, gaps: list[float]) -> None:
    bucket = TokenBucket(RateLimitConfig(requests_per_second=rate, burst_size=burst), now=0.0)
    now, admitted = 0.0, 0
    for gap in gaps:
        now += gap
        admitted += bucket.try_acquire(now)
        assert admitted <= math.floor(burst + rate * now + 1e-6)


def test_burst_then_refill_and_retry_after() -> None:
    bucket = TokenBucket(RateLimitConfig(requests_per_second=10, burst_size=5), now=0.0)
    assert [bucket.try_acquire(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.retry_after(0.0) == pytest.approx(0.1)
    assert not bucket.try_acquire(0.05)
    assert bucket.retry_after(0.05) == pytest.approx(0.05)
    assert bucket.try_acquire(0.1)
    assert bucket.retry_after(100.0) == 0.0
    assert bucket.tokens == 5
    assert bucket.retry_after(100.0, 6) == math.inf


def test_clock_stepping_back_adds_no_tokens() -> None:
    bucket = TokenBucket(RateLimitConfig(requests_per_second=1, burst_size=1), now=10.0)
    assert bucket.try_acquire(10.0)
    assert not bucket.try_acquire(5.0)
    assert not bucket.try_acquire(10.5)
    assert bucket.try_acquire(11.0)


@pytest.mark.parametrize("rps", [0, -1, -0.5])
def test_zero_or_negative_rate_is_invalid(rps: float) -> None:
    with pytest.raises(LoadBalancerConfigError, match="requests_per_second"):
        RateLimiterRegistry().set_limit("node2", rps, 50)
    with pytest.raises(LoadBalancerConfigError, match="burst_size"):
        RateLimitConfig(burst_size=0).validate()


def test_registry_matches_seed_and_unlimited_nodes_pass() -> None:
    reg = RateLimiterRegistry()
    status = reg.set_limit("node2", 1000, 50, now=0.0)
    assert status.to_dict() == {"applied": True, "node": "node2", "rps": 1000, "burst": 50}
    assert sum(reg.try_acquire("node2", 0.0) for _ in range(60)) == 50
    assert not reg.has_token("node2", 0.0)
    assert reg.retry_after("node2", 0.0) == pytest.approx(0.001)
    assert all(reg.try_acquire("node1", 0.0) for _ in range(1000))
    reg.remove("node2")
    assert reg.try_acquire("node2", 0.0) and reg.limit("node2") is None
