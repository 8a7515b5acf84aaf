"""Retry delays and the retry budget."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.loadbalancer import (
    LoadBalancerConfigError,
    RetryBudget,
    RetryBudgetConfig,
    RetryPolicy,
    RetryStrategy,
)

policies = st.builds(
    lambda s, attempts, initial, extra, mult: RetryPolicy(
        strategy=s, max_attempts=attempts, initial_delay_ms=initial, max_delay_ms=initial + extra, multiplier=mult
    ),
    st.sampled_from(list(RetryStrategy)),
    st.integers(1, 20),
    st.floats(0.001, 10_000),
    st.floats(0, 100_000),
    st.floats(1.0, 10.0),
)


@settings(max_examples=200, deadline=None)
@given(policy=policies, attempt=st.integers(1, 5000), seed=st.integers(0, 2**32))
def test_delay_is_within_zero_and_max(policy: RetryPolicy, attempt: int, seed: int) -> None:
    policy.validate()
    d = policy.delay(attempt, random.Random(seed))
    assert 0.0 <= d <= policy.max_delay_ms


@settings(max_examples=100, deadline=None)
@given(policy=policies, attempt=st.integers(1, 200))
def test_exponential_never_shrinks_and_doubles_until_capped(policy: RetryPolicy, attempt: int) -> None:
    p = RetryPolicy(strategy=RetryStrategy.EXPONENTIAL_BACKOFF, initial_delay_ms=policy.initial_delay_ms,
                    max_delay_ms=policy.max_delay_ms, multiplier=policy.multiplier)
    rng = random.Random(0)
    a, b = p.delay(attempt, rng), p.delay(attempt + 1, rng)
    assert b >= a
    if b < p.max_delay_ms:
        assert b == pytest.approx(a * p.multiplier)


def test_seed_example_exponential_and_fixed() -> None:
    p = RetryPolicy.from_request("ExponentialBackoff", 3, 100, 5000)
    rng = random.Random(1)
    assert [p.delay(a, rng) for a in range(1, 8)] == [100, 200, 400, 800, 1600, 3200, 5000]
    assert p.should_retry(2) and not p.should_retry(3)
    f = RetryPolicy(strategy=RetryStrategy.FIXED, initial_delay_ms=250)
    assert {f.delay(a, rng) for a in range(1, 10)} == {250}
    assert [s.value for s in RetryStrategy] == ["Fixed", "ExponentialBackoff", "JitteredBackoff"]


def test_full_jitter_spreads_over_the_whole_range() -> None:
    p = RetryPolicy(strategy=RetryStrategy.JITTERED_BACKOFF, initial_delay_ms=1000, max_delay_ms=1000)
    rng = random.Random(42)
    samples = [p.delay(1, rng) for _ in range(2000)]
    assert min(samples) < 50 and max(samples) > 950
    assert 400 < sum(samples) / len(samples) < 600


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"initial_delay_ms": 0}, "initial_delay_ms"),
        ({"initial_delay_ms": -5}, "initial_delay_ms"),
        ({"max_delay_ms": -1, "initial_delay_ms": 1}, "max_delay_ms"),
        ({"initial_delay_ms": 6000, "max_delay_ms": 5000}, "initial_delay_ms"),
        ({"multiplier": 0.5}, "multiplier"),
    ],
)
def test_policy_validation_names_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(LoadBalancerConfigError, match=field):
        RetryPolicy(**kwargs).validate()


def test_unknown_strategy_and_bad_attempt_are_rejected() -> None:
    with pytest.raises(ValueError, match="strategy"):
        RetryPolicy.from_request("Linear", 3, 100, 5000)
    with pytest.raises(ValueError, match="attempt"):
        RetryPolicy().delay(0, random.Random(0))


def test_budget_allows_the_floor_with_no_traffic_then_refuses() -> None:
    budget = RetryBudget(RetryBudgetConfig(retry_ratio=0.2, min_retries_per_sec=1, ttl_sec=10))
    allowed = sum(budget.try_retry(0.5) for _ in range(50))
    assert allowed == 10
    assert not budget.try_retry(9.9)
    assert budget.try_retry(10.0), "the first bucket has aged out of the 10 s window"


@settings(max_examples=60, deadline=None)
@given(
    ratio=st.sampled_from([0.0, 0.1, 0.2, 0.5]),
    floor=st.sampled_from([0.0, 0.5, 2.0]),
    events=st.lists(st.tuples(st.booleans(), st.floats(0, 0.5)), max_size=300),
)
def test_budget_caps_retries_by_ratio_plus_floor_in_every_window(
    ratio: float, floor: float, events: list[tuple[bool, float]]
) -> None:
    cfg = RetryBudgetConfig(retry_ratio=ratio, min_retries_per_sec=floor, ttl_sec=5)
    budget = RetryBudget(cfg)
    now, log = 0.0, []
    for is_retry, dt in events:
        now += dt
        if not is_retry:
            budget.record_request(now)
            log.append(("req", now))
            continue
        # the window at this moment: whole seconds > now - ttl
        start = int(now) - cfg.ttl_sec + 1
        reqs = sum(1 for k, t in log if k == "req" and int(t) >= start)
        rets = sum(1 for k, t in log if k == "retry" and int(t) >= start)
        granted = budget.try_retry(now)
        # A retry is granted exactly when the window has room for one more: retries (this one included)
        # <= floor*ttl + ratio*requests. (Retries granted earlier stay counted after the requests that paid
        # for them slide out, so the window may later be over budget: that only blocks retries.)
        assert granted == (rets + 1 <= floor * cfg.ttl_sec + ratio * reqs + 1e-9)
        if granted:
            log.append(("retry", now))


def test_budget_config_validation() -> None:
    with pytest.raises(LoadBalancerConfigError, match="retry_ratio"):
        RetryBudgetConfig(retry_ratio=-0.1).validate()
    with pytest.raises(LoadBalancerConfigError, match="ttl_sec"):
        RetryBudgetConfig(ttl_sec=0).validate()
