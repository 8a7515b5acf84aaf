import pytest

from rustyray.health import HealthAggregator, HealthConfig, HealthState, NodeSignals
from rustyray.health.aggregator import NodeHealth, classify, overall, signal_scores

H, D, U = HealthState.HEALTHY, HealthState.DEGRADED, HealthState.UNHEALTHY
CFG = HealthConfig()


@pytest.mark.parametrize(
    ("signals", "expected"),
    [
        (NodeSignals("n", phi=0.0), {"phi": 1.0}),
        (NodeSignals("n", phi=4.0), {"phi": 1.0}),
        (NodeSignals("n", phi=6.0), {"phi": 0.5}),
        (NodeSignals("n", phi=8.0), {"phi": 0.0}),
        (NodeSignals("n", phi=50.0), {"phi": 0.0}),
        (NodeSignals("n", checks_passed=3, checks_total=4), {"checks": 0.75}),
        (NodeSignals("n", checks_passed=0, checks_total=0), {}),  # no checks ran: no signal
        (NodeSignals("n", error_rate=0.0), {"errors": 1.0}),
        (NodeSignals("n", error_rate=0.25), {"errors": 0.5}),
        (NodeSignals("n", error_rate=0.9), {"errors": 0.0}),
        (NodeSignals("n", latency_ms=50.0), {"latency": 1.0}),
        (NodeSignals("n", latency_ms=550.0), {"latency": 0.5}),
        (NodeSignals("n", latency_ms=5000.0), {"latency": 0.0}),
    ],
)
def test_signal_scores_table(signals, expected):
    assert signal_scores(signals, CFG) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("signals", "score", "health"),
    [
        (NodeSignals("n", phi=1.0, checks_passed=2, checks_total=2, error_rate=0.0, latency_ms=10), 1.0, H),
        # weights .4/.3/.2/.1: phi 0.5 -> 1 - 0.4*0.5 = 0.8
        (NodeSignals("n", phi=6.0, checks_passed=2, checks_total=2, error_rate=0.0, latency_ms=10), 0.8, D),
        # only checks present: weight renormalised to 1
        (NodeSignals("n", checks_passed=1, checks_total=2), 0.5, D),
        (NodeSignals("n", checks_passed=1, checks_total=3), 1 / 3, U),
        # phi at the threshold: suspected, overrides perfect other signals
        (NodeSignals("n", phi=8.0, checks_passed=5, checks_total=5, error_rate=0.0, latency_ms=1), 0.0, U),
        # nothing vouches for the node
        (NodeSignals("n"), 0.0, U),
        (NodeSignals("n", phi=0.5, error_rate=0.05), (0.4 + 0.2 * 0.9) / 0.6, H),
    ],
)
def test_node_score_table(signals, score, health):
    result = HealthAggregator().score_node(signals)
    assert result.score == pytest.approx(score)
    assert result.health is health


@pytest.mark.parametrize(
    ("score", "state"), [(1.0, H), (0.9, H), (0.899, D), (0.5, D), (0.499, U), (0.0, U)]
)
def test_classify_boundaries(score, state):
    assert classify(score, CFG) is state


def nodes(*scores):
    return [NodeHealth(f"n{i}", s, classify(s, CFG), {}) for i, s in enumerate(scores)]


@pytest.mark.parametrize(
    ("scores", "verdict"),
    [
        ((1.0, 0.98, 0.85), H),  # the seed example
        ((1.0, 0.95, 0.95, 0.95), H),
        ((1.0, 0.85, 0.85), D),  # only a third Healthy
        ((0.95, 0.95, 0.0), D),  # mean 0.63
        ((1.0, 1.0, 1.0, 0.7, 0.7), D),  # 60 % Healthy but mean 0.88 < 0.9
        ((1.0, 0.0, 0.0), U),  # majority Unhealthy
        ((1.0, 0.0), D),  # exactly half down is not a lost majority
        ((0.55, 0.45, 0.45), U),  # mean below 0.5
        ((), U),
    ],
)
def test_cluster_verdict_table(scores, verdict):
    assert overall(nodes(*scores), CFG) is verdict


def test_aggregate_output_shape_matches_seed():
    agg = HealthAggregator()
    report = agg.aggregate(
        [
            NodeSignals("node1", phi=0.3, checks_passed=3, checks_total=3, error_rate=0.0, latency_ms=3),
            NodeSignals("node2", phi=1.0, checks_passed=3, checks_total=3, error_rate=0.02, latency_ms=40),
            NodeSignals("node3", phi=5.0, checks_passed=3, checks_total=3, error_rate=0.01, latency_ms=80),
        ]
    )
    d = report.to_dict()
    assert set(d) == {"overall_health", "cluster_score", "nodes"}
    assert d["overall_health"] == "Healthy"
    assert [n["health"] for n in d["nodes"]] == ["Healthy", "Healthy", "Degraded"]
    assert all(set(n) == {"node", "score", "health"} for n in d["nodes"])
    assert d["cluster_score"] == pytest.approx(sum(n.score for n in report.nodes) / 3, abs=1e-3)
    assert set(report.to_dict(detail=True)["nodes"][0]["components"]) == {"phi", "checks", "errors", "latency"}


def test_bad_inputs_and_config():
    agg = HealthAggregator()
    with pytest.raises(ValueError, match="error_rate"):
        agg.score_node(NodeSignals("n", error_rate=1.5))
    with pytest.raises(ValueError, match="checks_passed"):
        agg.score_node(NodeSignals("n", checks_passed=3, checks_total=2))
    with pytest.raises(ValueError, match="phi_floor"):
        HealthConfig(phi_floor=9.0).validate()
    with pytest.raises(ValueError, match="healthy_score"):
        HealthConfig(healthy_score=0.4).validate()
    with pytest.raises(ValueError, match="weight_phi"):
        HealthConfig(weight_phi=0, weight_checks=0, weight_errors=0, weight_latency=0).validate()
    with pytest.raises(ValueError, match="recovery_max_attempts"):
        HealthConfig(recovery_max_attempts=0).validate()
    assert HealthConfig.local().validate().quarantine_s < HealthConfig.lan().quarantine_s
