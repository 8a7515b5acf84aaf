"""NodeSelector: the send gate and selection as a query, driven with a fake clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.loadbalancer import (
    BreakerRegistry,
    CircuitBreakerConfig,
    CircuitState,
    LoadBalancerConfigError,
    NodeStatsTracker,
    RateLimiterRegistry,
    StrategyName,
    create_strategy,
)
from rustyray.loadbalancer.selection import NodeSelector, Refusal, plain_number

NODES = ["a", "b", "c"]


def selector(failure_threshold: int = 2, open_timeout_sec: float = 5.0) -> NodeSelector:
    breakers = BreakerRegistry(CircuitBreakerConfig(failure_threshold=failure_threshold,
                                                    open_timeout_sec=open_timeout_sec))
    strategies = {n: create_strategy(n, rng=random.Random(7)) for n in StrategyName}
    return NodeSelector(breakers, RateLimiterRegistry(), NodeStatsTracker(), strategies)


def test_an_open_circuit_refuses_with_its_state_and_when_it_half_opens() -> None:
    s = selector()
    for t in (0.0, 1.0):
        assert s.admit("b", t) is None
        s.record("b", False, 5.0, t)
    refusal = s.admit("b", 2.0)
    assert refusal == Refusal("circuit_open", "circuit open for b (Open, 2 consecutive failures; half-open in 4.0 s)")
    assert s.refused == {"rate_limited": 0, "circuit_open": 1}
    assert s.open_circuits(2.0) == ["b"]
    assert s.admit("b", 6.0) is None, "the half-open trial"
    assert s.admit("b", 6.1) == Refusal("circuit_open", "circuit open for b (HalfOpen, 2 consecutive failures)")
    s.record("b", True, 1.0, 6.2)
    assert s.breakers.state("b", 6.2) is CircuitState.CLOSED and s.open_circuits(6.2) == []


def test_an_empty_bucket_refuses_with_the_limit_and_the_wait() -> None:
    s = selector()
    s.set_rate_limit("b", 2.0, 1, now=0.0)
    assert s.admit("b", 0.0) is None
    assert s.admit("b", 0.1) == Refusal("rate_limited", "rate limited: b allows 2 req/s, burst 1; retry after 0.400 s")
    assert s.refused["rate_limited"] == 1
    assert s.admit("b", 0.5) is None, "refilled"
    assert s.tracker.snapshot()["b"].in_flight == 2


def test_bad_limits_name_the_field_and_install_nothing() -> None:
    s = selector()
    with pytest.raises(LoadBalancerConfigError, match="requests_per_second"):
        s.set_rate_limit("b", 0, 5, now=0.0)
    with pytest.raises(LoadBalancerConfigError, match="burst_size"):
        s.set_rate_limit("b", 1, -1, now=0.0)
    assert s.limits == {} and s.admit("b", 0.0) is None


def test_skip_reasons_say_why_and_take_nothing() -> None:
    s = selector(failure_threshold=1)
    s.admit("b", 0.0)
    s.record("b", False, 1.0, 0.0)
    s.set_rate_limit("c", 1.0, 1, now=0.0)
    for _ in range(3):  # asking again gives the same answer
        assert s.skip_reasons(["a", "b", "c", "d"], ["a", "b", "c"], 1.0) == {"b": "circuit Open", "d": "not live"}
    assert s.skip_reasons(["c"], ["c"], 0.5) == {}, "c's token is still there: peeking took none"
    assert s.admit("c", 0.5) is None
    assert s.skip_reasons(["c"], ["c"], 0.6) == {"c": "rate limited"}


def test_choose_is_a_query_and_refresh_feeds_least_connections() -> None:
    s = selector()
    s.refresh({"a": 3, "b": 1, "c": 2})
    assert s.choose(StrategyName.LEAST_CONNECTIONS, NODES, None).selected_node == "b"
    first = s.choose(StrategyName.CONSISTENT_HASH, NODES, "user_1").selected_node
    assert all(s.choose(StrategyName.CONSISTENT_HASH, NODES, "user_1").selected_node == first for _ in range(20)), \
        "the bounded-load assignment is released at once"
    assert [s.choose(StrategyName.ROUND_ROBIN, NODES, None).selected_node for _ in range(3)] == NODES


def test_breaker_rows_cover_known_nodes_and_every_breaker() -> None:
    s = selector(failure_threshold=1)
    s.admit("z", 0.0)
    s.record("z", False, 1.0, 0.0)
    rows = s.breaker_statuses({"a", "b"}, 1.0)
    assert [(r.node, r.state) for r in rows] == [("a", CircuitState.CLOSED), ("b", CircuitState.CLOSED),
                                                 ("z", CircuitState.OPEN)]


def test_plain_number() -> None:
    assert plain_number(2.0) == 2 and isinstance(plain_number(2.0), int) and plain_number(0.01) == 0.01


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["admit", "ok", "fail", "peek"]), st.sampled_from(NODES),
                          st.floats(0, 2)), max_size=60))
def test_every_admitted_send_is_in_flight_until_recorded_and_peeking_changes_nothing(ops) -> None:
    s = selector()
    s.set_rate_limit("c", 3.0, 2, now=0.0)
    now, open_sends, refusals = 0.0, dict.fromkeys(NODES, 0), 0
    for op, node, dt in ops:
        now += dt
        if op == "admit":
            if s.admit(node, now) is None:
                open_sends[node] += 1
            else:
                refusals += 1
        elif op == "peek":
            before = s.skip_reasons(NODES, NODES, now)
            assert s.skip_reasons(NODES, NODES, now) == before
            assert (node in before) == (s.admit(node, now) is not None), "the peek predicts the gate"
            if node in before:
                refusals += 1
            else:
                open_sends[node] += 1
        elif open_sends[node]:
            open_sends[node] -= 1
            s.record(node, op == "ok", 1.0, now)
        snap = s.tracker.snapshot()
        assert {n: (snap[n].in_flight if n in snap else 0) for n in NODES} == open_sends
        assert sum(s.refused.values()) == refusals
