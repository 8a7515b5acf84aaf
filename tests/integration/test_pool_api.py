"""Connection-pool endpoints (NETWORKING-003, 044..047) against a live in-process 3-node cluster."""

from __future__ import annotations

import asyncio

import pytest
from harness import local_cluster, wait_for

from rustyray.protocol.control import EchoReply
from rustyray.protocol.messages import Message

SECTIONS = {"pool": {"max_size": 6, "maintenance_interval_sec": 0.1, "multiplex": {"max_streams": 4}}}


class PoolTestHold(Message):
    """A request the test's handler answers only when released (keeps a stream open)."""

    seq: int


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(3, tmp_path, sections=SECTIONS) as c:
        yield c


def outbound(cluster, src: str, dst: str) -> list:
    return [c for c in cluster.node(src).connections.values()
            if c.peer_node_id == dst and c.outbound and not c.is_closed]


async def statistics(cluster, **params) -> dict:
    r = await cluster.client.get("/pool/statistics", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def pool_row(stats: dict, peer: str) -> dict:
    return next(p for p in stats["pools"] if p["node"] == peer)


async def test_statistics_describe_the_live_primary_connections(cluster):
    stats = await statistics(cluster)
    assert stats["total_connections"] == 2
    assert stats["active_connections"] + stats["idle_connections"] == 2
    assert stats["max_pool_size"] == 6 and isinstance(stats["selection_strategy"], str)
    assert [p["node"] for p in stats["pools"]] == ["node2", "node3"]
    node1 = cluster.node("node1")
    for peer in ("node2", "node3"):
        row = pool_row(stats, peer)
        busy = 1 if row["in_flight_requests"] else 0  # another subsystem's request may be on the wire
        seen = {k: row[k] for k in ("total_connections", "active", "idle", "max_size", "utilization")}
        assert seen == {"total_connections": 1, "active": busy, "idle": 1 - busy, "max_size": 6,
                        "utilization": float(busy)}
        assert row["primary_connection"] == node1.peers[peer].conn.conn_id
    assert [p["node"] for p in (await statistics(cluster, node="node2"))["pools"]] == ["node1", "node3"]


async def test_warmup_opens_real_connections_up_to_max_size(cluster):
    inbound_before = sum(1 for c in cluster.node("node3").connections.values() if c.peer_node_id == "node1")
    r = await cluster.client.post("/pool/warmup", json={"node": "node3", "target_size": 4})
    assert r.status_code == 200
    body = r.json()
    assert {k: body[k] for k in ("warmup_initiated", "target_connections", "established")} == \
        {"warmup_initiated": True, "target_connections": 4, "established": 4}
    assert len(outbound(cluster, "node1", "node3")) == 4
    inbound_after = sum(1 for c in cluster.node("node3").connections.values() if c.peer_node_id == "node1")
    assert inbound_after == inbound_before + 3
    body = (await cluster.client.post("/pool/warmup", json={"node": "node3", "target_size": 50})).json()
    assert body["target_connections"] == 6 and body["established"] == 6 and body["opened"] == 2
    assert len(outbound(cluster, "node1", "node3")) == 6
    stats = await statistics(cluster)
    assert pool_row(stats, "node3")["total_connections"] == 6 and stats["total_connections"] == 7


@pytest.mark.parametrize("policy,extra", [("IdleTimeout", {}), ("LRU", {"max_idle": 1})])
async def test_eviction_closes_idle_connections_live(cluster, policy, extra):
    await cluster.client.post("/pool/warmup", json={"node": "node2", "target_size": 4})
    assert len(outbound(cluster, "node1", "node2")) == 4
    primary = cluster.node("node1").peers["node2"].conn
    r = await cluster.client.post("/pool/eviction/configure",
                                  json={"policy": policy, "idle_timeout_sec": 0.2, "max_lifetime_sec": 3600,
                                        **extra})
    assert r.status_code == 200
    assert r.json()["configured"] is True and r.json()["policy"] == policy
    assert sorted(r.json()["applied_nodes"]) == ["node1", "node2", "node3"]
    await wait_for(lambda: len(outbound(cluster, "node1", "node2")) == 1, 5)
    assert outbound(cluster, "node1", "node2") == [primary]  # the primary connection is pinned
    stats = await statistics(cluster)
    assert pool_row(stats, "node2")["total_connections"] == 1 and stats["connections_evicted"] >= 3
    assert (await cluster.client.get("/pool/eviction", params={"node": "node3"})).json()["policy"] == policy


async def test_streams_count_in_flight_exchanges_and_cap_at_max_streams(cluster):
    node1, node2 = cluster.node("node1"), cluster.node("node2")
    release = asyncio.Event()

    async def hold(ctx, msg):
        await release.wait()
        return EchoReply(data=b"")

    node2.on(PoolTestHold, hold)
    primary = node1.peers["node2"].conn.conn_id
    tasks = [asyncio.create_task(node1.request("node2", PoolTestHold(seq=i), timeout=10)) for i in range(6)]

    async def row() -> dict:
        body = (await cluster.client.get("/pool/multiplexing/streams")).json()
        return next(c for c in body["connections"] if c["connection_id"] == primary)

    for _ in range(100):
        current = await row()
        assert current["active_streams"] <= 4
        if current["active_streams"] == 4:
            break
        await asyncio.sleep(0.05)
    assert current == {**current, "node": "node2", "active_streams": 4, "max_streams": 4}
    stats = await statistics(cluster)
    assert pool_row(stats, "node2")["active"] == 1 and stats["active_connections"] >= 1
    release.set()
    assert len(await asyncio.gather(*tasks)) == 6
    current = await row()
    assert current["active_streams"] == 0 and current["peak_streams"] == 4 and current["streams_opened"] >= 6
    row = pool_row(await statistics(cluster), "node2")
    assert row["active"] == (1 if row["in_flight_requests"] else 0) and row["in_flight_requests"] < 4


async def test_lease_is_exclusive_and_opens_on_demand(cluster):
    pool = cluster.node("node1").services["pool"]
    async with pool.lease("node2") as first:
        row = pool_row(await statistics(cluster), "node2")
        assert row["leased"] == 1 and row["active"] == 1 and row["utilization"] == 1.0
        async with pool.lease("node2", timeout=5) as second:
            assert second is not first and not second.is_closed
            assert len(outbound(cluster, "node1", "node2")) == 2
    row = pool_row(await statistics(cluster), "node2")
    assert row["leased"] == 0 and row["total_connections"] == 2


async def test_pool_of_a_stopped_peer_empties(cluster):
    await cluster.client.post("/pool/warmup", json={"node": "node3", "target_size": 3})
    await cluster.node("node3").stop()

    async def node3_total() -> int:
        return pool_row(await statistics(cluster), "node3")["total_connections"]

    for _ in range(100):
        if await node3_total() == 0:
            break
        await asyncio.sleep(0.05)
    assert await node3_total() == 0


@pytest.mark.parametrize("path,body,status,field", [
    ("/pool/warmup", {"node": "node9", "target_size": 3}, 404, "node"),
    ("/pool/warmup", {"node": "node1", "target_size": 3}, 422, "node"),
    ("/pool/warmup", {"node": "node2", "target_size": 0}, 422, "target_size"),
    ("/pool/warmup", {"target_size": 2}, 422, "node"),
    ("/pool/eviction/configure", {"policy": "FIFO", "idle_timeout_sec": 1, "max_lifetime_sec": 2}, 422,
     "policy"),
    ("/pool/eviction/configure", {"policy": "LRU", "idle_timeout_sec": 0, "max_lifetime_sec": 2}, 422,
     "idle_timeout_sec"),
    ("/pool/eviction/configure", {"policy": "LRU", "idle_timeout_sec": 1, "max_lifetime_sec": -5}, 422,
     "max_lifetime_sec"),
])
async def test_bad_input_is_refused_naming_the_field(cluster, path, body, status, field):
    r = await cluster.client.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field
    assert (await statistics(cluster))["total_connections"] == 2


async def test_latency_probe_runs_both_paths_against_a_live_peer(cluster):
    """The probe behind bench/loadbalancer.py: pooled requests reuse, unpooled ones dial each time."""
    from rustyray.errors import DomainError
    from serve_apps.errors import http_status

    node = cluster.node("node1")
    opened = node.stats.connections_opened

    def live() -> int:
        return sum(1 for c in node.connections.values() if not c.is_closed)

    before = live()
    out = await node.call_api("pool", "latency_probe", {"target_node": "node2", "requests": 6})
    assert out["from"] == "node1" and out["to"] == "node2" and out["requests"] == 6 and out["tls"] is True
    for path in ("pooled", "unpooled"):
        assert 0 < out[path]["p50_ms"] <= out[path]["p99_ms"]
    assert node.stats.connections_opened - opened >= 6  # one fresh TLS connection per unpooled request
    await wait_for(lambda: live() <= before + 1, 10)  # the fresh ones were closed (the pool may keep one)
    for kwargs, status, field in [({"target_node": "nodeX"}, 404, "target_node"),
                                  ({"target_node": "node1"}, 404, "target_node"),
                                  ({"target_node": "node2", "requests": 0}, 422, "requests")]:
        with pytest.raises(DomainError) as err:
            await node.call_api("pool", "latency_probe", kwargs)
        assert (http_status(err.value), err.value.field) == (status, field)
