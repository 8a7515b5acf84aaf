"""Autodiscovery endpoints (NETWORKING-026..030) against live in-process clusters on loopback only."""

from __future__ import annotations

import asyncio
import socket

import pytest
from harness import local_cluster, wait_for

from rustyray.autodiscovery.anti_entropy import EntryStatus, precedence
from rustyray.autodiscovery.service import AutodiscoveryService


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def enabled_sections(port: int, *, all_features: bool = True) -> dict:
    return {"autodiscovery": {
        "mdns": {"enabled": all_features, "interfaces": ["127.0.0.1"]},
        "broadcast": {"enabled": True, "broadcast_address": "127.255.255.255", "port": port, "reply_wait_s": 0.4},
        "beacon": {"enabled": all_features, "interval_ms": 100, "ttl_ms": 700},
        "serf": {"coalesce_period_s": 0.1, "quiescent_period_s": 0.05, "tags": {"role": "db"}},
    }}


@pytest.fixture
async def cluster(tmp_path):
    sections = {"autodiscovery": {"anti_entropy": {"request_timeout_s": 1.0}}}  # fail fast on a stopped node
    async with local_cluster(3, tmp_path, sections=sections) as c:
        yield c


@pytest.fixture
async def discovery_cluster(tmp_path):
    async with local_cluster(3, tmp_path, sections=enabled_sections(free_udp_port())) as c:
        yield c


def service(c, node_id: str) -> AutodiscoveryService:
    return c.node(node_id).services["autodiscovery"]


# ---------------------------------------------------------------- off by default


@pytest.mark.parametrize("method,path,body,words", [
    ("GET", "/autodiscovery/mdns/discovered", None, ["[autodiscovery.mdns]", "enabled = true", "127.0.0.1"]),
    ("POST", "/autodiscovery/broadcast/announce", {"broadcast_address": "127.255.255.255", "port": 7947},
     ["[autodiscovery.broadcast]", "enabled = true"]),
])
async def test_disabled_features_answer_409_with_how_to_enable(cluster, method, path, body, words):
    r = await cluster.client.request(method, path, json=body)
    assert r.status_code == 409
    for w in words:
        assert w in r.json()["error"]
    for node in cluster.nodes.values():  # nothing was opened: no broadcast socket, no zeroconf
        svc = node.services["autodiscovery"]
        assert svc.broadcast is None and svc.mdns is None
    r = await cluster.client.post("/autodiscovery/broadcast/announce",
                                  json={"broadcast_address": "255.255.255.255", "port": 7947})
    assert r.status_code == 403 and r.json()["field"] == "broadcast_address"
    r = await cluster.client.get("/autodiscovery/beacon/status")
    assert r.status_code == 200
    assert r.json()["enabled"] is False and "[autodiscovery.beacon]" in r.json()["how_to_enable"]


async def test_broadcast_refuses_non_loopback_addresses_before_sending(discovery_cluster):
    c = discovery_cluster
    svc = service(c, "node1")
    sent_before = svc.broadcast.core.stats["announces_sent"]
    r = await c.client.post("/autodiscovery/broadcast/announce",
                            json={"broadcast_address": "255.255.255.255", "port": 7947})
    assert r.status_code == 403 and r.json()["field"] == "broadcast_address"
    assert "broadcast_address" in r.json()["error"] and "allowed_broadcast_addresses" in r.json()["error"]
    assert svc.broadcast.core.stats["announces_sent"] == sent_before
    r = await c.client.post("/autodiscovery/broadcast/announce", json={"broadcast_address": "not-an-ip", "port": 1})
    assert r.status_code == 422 and r.json()["field"] == "broadcast_address"
    r = await c.client.post("/autodiscovery/broadcast/announce",
                            json={"broadcast_address": "127.255.255.255", "port": 0})
    assert r.status_code == 422 and r.json()["field"] == "port"


# ---------------------------------------------------------------- enabled on loopback


