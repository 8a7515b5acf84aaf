import pytest

from rustyray.health import HealthConfig, ProbeInputs, evaluate_probes

CFG = HealthConfig(loop_stall_s=10.0, startup_timeout_s=60.0)


def inputs(**kw):
    base = dict(
        node="node2",
        started=True,
        joined=True,
        connected_peers=2,
        cluster_size=3,
        last_tick_age_s=0.1,
        uptime_s=30.0,
    )
    base.update(kw)
    return ProbeInputs(**base)


@pytest.mark.parametrize(
    ("kw", "live", "ready", "startup"),
    [
        ({}, "Alive", "Ready", "Complete"),
        ({"connected_peers": 0}, "Alive", "NotReady", "Complete"),
        ({"connected_peers": 0, "cluster_size": 1}, "Alive", "Ready", "Complete"),  # single node
        ({"joined": False}, "Alive", "NotReady", "Pending"),
        ({"started": False, "joined": False, "last_tick_age_s": None}, "Alive", "NotReady", "Pending"),
        ({"joined": False, "uptime_s": 60.0}, "Dead", "NotReady", "Failed"),  # join timed out
        ({"started": False, "joined": False, "uptime_s": 61.0}, "Dead", "NotReady", "Failed"),
        ({"startup_error": "bind: address in use"}, "Dead", "NotReady", "Failed"),
        ({"last_tick_age_s": 10.0}, "Alive", "Ready", "Complete"),  # at the limit
        ({"last_tick_age_s": 10.5}, "Dead", "NotReady", "Complete"),  # stalled loop
        ({"last_tick_age_s": None}, "Dead", "NotReady", "Complete"),  # never ticked after startup
        ({"joined": False, "last_tick_age_s": 11.0}, "Dead", "NotReady", "Pending"),
    ],
)
def test_probe_table(kw, live, ready, startup):
    r = evaluate_probes(inputs(**kw), CFG)
    assert (r.liveness.value, r.readiness.value, r.startup.value) == (live, ready, startup)
    assert r.reason
    assert r.readiness_http_status == (200 if ready == "Ready" else 503)
    assert r.liveness_http_status == (200 if live == "Alive" else 503)


def test_probe_output_shape_matches_seed():
    d = evaluate_probes(inputs()).to_dict()
    assert {k: d[k] for k in ("node", "liveness", "readiness", "startup")} == {
        "node": "node2",
        "liveness": "Alive",
        "readiness": "Ready",
        "startup": "Complete",
    }
    assert "no connected peers" in evaluate_probes(inputs(connected_peers=0)).reason
