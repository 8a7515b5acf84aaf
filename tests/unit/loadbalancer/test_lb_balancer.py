"""The LoadBalancer facade and node stats (the sans-I/O rule is in tests/unit/test_sans_io_guard.py)."""

from __future__ import annotations

import random

import pytest

from rustyray.loadbalancer import (
    BreakerRegistry,
    CircuitBreakerConfig,
    CircuitState,
    ConsistentHash,
    LoadBalancer,
    NoAvailableNodeError,
    NodeStatsTracker,
    RoundRobin,
    create_strategy,
)


def test_open_breaker_node_is_skipped_until_half_open() -> None:
    lb = LoadBalancer(RoundRobin(), BreakerRegistry(CircuitBreakerConfig(failure_threshold=2, open_timeout_sec=5)))
    nodes = ["a", "b", "c"]
    lb.complete("b", 0.0, ok=False, latency_ms=1)
    lb.complete("b", 0.0, ok=False, latency_ms=1)
    picks = [lb.select(nodes, 1.0).selected_node for _ in range(6)]
    assert "b" not in picks
    # HalfOpen admits exactly one trial; the other callers do not see b until it reports
    picks = [lb.select(nodes, 5.0).selected_node for _ in range(6)]
    assert picks.count("b") == 1
    lb.complete("b", 5.5, ok=True, latency_ms=3)
    assert lb.breakers.state("b", 5.5) is CircuitState.CLOSED


def test_rate_limited_node_is_skipped_and_all_filtered_raises() -> None:
    lb = LoadBalancer(RoundRobin())
    lb.limiters.set_limit("a", 1, 1, now=0.0)
    picks = [lb.select(["a", "b"], 0.0).selected_node for _ in range(4)]
    assert picks.count("a") == 1
    lb.limiters.set_limit("b", 1, 1, now=0.0)
    lb.select(["b"], 0.0)
    with pytest.raises(NoAvailableNodeError):
        lb.select(["a", "b"], 0.0)


def test_complete_feeds_stats_and_bounded_loads() -> None:
    lb = LoadBalancer(ConsistentHash())
    sel = lb.select(["a", "b"], 0.0, key="user")
    assert lb.stats.snapshot()[sel.selected_node].in_flight == 1
    assert lb.strategy.loads[sel.selected_node] == 1
    lb.complete(sel.selected_node, 0.1, ok=False, latency_ms=40)
    snap = lb.stats.snapshot()[sel.selected_node]
    assert snap.in_flight == 0 and snap.latency_ewma_ms == 40 and 0 < snap.error_rate <= 1
    assert lb.strategy.loads[sel.selected_node] == 0


def test_adaptive_through_the_balancer_avoids_a_slow_node() -> None:
    stats = NodeStatsTracker()
    for _ in range(20):
        stats.on_request_start("slow")
        stats.on_request_end("slow", 900, ok=False)
        stats.on_request_start("fast")
        stats.on_request_end("fast", 2, ok=True)
    stats.on_request_start("mid")
    stats.on_request_end("mid", 60, ok=True)
    lb = LoadBalancer(create_strategy("Adaptive", rng=random.Random(5)), stats=stats)
    picks = [lb.select(["slow", "fast", "mid"], 0.0).selected_node for _ in range(200)]
    assert "slow" not in picks
    assert picks.count("fast") > picks.count("mid")


def test_ewma_converges_to_recent_samples() -> None:
    t = NodeStatsTracker()
    for _ in range(60):
        t.on_request_start("n")
        t.on_request_end("n", 100, ok=True)
    assert t.snapshot()["n"].latency_ewma_ms == pytest.approx(100)
    for _ in range(60):
        t.on_request_start("n")
        t.on_request_end("n", 10, ok=False)
    snap = t.snapshot()["n"]
    assert snap.latency_ewma_ms == pytest.approx(10, abs=0.1)
    assert snap.error_rate > 0.99
