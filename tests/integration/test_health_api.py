"""Health endpoints (NETWORKING-014 to 019) against a live in-process 3-node cluster."""

from __future__ import annotations

import time

import pytest
from harness import local_cluster, wait_for

from rustyray.api_binding import to_wire


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(3, tmp_path) as c:
        yield c


def health(c, node_id="node1"):
    return c.node(node_id).services["health"]


async def get(c, path, **params):
    r = await c.client.get(path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def test_heartbeats_phi_aggregate_and_probes_follow_a_stopped_node(cluster):
    c = cluster
    await wait_for(lambda: all(r.heartbeats >= 2 for r in health(c).monitor.status(0.0)), 10)
    hb = await get(c, "/health/heartbeat/status")
    assert hb["local_node"] == "node1" and hb["interval_ms"] == 1000 and hb["timeout_ms"] == 5000
    assert [p["node_id"] for p in hb["peers"]] == ["node2", "node3"]
    assert all(p["status"] == "Healthy" and p["last_heartbeat_ms"] < 2500 for p in hb["peers"])
    phi = await get(c, "/health/failure-detector/phi-values")
    assert phi["threshold"] == 8.0 and {p["node"] for p in phi["phi_values"]} == {"node2", "node3"}
    agg = await get(c, "/health/aggregate")
    assert agg["overall_health"] == "Healthy" and [n["node"] for n in agg["nodes"]] == [
        "node1",
        "node2",
        "node3",
    ]
    probe = await get(c, "/health/liveness/node2")
    assert probe == {
        "node": "node2",
        "liveness": "Alive",
        "readiness": "Ready",
        "startup": "Complete",
        "reason": "joined and connected",
        "observed_by": "node2",
    }
    init = (await c.client.post("/manager/initialize")).json()
    assert {x["name"]: x["status"] for x in init["components"]}["health_monitor"] == "healthy"

    await c.node("node3").stop()

    def phi_of(node: str) -> float:
        return next(p["phi"] for p in to_wire(health(c).api.phi_values())["phi_values"] if p["node"] == node)

    start = phi_of("node3")
    await wait_for(lambda: phi_of("node3") > start + 1.0, 10)
    await wait_for(lambda: to_wire(health(c).api.heartbeat_status())["peers"][1]["status"] == "Suspected", 10)
    phi = await get(c, "/health/failure-detector/phi-values")
    rows = {p["node"]: p for p in phi["phi_values"]}
    assert rows["node3"]["status"] == "Suspected" and rows["node2"]["status"] == "Healthy"
    assert rows["node3"]["phi"] > rows["node2"]["phi"]
    hb = await get(c, "/health/heartbeat/status")
    node3 = next(p for p in hb["peers"] if p["node_id"] == "node3")
    assert node3["last_heartbeat_ms"] > 4000 and node3["connected"] is False
    agg = await get(c, "/health/aggregate")
    scores = {n["node"]: n for n in agg["nodes"]}
    assert scores["node3"]["health"] == "Unhealthy" and scores["node3"]["score"] == 0.0
    assert scores["node2"]["health"] == "Healthy" and agg["overall_health"] != "Healthy"
    # the stopped node cannot answer for itself: the fronted node's view
    for kind in ("liveness", "readiness"):
        probe = await get(c, f"/health/{kind}/node3")
        assert (
            probe["liveness"] == "Dead"
            and probe["readiness"] == "NotReady"
            and probe["observed_by"] == "node1"
        )
    init = (await c.client.post("/manager/initialize")).json()
    status = {x["name"]: x for x in init["components"]}["health_monitor"]
    assert status["status"] == "degraded" and "node3" in status["detail"]
    r = await c.client.get("/health/liveness/node9")
    assert r.status_code == 404 and r.json()["field"] == "node"


async def test_health_checks_run_for_real_and_feed_the_aggregate(cluster):
    c = cluster
    node2 = c.node("node2")
    r = await c.client.post(
        "/health/checks/add",
        json={
            "node_id": "node2",
            "check_type": "TCP",
            "endpoint": f"127.0.0.1:{node2.tcp_port}",
            "interval_ms": 200,
            "timeout_ms": 1000,
        },
    )
    tcp = r.json()
    assert r.status_code == 200 and tcp["success"] is True and tcp["status"] == "active"
    assert tcp["check_id"].startswith("hc-")
    http = (
        await c.client.post(
            "/health/checks/add",
            json={
                "node_id": "node3",
                "check_type": "HTTP",
                "endpoint": "http://127.0.0.1:1/health",
                "interval_ms": 200,
                "timeout_ms": 500,
            },
        )
    ).json()
    custom = (
        await c.client.post(
            "/health/checks/add",
            json={"node_id": "node2", "check_type": "Custom", "endpoint": "event_loop", "interval_ms": 200},
        )
    ).json()

    async def statuses() -> dict[str, dict]:
        return {ch["check_id"]: ch for ch in (await get(c, "/health/checks"))["checks"]}

    ids = (tcp["check_id"], http["check_id"], custom["check_id"])
    await wait_for(lambda: all(health(c).checker.result(k).runs >= 1 for k in ids), 10)
    st = await statuses()
    assert st[tcp["check_id"]]["status"] == "passing" and st[tcp["check_id"]]["latency_ms"] > 0
    assert st[custom["check_id"]]["status"] == "passing"
    assert st[http["check_id"]]["status"] == "failing" and st[http["check_id"]]["error"]
    agg = await get(c, "/health/aggregate")
    comps = {n["node"]: n["components"] for n in agg["nodes"]}
    assert comps["node2"]["checks"] == 1.0 and comps["node3"]["checks"] == 0.0
    # the custom check follows the node: stop node2 and it fails
    await node2.stop()
    await wait_for(lambda: health(c).checker.result(custom["check_id"]).status.value == "failing", 10)
    r = await c.client.delete(f"/health/checks/{http['check_id']}")
    assert r.status_code == 200 and r.json()["removed"] is True
    assert http["check_id"] not in await statuses()
    r = await c.client.delete(f"/health/checks/{http['check_id']}")
    assert r.status_code == 404 and r.json()["field"] == "check_id"

    bad = [
        ({"node_id": "node2", "check_type": "SMTP", "endpoint": "x:1"}, 422, "check_type"),
        ({"node_id": "node2", "check_type": "TCP", "endpoint": "nohost"}, 422, "endpoint"),
        ({"node_id": "node2", "check_type": "HTTP", "endpoint": "ftp://x"}, 422, "endpoint"),
        ({"node_id": "node2", "check_type": "Custom", "endpoint": "no_such_check"}, 422, "endpoint"),
        ({"node_id": "node9", "check_type": "TCP", "endpoint": "127.0.0.1:1"}, 404, "node_id"),
        (
            {"node_id": "node2", "check_type": "TCP", "endpoint": "127.0.0.1:1", "interval_ms": 0},
            422,
            "interval_ms",
        ),
        ({"check_type": "TCP", "endpoint": "127.0.0.1:1"}, 422, "node_id"),
    ]
    for body, status, field in bad:
        r = await c.client.post("/health/checks/add", json=body)
        assert r.status_code == status and r.json()["field"] == field, (body, r.text)


async def test_recovery_reconnects_for_real_and_quarantines_a_dead_node(cluster):
    c = cluster
    r = await c.client.post(
        "/health/recovery/trigger", json={"node_id": "node2", "strategy": "ExponentialBackoff"}
    )
    body = r.json()
    assert body["recovery_initiated"] is True and body["node"] == "node2" and body["attempt"] == 1
    assert body["max_attempts"] == 3 and body["next_retry_ms"] == pytest.approx(2000, abs=50)
    again = (await c.client.post("/health/recovery/trigger", json={"node_id": "node2"})).json()
    assert again["recovery_initiated"] is False and again["phase"] == "Waiting"

    node1 = c.node("node1")
    await c.node("node3").stop()
    await wait_for(lambda: not node1.peers["node3"].connected, 10)
    errors_before = node1.stats.connection_errors
    r = await c.client.post("/health/recovery/trigger", json={"node_id": "node3", "strategy": "Immediate"})
    assert r.json()["recovery_initiated"] is True
    await wait_for(lambda: health(c).recovery.is_quarantined("node3", time.monotonic()), 10)
    st = await get(c, "/health/recovery/node3")
    assert st["phase"] == "Quarantined" and st["quarantined"] is True and st["connected"] is False
    assert [a["attempt"] for a in st["attempts"]] == [1, 2, 3]
    assert all(a["success"] is False and a["error"] for a in st["attempts"])
    assert node1.stats.connection_errors > errors_before  # the attempts really dialled
    r = await c.client.post("/health/recovery/trigger", json={"node_id": "node3", "strategy": "Immediate"})
    assert r.json()["recovery_initiated"] is False and r.json()["phase"] == "Quarantined"

    # the node2 recovery completes by reconnecting (it is connected, so attempt 1 succeeds)
    await wait_for(lambda: health(c).recovery.recovered >= 1, 10)
    st = await get(c, "/health/recovery/node2")
    assert st["phase"] == "Idle" and st["attempts"][-1]["success"] is True

    for body, status, field in [
        ({"node_id": "node2", "strategy": "Yolo"}, 422, "strategy"),
        ({"node_id": "ghost"}, 404, "node_id"),
        ({"node_id": "node1"}, 422, "node_id"),
        ({"strategy": "Fixed"}, 422, "node_id"),
    ]:
        r = await c.client.post("/health/recovery/trigger", json=body)
        assert r.status_code == status and r.json()["field"] == field, (body, r.text)
