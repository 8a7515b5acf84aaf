"""Round robin, least connections, adaptive and the factory."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.loadbalancer import (
    Adaptive,
    AdaptiveConfig,
    LeastConnections,
    LoadBalancerConfigError,
    NoAvailableNodeError,
    NodeLoad,
    RoundRobin,
    StrategyName,
    UnknownStrategyError,
    create_strategy,
)
from rustyray.loadbalancer.strategies import ConsistentHash

node_lists = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=8, unique=True)


@settings(max_examples=60, deadline=None)
@given(nodes=node_lists, warmup=st.integers(0, 50), window=st.integers(1, 200))
def test_round_robin_is_fair_within_one_over_any_window(nodes: list[str], warmup: int, window: int) -> None:
    rr = RoundRobin()
    for _ in range(warmup):
        rr.select(nodes, None, {})
    counts = Counter(rr.select(nodes, None, {}).selected_node for _ in range(window))
    per_node = [counts.get(n, 0) for n in nodes]
    assert max(per_node) - min(per_node) <= 1
    assert rr.request_count == warmup + window


def test_round_robin_cycles_exactly_and_reports_request_count() -> None:
    rr = RoundRobin()
    picks = [rr.select(["node1", "node2", "node3"], None, {}) for _ in range(5)]
    assert [p.selected_node for p in picks] == ["node1", "node2", "node3", "node1", "node2"]
    assert picks[-1].to_dict() == {"selected_node": "node2", "strategy": "RoundRobin", "request_count": 5}


def test_least_connections_matches_seed_example_and_breaks_ties_by_name() -> None:
    stats = {"node1": NodeLoad(active_connections=45), "node2": NodeLoad(active_connections=52),
             "node3": NodeLoad(active_connections=38)}
    sel = LeastConnections().select(["node1", "node2", "node3"], None, stats)
    assert sel.selected_node == "node3"
    assert sel.node_connections == {"node1": 45, "node2": 52, "node3": 38}
    tied = {"b": NodeLoad(active_connections=1), "a": NodeLoad(active_connections=1)}
    assert LeastConnections().select(["b", "a"], None, tied).selected_node == "a"
    by_in_flight = {"a": NodeLoad(active_connections=1, in_flight=4), "b": NodeLoad(active_connections=1)}
    assert LeastConnections().select(["a", "b"], None, by_in_flight).selected_node == "b"


@settings(max_examples=60, deadline=None)
@given(conns=st.dictionaries(st.text(min_size=1, max_size=4), st.integers(0, 100), min_size=1, max_size=8))
def test_least_connections_picks_a_minimum(conns: dict[str, int]) -> None:
    stats = {n: NodeLoad(active_connections=c) for n, c in conns.items()}
    nodes = list(conns)
    random.Random(0).shuffle(nodes)
    sel = LeastConnections().select(nodes, None, stats)
    assert conns[sel.selected_node] == min(conns.values())
    assert sel.selected_node == LeastConnections().select(sorted(nodes), None, stats).selected_node


def test_adaptive_scores_rank_a_loaded_node_worse_and_prefer_the_lighter_of_two() -> None:
    stats = {
        "node1": NodeLoad(latency_ewma_ms=5, in_flight=1, cpu_load=0.1, mem_load=0.2),
        "node2": NodeLoad(latency_ewma_ms=200, error_rate=0.3, in_flight=40, cpu_load=0.9, mem_load=0.8),
        "node3": NodeLoad(latency_ewma_ms=60, in_flight=10, cpu_load=0.5, mem_load=0.5),
    }
    strat = Adaptive(random.Random(7))
    sel = strat.select(list(stats), None, stats)
    scores = sel.load_scores
    assert scores is not None
    assert scores["node1"] < scores["node3"] < scores["node2"]
    assert all(0 <= s <= 100 for s in scores.values())
    # Power of two choices: the worst node can only win if sampled with itself, which never happens.
    picks = Counter(strat.select(list(stats), None, stats).selected_node for _ in range(300))
    assert picks["node2"] == 0
    assert picks["node1"] > picks["node3"] > 0


def test_adaptive_is_deterministic_for_a_seeded_rng() -> None:
    stats = {f"n{i}": NodeLoad(in_flight=i) for i in range(6)}

    def run(seed: int) -> list[str]:
        strat = Adaptive(random.Random(seed))
        return [strat.select(list(stats), None, stats).selected_node for _ in range(50)]

    assert run(3) == run(3)
    assert len(set(run(3))) > 1, "two-choice sampling should not always land on one node"


def test_adaptive_config_validation_names_the_field() -> None:
    with pytest.raises(LoadBalancerConfigError, match="latency_ref_ms"):
        AdaptiveConfig(latency_ref_ms=0).validate()
    with pytest.raises(ValueError, match="weight"):
        AdaptiveConfig(latency_weight=0.9).validate()


def test_node_load_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="cpu_load"):
        NodeLoad(cpu_load=1.5)
    with pytest.raises(ValueError):
        NodeLoad(active_connections=-1)


def test_factory_builds_each_strategy_and_rejects_unknown_names() -> None:
    assert isinstance(create_strategy("RoundRobin"), RoundRobin)
    assert isinstance(create_strategy("LeastConnections"), LeastConnections)
    assert isinstance(create_strategy(StrategyName.CONSISTENT_HASH), ConsistentHash)
    assert isinstance(create_strategy("Adaptive", rng=random.Random(1)), Adaptive)
    assert [s.value for s in StrategyName] == ["RoundRobin", "LeastConnections", "ConsistentHash", "Adaptive"]
    with pytest.raises(UnknownStrategyError, match=r"'Random'.*RoundRobin"):
        create_strategy("Random")
    with pytest.raises(ValueError, match="rng"):
        create_strategy("Adaptive")


@pytest.mark.parametrize("name", [s.value for s in StrategyName])
def test_every_strategy_refuses_an_empty_candidate_list(name: str) -> None:
    with pytest.raises(NoAvailableNodeError):
        create_strategy(name, rng=random.Random(0)).select([], "k", {})
