"""Routing endpoints (NETWORKING-007 to 010, 056, 057) against a live in-process 3-node cluster."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time

import pytest
from harness import api_delivery_stats, api_receive_log, api_send, local_cluster, wait_for

from rustyray.errors import DomainError
from rustyray.routing.priority import PeerOutboxes
from serve_apps.errors import http_status

FAST = {"routing": {"retry_initial_s": 0.05, "retry_max_s": 0.2}}


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(3, tmp_path, sections=FAST) as c:
        yield c


def routing(c, node_id):
    return c.node(node_id).services["routing"]


def shard_count(c, node_id, sql="SELECT count(*) FROM users"):
    """Counted straight from the node's shard file, beside the API."""
    with contextlib.closing(sqlite3.connect(routing(c, node_id).shards.path)) as conn:
        return conn.execute(sql).fetchone()[0]


async def test_direct_send_runs_the_target_handler_and_counts(cluster):
    c = cluster
    before = api_receive_log(routing(c, "node2").api)["processed_by_type"].get("QueryRequest", 0)
    r = await c.client.post(
        "/routing/send",
        json={
            "target_node": "node2",
            "message_type": "QueryRequest",
            "priority": "High",
            "data": {"query": "SELECT * FROM users"},
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["routed_to"] == "node2" and body["acknowledged"] is True
    assert body["message_id"].startswith("msg-") and body["latency_ms"] > 0
    # the answer is what node2's SQLite shard holds: the demo users table, 1000 rows by default
    assert body["response"]["node"] == "node2" and body["response"]["rows"] == shard_count(c, "node2") == 1000
    assert body["response"]["columns"] == ["id", "name", "shard_key"] and body["response"]["truncated"] is False
    log = api_receive_log(routing(c, "node2").api)
    assert log["processed_by_type"]["QueryRequest"] == before + 1
    assert log["recent"][-1] == {
        "message_id": f"node1/{body['message_id']}",
        "type": "QueryRequest",
        "priority": "High",
        "delivery": "AtLeastOnce",
        "attempt": 1,
    }
    # the handler's state moved: the next answer counts one more processed query
    r2 = await c.client.post(
        "/routing/send",
        json={
            "target_node": "node2",
            "message_type": "QueryRequest",
            "data": {"query": "SELECT * FROM users"},
        },
    )
    assert r2.json()["response"]["queries_processed"] == body["response"]["queries_processed"] + 1
    # a statement SQLite rejects: acknowledged, not successful, with SQLite's message
    bad = {"target_node": "node2", "message_type": "QueryRequest", "data": {"query": "SELEC 1"}}
    r4 = (await c.client.post("/routing/send", json=bad)).json()
    assert r4["success"] is False and r4["acknowledged"] is True and r4["response"] is None
    assert r4["error"] == 'QueryRequest: near "SELEC": syntax error'
    stats = (await c.client.get("/routing/delivery/stats")).json()
    assert stats["AtLeastOnce"]["sent"] >= 2 and stats["AtLeastOnce"]["acknowledged"] >= 2
    # to the fronted node itself: same handler path, no network
    r3 = await c.client.post(
        "/routing/send", json={"target_node": "node1", "message_type": "Heartbeat", "data": {"x": 1}}
    )
    assert r3.json()["success"] is True and r3.json()["response"] == {"node": "node1", "echo": {"x": 1}}


async def test_exactly_once_answers_a_redelivery_with_the_first_result(cluster):
    c = cluster
    body = {
        "target_node": "node3",
        "message_type": "QueryRequest",
        "delivery": "ExactlyOnce",
        "idempotency_key": "order-42",
        "data": {"query": "SELECT 1"},
    }
    first = (await c.client.post("/routing/send", json=body)).json()
    second = (await c.client.post("/routing/send", json=body)).json()
    assert first["success"] and second["success"]
    assert first["duplicate"] is False and second["duplicate"] is True
    assert second["response"] == first["response"]
    assert api_receive_log(routing(c, "node3").api)["processed_by_type"]["QueryRequest"] == 1
    stats = (await c.client.get("/routing/delivery/stats")).json()
    assert stats["ExactlyOnce"]["sent"] == 2 and stats["ExactlyOnce"]["deduplicated"] == 1
    assert (await c.client.get("/routing/delivery/stats", params={"node": "node3"})).json()["receiver"][
        "duplicates_suppressed"
    ] == 1


async def test_broadcast_applies_config_on_every_node_and_manager_routes_share_it(cluster):
    c = cluster
    r = await c.client.post(
        "/routing/broadcast",
        json={
            "message_type": "ConfigUpdate",
            "priority": "Critical",
            "data": {"setting": "max_connections", "value": "200"},
        },
    )
    body = r.json()
    assert body["total_nodes"] == 3 and body["successful_sends"] == 3 and body["failed_sends"] == 0
    assert sorted(body["nodes_reached"]) == ["node1", "node2", "node3"] and body["broadcast_latency_ms"] > 0
    for n in ("node1", "node2", "node3"):
        assert routing(c, n).context.config["max_connections"] == "200"
    r = await c.client.post(
        "/broadcast",
        json={"message": {"type": "ConfigUpdate", "data": {"key": "max_connections", "value": "500"}}},
    )
    assert r.json()["sent_to"] == 3 and r.json()["failed"] == 0
    for n in ("node1", "node2", "node3"):
        log = (await c.client.get("/routing/receive-log", params={"node": n})).json()
        assert log["config"]["max_connections"] == "500" and log["processed_by_type"]["ConfigUpdate"] == 2
    r = await c.client.post(
        "/send",
        json={"target_node": "node2", "message": {"type": "QueryRequest", "data": {"query": "SELECT 2"}}},
    )
    assert r.json()["sent"] is True and r.json()["message_id"].startswith("msg-")
    # a stopped node leaves the broadcast's member set
    await c.node("node3").stop()
    await wait_for(lambda: "node3" not in c.node("node1").live_members(), 10)
    body = (await c.client.post("/broadcast", json={"message": {"type": "Heartbeat", "data": {}}})).json()
    assert body["total_nodes"] == 2 and body["sent_to"] == 2


async def test_scatter_gather_collects_rows_and_marks_a_slow_node_timed_out(cluster):
    c = cluster
    body = {
        "target_nodes": ["node1", "node2", "node3"],
        "message_type": "ShardQuery",
        "timeout_ms": 5000,
        "data": {"query": "SELECT * FROM users WHERE shard_key IN (1,2,3)"},
    }
    res = (await c.client.post("/routing/scatter-gather", json=body)).json()
    assert res["responses_received"] == 3 and res["total_sent"] == 3
    assert [r["node"] for r in res["responses"]] == ["node1", "node2", "node3"]
    in_123 = "SELECT count(*) FROM users WHERE shard_key IN (1,2,3)"
    assert {r["node"]: (r["status"], r["rows"]) for r in res["responses"]} == {
        n: ("success", shard_count(c, n, in_123)) for n in ("node1", "node2", "node3")
    }
    # the count follows the data: rows added to node2's shard show up in node2's answer only
    with contextlib.closing(sqlite3.connect(routing(c, "node2").shards.path)) as conn, conn:
        conn.executemany("INSERT INTO users (name, shard_key) VALUES (?, ?)", [("late", 3)] * 4)
    before = {r["node"]: r["rows"] for r in res["responses"]}
    again = (await c.client.post("/routing/scatter-gather", json=body)).json()
    assert {r["node"]: r["rows"] for r in again["responses"]} == {**before, "node2": before["node2"] + 4}
    # a query SQLite rejects is that node's error, with SQLite's message; a write is refused and changes nothing
    bad = (await c.client.post("/routing/scatter-gather", json={**body, "data": {"query": "DELETE FROM users"}})).json()
    assert bad["responses_received"] == 0
    assert all(r["status"] == "error" and "not authorized" in r["error"] for r in bad["responses"])
    assert [shard_count(c, n) for n in ("node1", "node2", "node3")] == [1000, 1004, 1000]
    one = {**body, "target_nodes": ["node1"], "data": {"query": "SELECT * FROM nope"}}
    bad = (await c.client.post("/routing/scatter-gather", json=one)).json()
    assert bad["responses"] == [{"node": "node1", "status": "error", "error": "ShardQuery: no such table: nope"}]

    async def slow(ctx, data):
        await asyncio.sleep(2.0)
        return {"node": ctx.node_id, "rows": 1}

    routing(c, "node3").registry.register("SlowShard", slow)
    for n in ("node1", "node2"):
        routing(c, n).registry.register("SlowShard", lambda ctx, data: {"node": ctx.node_id, "rows": 7})
    t0 = time.perf_counter()
    res = (
        await c.client.post(
            "/routing/scatter-gather", json={**body, "message_type": "SlowShard", "timeout_ms": 400}
        )
    ).json()
    assert time.perf_counter() - t0 < 1.5
    assert res["responses_received"] == 2 and res["timed_out"] == ["node3"]
    assert {r["node"]: r["status"] for r in res["responses"]} == {
        "node1": "success",
        "node2": "success",
        "node3": "timeout",
    }


async def test_quorum_votes_with_terms_and_fails_fast_when_impossible(cluster):
    c = cluster
    q = {
        "nodes": ["node1", "node2", "node3"],
        "quorum_size": 2,
        "message_type": "ConsensusProposal",
        "timeout_ms": 3000,
        "data": {"term": 5},
    }
    res = (await c.client.post("/routing/quorum", json=q)).json()
    assert res["quorum_reached"] is True and res["consensus"] == "ACCEPT" and res["responses"] >= 2
    # every node that voted recorded term 5, so an older term is rejected
    res = (await c.client.post("/routing/quorum", json={**q, "quorum_size": 3, "data": {"term": 3}})).json()
    assert (
        res["quorum_reached"] is True and res["consensus"] == "REJECT" and res["votes"].get("REJECT", 0) >= 1
    )
    r = await c.client.post("/routing/quorum", json={**q, "quorum_size": 4})
    assert r.status_code == 422 and r.json()["field"] == "quorum_size"
    await c.node("node3").stop()
    await wait_for(lambda: not c.node("node1").peers["node3"].connected, 10)
    t0 = time.perf_counter()
    res = (await c.client.post("/routing/quorum", json={**q, "quorum_size": 3, "data": {"term": 9}})).json()
    assert res["quorum_reached"] is False and res["failed_nodes"] == ["node3"]
    assert time.perf_counter() - t0 < 1.5  # failed fast, well before the 3 s timeout


BAD_INPUT = [
    (
        "/routing/send",
        {"target_node": "node9", "message_type": "QueryRequest", "data": {"query": "x"}},
        404,
        "target_node",
    ),
    (
        "/routing/send",
        {
            "target_node": "node2",
            "message_type": "QueryRequest",
            "delivery": "ExactlyOnce",
            "data": {"query": "x"},
        },
        422,
        "idempotency_key",
    ),
    (
        "/routing/send",
        {
            "target_node": "node2",
            "message_type": "QueryRequest",
            "priority": "Urgent",
            "data": {"query": "x"},
        },
        422,
        "priority",
    ),
    (
        "/routing/send",
        {"target_node": "node2", "message_type": "QueryRequest", "delivery": "Maybe", "data": {"query": "x"}},
        422,
        "delivery",
    ),
    (
        "/routing/send",
        {"target_node": "node2", "message_type": "NoSuchType", "data": {}},
        422,
        "message_type",
    ),
    (
        "/routing/send",
        {"target_node": "node2", "message_type": "QueryRequest", "data": {}},
        422,
        "data.query",
    ),
    (
        "/routing/send",
        {"target_node": "node2", "message_type": "QueryRequest", "timeout_ms": 0},
        422,
        "timeout_ms",
    ),
    ("/routing/send", {"message_type": "QueryRequest"}, 422, "target_node"),
    ("/routing/broadcast", {"message_type": "ConfigUpdate", "priority": "loud"}, 422, "priority"),
    (
        "/routing/scatter-gather",
        {"target_nodes": ["node1", "nodeX"], "message_type": "ShardQuery"},
        404,
        "target_nodes",
    ),
    ("/routing/scatter-gather", {"target_nodes": [], "message_type": "ShardQuery"}, 422, "target_nodes"),
    (
        "/routing/quorum",
        {"nodes": ["node1", "node2"], "quorum_size": 0, "message_type": "X"},
        422,
        "quorum_size",
    ),
    ("/routing/quorum", {"nodes": ["node1", "ghost"], "quorum_size": 1, "message_type": "X"}, 404, "nodes"),
    (
        "/send",
        {"target_node": "ghost", "message": {"type": "QueryRequest", "data": {"query": "x"}}},
        404,
        "target_node",
    ),
    ("/broadcast", {"message": {"data": {}}}, 422, "message.type"),
]


async def test_bad_input_is_4xx_naming_the_field(cluster):
    for path, body, status, field in BAD_INPUT:
        r = await cluster.client.post(path, json=body)
        assert r.status_code == status, (path, body, r.text)
        assert r.json()["field"] == field, (path, body, r.text)


async def test_critical_overtakes_a_low_backlog_and_a_full_outbox_refuses(cluster):
    c = cluster
    svc = routing(c, "node1")
    await wait_for(lambda: svc._conn("node2") is not None, 15)
    conn = svc._conn("node2")
    # Hold the wire after the first write, so that a backlog exists whatever the machine's load.
    gate, real_drain = asyncio.Event(), conn.drain

    async def gated_drain() -> None:
        await gate.wait()
        await real_drain()

    conn.drain = gated_drain
    try:
        sends = [asyncio.ensure_future(api_send(svc.api, "node2", "Heartbeat", {"i": i}, priority="Low"))
                 for i in range(40)]
        await wait_for(lambda: len(svc.sending.outboxes.for_peer("node2")) >= 39, 15)  # at most one went out
        sends.append(asyncio.ensure_future(
            api_send(svc.api, "node2", "Heartbeat", {"i": "urgent"}, priority="Critical")))
        await wait_for(lambda: len(svc.sending.outboxes.for_peer("node2")) >= 40, 15)
    finally:
        gate.set()
        del conn.drain
    results = await asyncio.gather(*sends)
    assert all(r["success"] for r in results)
    batch = [e for e in api_receive_log(routing(c, "node2").api)["recent"] if e["type"] == "Heartbeat"][-41:]
    first_two = [e["priority"] for e in batch[:2]]
    assert "Critical" in first_two, first_two  # queued last (behind 39 or 40 Low), delivered first of them
    critical = next(e for e in batch if e["priority"] == "Critical")
    assert critical["message_id"] == f"node1/{results[-1]['message_id']}"

    svc.sending.outboxes = PeerOutboxes(4)  # a tiny bound for this check
    results = await asyncio.gather(
        *(api_send(svc.api, "node2", "Heartbeat", {"i": i}) for i in range(10)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(refused) == 6 and all(http_status(e) == 503 and "full" in e.message for e in refused)
    assert sum(1 for r in results if isinstance(r, dict) and r["success"]) == 4
    assert api_delivery_stats(svc.api)["outbox_rejected"] == 6


async def test_dedup_window_survives_a_node_restart(cluster):
    c = cluster
    body = {
        "target_node": "node2",
        "message_type": "ConfigUpdate",
        "delivery": "ExactlyOnce",
        "idempotency_key": "cfg-1",
        "data": {"key": "mode", "value": "fast"},
    }
    first = (await c.client.post("/routing/send", json=body)).json()
    assert first["duplicate"] is False
    await c.node("node2").stop()
    assert (c.node("node2").config.node_dir / "dedup.bin").stat().st_size > 0
    await c.start_node("node2")
    await wait_for(lambda: c.node("node1").peers["node2"].connected, 15)
    again = (await c.client.post("/routing/send", json={**body, "timeout_ms": 10000})).json()
    assert again["success"] is True and again["duplicate"] is True and again["response"] == first["response"]
    assert api_receive_log(routing(c, "node2").api)["processed_by_type"].get("ConfigUpdate", 0) == 0


async def test_a_key_processed_just_before_a_crash_is_still_deduplicated(cluster):
    """No snapshot is written between processing and the crash: the write-ahead journal alone must carry it."""
    c = cluster
    svc = routing(c, "node2")
    svc._save_dedup = lambda: None  # the crash comes before any periodic or final snapshot
    body = {"target_node": "node2", "message_type": "ConfigUpdate", "delivery": "ExactlyOnce",
            "idempotency_key": "crash-1", "data": {"key": "mode", "value": "safe"}}
    first = (await c.client.post("/routing/send", json=body)).json()
    assert first["acknowledged"] and first["duplicate"] is False
    assert not (c.node("node2").config.node_dir / "dedup.bin").exists()
    await c.node("node2").stop(graceful=False)
    await c.start_node("node2")
    assert routing(c, "node2").sending.next_id() > 1 << 40  # ids of a new incarnation never reuse old ones
    await wait_for(lambda: c.node("node1").peers["node2"].connected, 15)
    again = (await c.client.post("/routing/send", json={**body, "timeout_ms": 10000})).json()
    assert again["duplicate"] is True and again["response"] == first["response"]
    assert api_receive_log(routing(c, "node2").api)["processed_by_type"].get("ConfigUpdate", 0) == 0
