"""Membership live on an in-process cluster: SWIM detection, Raft failover, join, leave, bootstrap."""

from __future__ import annotations

import asyncio
import time

import pytest
from harness import local_cluster, wait_for


async def _states(client, node=None):
    params = {"node": node} if node else {}
    body = (await client.get("/membership/swim/status", params=params)).json()
    return {m["node"]: m["status"] for m in body["members"]}


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(3, tmp_path) as c:
        await wait_for(lambda: c.node("node1").services["membership"].raft.leader is not None, 15)
        yield c


async def test_status_endpoints_report_the_live_cluster(cluster):
    c = cluster
    for _ in range(250):  # the bootstrap's cluster record may be committed but not yet applied here
        raft = (await c.client.get("/membership/raft/status")).json()
        if raft["applied_index"] == raft["commit_index"]:
            break
        await asyncio.sleep(0.02)
    assert raft["members"] == ["node1", "node2", "node3"]
    assert raft["state"] in ("Leader", "Follower") and raft["leader"] in raft["members"]
    assert raft["commit_index"] >= 1 and raft["applied_index"] == raft["commit_index"]
    assert await _states(c.client) == {"node1": "Alive", "node2": "Alive", "node3": "Alive"}
    gossip = (await c.client.get("/autodiscovery/gossip/state", params={"node": "node2"})).json()
    assert {m["node"] for m in gossip["members"]} == {"node1", "node2", "node3"}
    assert gossip["gossip_interval_ms"] > 0 and gossip["fanout"] >= 1
    view = (await c.client.get("/membership/view")).json()
    assert view["total_members"] == 3 and all(m["status"] == "Active" and m["joined_at"] for m in view["members"])
    nodes = (await c.client.get("/nodes")).json()["nodes"]
    assert {n["state"] for n in nodes} == {"Alive"}


async def test_a_stopped_node_becomes_suspect_then_dead(cluster):
    c = cluster
    version = (await c.client.get("/membership/view")).json()["view_version"]
    await c.node("node3").stop(graceful=False)
    seen = []

    async def observe():
        while True:
            state = (await _states(c.client))["node3"]
            if not seen or seen[-1] != state:
                seen.append(state)
            if state == "Dead":
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(observe(), 20)
    assert seen[-2:] == ["Suspect", "Dead"]
    after = (await c.client.get("/membership/view")).json()
    assert after["view_version"] > version and "node3" not in {m["id"] for m in after["members"]}
    hb = (await c.client.get("/nodes")).json()["nodes"]
    assert {n["node_id"]: n["state"] for n in hb}["node3"] in ("Dead", "Unreachable")


async def test_killing_the_leader_elects_a_new_one(cluster):
    c = cluster
    old = c.node("node1").services["membership"].raft.leader
    status = (await c.client.get("/membership/raft/status", params={"node": old})).json()
    await c.node(old).stop(graceful=False)
    survivor = next(n for n in ("node1", "node2", "node3") if n != old)
    t0 = time.monotonic()

    def new_leader():
        raft = c.node(survivor).services["membership"].raft
        return raft.leader not in (None, old)

    await wait_for(new_leader, 15)
    after = (await c.client.get("/membership/raft/status", params={"node": survivor})).json()
    assert after["term"] > status["term"] and after["leader"] != old
    assert time.monotonic() - t0 < 15


async def test_join_and_leave_change_size_and_version(cluster):
    c = cluster
    before = (await c.client.get("/membership/view")).json()
    r = await c.client.post("/membership/join", json={"node_id": "node4", "address": "127.0.0.1:0",
                                                      "seed_nodes": ["node1:7000"]})
    body = r.json()
    assert r.status_code == 200, body
    assert body["success"] and body["cluster_size"] == 4 and body["membership_version"] > before["view_version"]
    await wait_for(lambda: "node4" in c.node("node1").services["membership"].raft.members(), 15)
    r = await c.client.post("/membership/leave", json={"node_id": "node4", "reason": "maintenance"})
    body = r.json()
    assert r.status_code == 200 and body["success"] and body["cluster_size"] == 3
    await wait_for(lambda: "node4" not in c.node("node1").services["membership"].raft.members(), 15)
    events = (await c.client.get("/membership/events")).json()["events"]
    kinds = [(e["eventType"], e["nodeId"]) for e in events]
    assert ("NodeJoined", "node4") in kinds and ("NodeLeft", "node4") in kinds


async def test_bad_membership_requests(cluster):
    c = cluster
    assert (await c.client.post("/membership/join", json={"node_id": "node1"})).status_code == 409
    r = await c.client.post("/membership/join", json={"node_id": "x y"})
    assert r.status_code == 422 and r.json()["field"] == "node_id"
    r = await c.client.post("/membership/join", json={"node_id": "api-7"})  # API clients' certificate names
    assert r.status_code == 422 and r.json()["field"] == "node_id"
    r = await c.client.post("/membership/join", json={"node_id": "node9", "seed_nodes": ["nonsense"]})
    assert r.status_code == 422 and r.json()["field"] == "seed_nodes"
    r = await c.client.post("/membership/leave", json={"node_id": "node42"})
    assert r.status_code == 404
    r = await c.client.post("/membership/bootstrap", json={"cluster_name": "x", "initial_nodes": ["node1", "node2"]})
    assert r.status_code == 409 and "already" in r.json()["error"]
    r = await c.client.post("/membership/bootstrap", json={"cluster_name": "x", "initial_nodes": ["node77"]})
    assert r.status_code == 404


async def test_bootstrap_forms_a_cluster_from_unbootstrapped_nodes(tmp_path):
    async with local_cluster(3, tmp_path, bootstrap=False) as c:
        assert (await c.client.get("/membership/raft/status")).json()["state"] == "NotStarted"
        r = await c.client.post("/membership/bootstrap", json={"cluster_name": "rustydb-prod",
                                                               "initial_nodes": ["node1", "node2", "node3"],
                                                               "replication_factor": 3})
        body = r.json()
        assert r.status_code == 200 and body["bootstrapped"] and body["members"] == 3
        assert body["cluster_record"] == "committed" and body["errors"] == [] and body["unreached"] == []
        assert body["acknowledged"] == ["node1", "node2", "node3"]
        assert body["initial_leader"] in ("node1", "node2", "node3") and body["cluster_id"].startswith("cluster-")
        await wait_for(c.fully_meshed, 15)
        for n in ("node2", "node3"):
            raft = (await c.client.get("/membership/raft/status", params={"node": n})).json()
            assert raft["members"] == ["node1", "node2", "node3"]


async def test_a_bootstrap_without_a_majority_says_so(tmp_path, monkeypatch):
    """Two of three initial members never answer: no leader, no cluster record, and the answer says it."""
    monkeypatch.setattr("rustyray.membership.api.LEADER_WAIT_S", 1.5)
    async with local_cluster(1, tmp_path, bootstrap=False) as c:
        node = c.node("node1")
        members = {"node1": {"address": node.tcp_address, "quic_address": node.quic_address},
                   "ghost1": {"address": "127.0.0.1:9", "quic_address": ""},
                   "ghost2": {"address": "127.0.0.1:9", "quic_address": ""}}
        body = await node.call_api("membership", "bootstrap", {"cluster_name": "c", "members": members})
        assert body["bootstrapped"] is False and body["initial_leader"] is None
        assert body["cluster_record"] == "not_committed" and body["unreached"] == ["ghost1", "ghost2"]
        assert body["acknowledged"] == ["node1"]
        assert any("no Raft leader" in e for e in body["errors"])
        assert sum("did not acknowledge" in e for e in body["errors"]) == 2