async def test_announce_notifies_the_other_nodes_and_lets_a_stranger_join(tmp_path):
    async with local_cluster(3, tmp_path, sections=enabled_sections(free_udp_port(), all_features=False)) as c:
        await _announce_and_join(c)


async def _announce_and_join(c) -> None:
    port = service(c, "node1").broadcast.core.config.port
    r = await c.client.post("/autodiscovery/broadcast/announce",
                            json={"broadcast_address": "127.255.255.255", "port": port})
    assert r.status_code == 200
    body = r.json()
    assert body["broadcast_sent"] is True and body["listeners_notified"] == 2
    assert {"node2", "node3"} <= set(body["candidates"])
    # A wrong port reaches nobody: the count is measured, not assumed.
    r = await c.client.post("/autodiscovery/broadcast/announce",
                            json={"broadcast_address": "127.255.255.255", "port": free_udp_port(), "wait_ms": 200})
    assert r.json()["listeners_notified"] == 0
    # node4 starts with no seeds; its announce makes it a peer of everyone (and everyone of it).
    node4 = await c.start_node("node4")
    assert not node4.peers
    r = await c.client.post("/autodiscovery/broadcast/announce?node=node4",
                            json={"broadcast_address": "127.255.255.255", "port": port})
    assert r.json()["listeners_notified"] == 3
    await wait_for(c.fully_meshed, 15)
    assert set(node4.peers) == {"node1", "node2", "node3"}


async def test_mdns_on_loopback_finds_the_other_nodes(discovery_cluster):
    c = discovery_cluster

    def found_all() -> bool:
        for nid, node in c.nodes.items():
            mdns = node.services["autodiscovery"].mdns
            if mdns is None:
                return False
            seen = {(d.node_id, d.port) for d in mdns.registry.nodes()}
            if not {(o, c.node(o).tcp_port) for o in c.nodes if o != nid} <= seen:
                return False
        return True

    await wait_for(found_all, 20)
    r = await c.client.get("/autodiscovery/mdns/discovered?node=node2")
    body = r.json()
    assert body["service_type"] == "_rustydb._tcp" and body["registered"] is True
    assert body["interfaces"] == ["127.0.0.1"]
    mine = {d["node_id"]: d for d in body["discovered_nodes"] if d["node_id"] in c.nodes}
    assert set(mine) == {"node1", "node3"}
    assert mine["node1"]["ip"] == "127.0.0.1" and mine["node1"]["port"] == c.node("node1").tcp_port
    assert mine["node1"]["ports"]["quic"] == c.node("node1").quic_port
    assert all(d["known_peer"] for d in mine.values())
    for node in c.nodes.values():  # zeroconf sockets are on loopback only
        zc = node.services["autodiscovery"].mdns._azc.zeroconf
        assert zc.engine._listen_socket is None
        assert all(s.sock.getsockname()[0] == "127.0.0.1" for s in zc.engine.senders)


async def test_beacon_counters_move_and_a_silent_node_expires(discovery_cluster):
    c = discovery_cluster
    first = (await c.client.get("/autodiscovery/beacon/status")).json()
    assert first["enabled"] is True and first["interval_ms"] == 100
    await asyncio.sleep(0.5)
    second = (await c.client.get("/autodiscovery/beacon/status")).json()
    assert second["beacons_sent"] > first["beacons_sent"]
    assert second["beacons_received"] > first["beacons_received"]
    assert {x["node_id"] for x in second["candidates"]} == {"node2", "node3"}
    await c.node("node3").stop()
    await wait_for(lambda: service(c, "node1").beacon_expired >= 1, 5)
    third = (await c.client.get("/autodiscovery/beacon/status")).json()
    assert [x["node_id"] for x in third["candidates"]] == ["node2"]
    assert third["candidates_expired"] >= 1


# ---------------------------------------------------------------- Serf (on by default)


