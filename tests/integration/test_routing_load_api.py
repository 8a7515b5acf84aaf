"""The node-side load generator (``routing.load_run``, ``POST /routing/load-test``) between two in-process nodes."""

from __future__ import annotations

import pytest
from harness import api_receive_log, local_cluster

FAST = {"routing": {"retry_initial_s": 0.05, "retry_max_s": 0.2}}


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(2, tmp_path, sections=FAST) as c:
        yield c


def _heartbeats(c, node_id: str) -> int:
    return api_receive_log(c.node(node_id).services["routing"].api)["processed_by_type"].get("Heartbeat", 0)


async def test_load_run_between_two_nodes_is_counted_by_the_receiver(cluster):
    c = cluster
    before = _heartbeats(c, "node2")
    r = await c.node("node1").call_api("routing", "load_run", {"target_node": "node2", "seconds": 1.0,
                                                                "in_flight": 8, "payload_bytes": 64})
    assert r["node"] == "node1" and r["target_node"] == "node2" and r["delivery"] == "AtLeastOnce"
    assert r["acknowledged"] > 0 and r["failed"] == 0 and r["sent"] == r["acknowledged"]
    assert 1.0 <= r["elapsed_s"] < 3.0 and r["acked_per_s"] > 0
    assert 0 < r["latency_p50_ms"] <= r["latency_p99_ms"] <= r["latency_max_ms"]
    # every acknowledged send ran node2's handler (AtLeastOnce: a retransmission may run it once more)
    assert _heartbeats(c, "node2") - before >= r["acknowledged"]
    assert _heartbeats(c, "node1") == 0  # nothing was sent to the sender itself


async def test_load_test_route_is_admin_only_and_checks_its_input(cluster):
    c = cluster
    body = {"target_node": "node1", "seconds": 0.3, "in_flight": 2}
    r = await c.client.post("/routing/load-test", params={"node": "node2"}, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["node"] == "node2" and r.json()["acknowledged"] > 0
    async with c.client_with() as anonymous:
        assert (await anonymous.post("/routing/load-test", json=body)).status_code == 401
    r = await c.client.post("/routing/load-test", json={**body, "target_node": "node9"})
    assert r.status_code == 404, r.text
    r = await c.client.post("/routing/load-test", json={**body, "delivery": "Sometimes"})
    assert r.status_code == 422 and "delivery" in r.text