async def test_serf_event_reaches_every_node(discovery_cluster):
    c = discovery_cluster
    r = await c.client.post("/autodiscovery/serf/event", json={"name": "deploy", "payload": "v42"})
    assert r.status_code == 200 and r.json()["event_sent"] is True and r.json()["gossiped_to"] == 2

    async def got(nid: str) -> bool:
        body = (await c.client.get(f"/autodiscovery/serf/events?node={nid}")).json()
        return any(e["name"] == "deploy" and e["payload"] == "v42" for e in body["events"])

    for _ in range(100):
        if all([await got(n) for n in c.nodes]):
            break
        await asyncio.sleep(0.05)
    assert all([await got(n) for n in c.nodes])
    members = (await c.client.get("/autodiscovery/serf/members?node=node3")).json()
    assert [m["name"] for m in members["members"]] == ["node1", "node2", "node3"]
    assert all(m["status"] == "alive" and m["tags"] == {"role": "db"} for m in members["members"])
    r = await c.client.post("/autodiscovery/serf/event", json={"name": "x", "payload": "p" * 600})
    assert r.status_code == 422 and r.json()["field"] == "payload"


async def test_serf_query_answers_from_every_live_node_then_fewer(cluster):
    c = cluster
    r = await c.client.post("/autodiscovery/serf/query", json={"name": "uptime", "payload": "", "timeout_ms": 3000})
    body = r.json()
    assert [x["node"] for x in body["responses"]] == ["node1", "node2", "node3"]
    assert body["timed_out"] is False and body["duration_ms"] < 3000  # every live member answered early
    assert '"node_id": "node2"' in body["responses"][1]["payload"]
    await c.node("node3").stop()
    body = (await c.client.post("/autodiscovery/serf/query",
                                json={"name": "uptime", "timeout_ms": 1000})).json()
    assert [x["node"] for x in body["responses"]] == ["node1", "node2"]
    members = (await c.client.get("/autodiscovery/serf/members")).json()
    assert {m["name"]: m["status"] for m in members["members"]} == {"node1": "alive", "node2": "alive",
                                                                     "node3": "left"}
    r = await c.client.post("/autodiscovery/serf/query", json={"name": "", "timeout_ms": 100})
    assert r.status_code == 422 and r.json()["field"] == "name"


# ---------------------------------------------------------------- anti-entropy (on by default)


class DictView:
    """A membership view the test controls (the ``ae_source`` seam), merging by SWIM precedence."""

    def __init__(self, entries: dict[str, tuple[int, str]]) -> None:
        self.state = dict(entries)
        self.applied: list[tuple[str, int, str]] = []

    def entries(self) -> dict[str, tuple[int, str]]:
        return dict(self.state)

    def apply_entries(self, entries: list[tuple[str, int, str]]) -> None:
        for nid, inc, st in entries:
            self.applied.append((nid, inc, st))
            cur = self.state.get(nid)
            if cur is None or precedence(*(cur[0], EntryStatus(cur[1]))) < precedence(inc, EntryStatus(st)):
                self.state[nid] = (inc, st)


async def test_anti_entropy_finds_and_repairs_divergence(cluster):
    c = cluster
    base = {f"node{i}": (0, "Alive") for i in range(1, 4)}
    view1 = DictView(base)
    view2 = DictView({**base, "node3": (7, "Alive"), "node9": (2, "Suspect"), "node1": (0, "Suspect")})
    service(c, "node1").ae_source = view1
    service(c, "node2").ae_source = view2
    r = await c.client.post("/autodiscovery/anti-entropy/sync", json={"target_node": "node2"})
    body = r.json()
    assert body["sync_initiated"] is True and body["merkle_root_match"] is False
    assert body["divergent_entries"] == 3 and body["sync_status"] == "completed"
    assert body["repaired"] == 3 and body["bytes_exchanged"] > 0 and body["rounds"] >= 3
    assert view1.state == view2.state == {**base, "node3": (7, "Alive"), "node9": (2, "Suspect"),
                                          "node1": (0, "Suspect")}
    assert sorted(view1.applied) == [("node1", 0, "Suspect"), ("node3", 7, "Alive"), ("node9", 2, "Suspect")]
    r = await c.client.post("/autodiscovery/anti-entropy/sync", json={"target_node": "node2"})
    assert r.json()["merkle_root_match"] is True and r.json()["divergent_entries"] == 0
    assert r.json()["rounds"] == 1
    r = await c.client.post("/autodiscovery/anti-entropy/sync", json={"target_node": "node42"})
    assert r.status_code == 404 and r.json()["field"] == "target_node" and "node42" in r.json()["error"]
    r = await c.client.post("/autodiscovery/anti-entropy/sync", json={"target_node": ""})
    assert r.status_code == 422 and r.json()["field"] == "target_node"
    await c.node("node3").stop()
    r = await c.client.post("/autodiscovery/anti-entropy/sync", json={"target_node": "node3"})
    assert r.status_code == 503 and r.json()["field"] == "target_node"


async def test_anti_entropy_over_the_peer_table_view(cluster):
    c = cluster
    for nid in c.nodes:  # the fallback used when no membership service offers entries()
        service(c, nid).ae_source = service(c, nid).peer_view
    c.node("node2").peers["node3"].incarnation = 7  # node2 heard of a newer incarnation
    service(c, "node2").peer_view.overrides["node9"] = (2, EntryStatus.SUSPECT)
    body = (await c.client.post("/autodiscovery/anti-entropy/sync", json={"target_node": "node2"})).json()
    assert body["merkle_root_match"] is False and body["divergent_entries"] == 2
    status = (await c.client.get("/autodiscovery/anti-entropy/status")).json()
    assert status["source"] == "custom"
    assert status["view"]["node3"] == {"incarnation": 7, "status": "Alive"}
    assert status["view"]["node9"] == {"incarnation": 2, "status": "Suspect"}
    assert c.node("node1").peers["node3"].incarnation == 7
    body = (await c.client.post("/autodiscovery/anti-entropy/sync", json={"target_node": "node2"})).json()
    assert body["merkle_root_match"] is True


async def test_anti_entropy_over_the_live_membership_service(cluster):
    c = cluster
    status = (await c.client.get("/autodiscovery/anti-entropy/status")).json()
    assert status["source"] == "membership" and {"node1", "node2", "node3"} <= set(status["view"])
    body = (await c.client.post("/autodiscovery/anti-entropy/sync", json={"target_node": "node3"})).json()
    assert body["sync_initiated"] is True and body["sync_status"] == "completed"
    assert body["entries"] >= 3


async def test_background_anti_entropy_repairs_without_the_api(tmp_path):
    sections = {"autodiscovery": {"anti_entropy": {"interval_s": 0.2}}}
    async with local_cluster(2, tmp_path, sections=sections) as c:
        view1, view2 = DictView({"node1": (0, "Alive")}), DictView({"node1": (0, "Alive"), "node7": (3, "Dead")})
        service(c, "node1").ae_source = view1
        service(c, "node2").ae_source = view2
        await wait_for(lambda: view1.state == view2.state, 10)
        assert view1.state["node7"] == (3, "Dead")
        assert service(c, "node1").ae_stats["syncs_completed"] + service(c, "node2").ae_stats["syncs_completed"] >= 1
        status, detail = service(c, "node1").health()
        assert status == "healthy" and "anti_entropy on" in detail and "mdns off" in detail


async def test_bad_config_is_refused_at_start(tmp_path):
    from harness import make_config

    from rustyray.node import Node

    node = Node(make_config("n1", tmp_path, sections={"autodiscovery": {"mdns": {"enabeld": True}}}))
    with pytest.raises(ValueError, match="enabeld"):
        await node.start()
    await node.stop()
