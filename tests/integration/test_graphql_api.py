"""GraphQL (NETWORKING-059..065) and /metrics against a live in-process 3-node cluster.

Queries and mutations go through the ASGI client; subscriptions through a real
uvicorn server on 127.0.0.1 and a real WebSocket client, in both subprotocols.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import time
from typing import Any

import pytest
import uvicorn
from harness import READ_TOKEN, harness_auth, local_cluster, prom_sample, wait_for
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import serve_apps.ops
from rustyray.errors import conflict
from rustyray.protocol.control import Echo
from serve_apps.app import build_app

PEER_EVENTS = "subscription { peerEvents { eventType nodeId timestamp } }"
STATS_STREAM = ("subscription { networkStatsStream(intervalSecs: 1) "
                "{ messagesSent messagesReceived activeConnections } }")


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(3, tmp_path) as c:
        yield c


async def gql(cluster, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await cluster.client.post("/graphql", json={"query": query, "variables": variables or {}})
    assert r.status_code == 200, r.text  # errors are GraphQL errors, never HTTP errors
    return r.json()


async def echo(cluster, src: str, dst: str, count: int, size: int = 2000) -> None:
    for _ in range(count):
        await cluster.node(src).request(dst, Echo(data=os.urandom(size)), timeout=5)  # incompressible


# ----------------------------------------------------------------------------- queries
async def test_peers_show_the_view_with_live_per_peer_traffic(cluster):
    q = "{ peers { nodeId address state health bytesSent bytesReceived isLocal } }"
    before = {p["nodeId"]: p for p in (await gql(cluster, q))["data"]["peers"]}
    assert sorted(before) == ["node1", "node2", "node3"]
    for node_id, p in before.items():
        assert p["address"] == cluster.node(node_id).tcp_address
        assert (p["state"], p["health"]) == ("Active", "Healthy")
        assert p["isLocal"] is (node_id == "node1")
    await echo(cluster, "node1", "node2", 5)
    after = {p["nodeId"]: p for p in (await gql(cluster, q))["data"]["peers"]}
    assert int(after["node2"]["bytesSent"]) >= int(before["node2"]["bytesSent"]) + 5 * 2000
    assert int(after["node2"]["bytesReceived"]) >= int(before["node2"]["bytesReceived"]) + 5 * 2000
    assert int(after["node3"]["bytesSent"]) < int(before["node3"]["bytesSent"]) + 2000  # only node2 got them


async def test_topology_follows_the_cluster(cluster):
    q = "query($n: String) { topology(node: $n) { localNode clusterSize members { id address state } } }"
    topo = (await gql(cluster, q))["data"]["topology"]
    assert topo["localNode"] == "node1" and topo["clusterSize"] == 3
    assert {m["id"]: m["state"] for m in topo["members"]} == {f"node{i}": "Active" for i in (1, 2, 3)}
    assert (await gql(cluster, q, {"n": "node2"}))["data"]["topology"]["localNode"] == "node2"
    await cluster.node("node3").stop()
    for _ in range(200):
        topo = (await gql(cluster, q))["data"]["topology"]
        if topo["clusterSize"] == 2:
            break
        await asyncio.sleep(0.05)
    assert topo["clusterSize"] == 2
    assert next(m for m in topo["members"] if m["id"] == "node3")["state"] != "Active"


async def test_network_stats_are_the_live_counters_as_strings(cluster):
    q = "{ networkStats { messagesSent messagesReceived activeConnections avgLatencyMs } }"
    before = (await gql(cluster, q))["data"]["networkStats"]
    assert isinstance(before["messagesSent"], str) and before["messagesSent"].isdigit()
    rest = (await cluster.client.get("/stats")).json()  # the same operation as REST
    assert rest["active_connections"] == before["activeConnections"]
    await echo(cluster, "node1", "node2", 10, 10)
    after = (await gql(cluster, q))["data"]["networkStats"]
    assert int(after["messagesSent"]) >= int(before["messagesSent"]) + 10
    assert int(after["messagesReceived"]) >= int(before["messagesReceived"]) + 10
    assert after["avgLatencyMs"] > 0


async def test_errors_are_graphql_errors_with_status_and_field(cluster):
    body = await gql(cluster, '{ networkStats(node: "node9") { messagesSent } }')
    assert body["data"] is None
    err = body["errors"][0]
    assert "node9" in err["message"] and err["extensions"] == {"status": 404, "field": "node"}
    body = await gql(cluster, "{ nosuchField }")
    assert "nosuchField" in body["errors"][0]["message"]
    body = await gql(cluster, "mutation { joinCluster { success } }")  # seedNodes is required
    assert "seedNodes" in body["errors"][0]["message"]


# ----------------------------------------------------------------------------- mutations
async def test_mutations_call_the_shared_operations(cluster, monkeypatch):
    calls = []

    async def join(gw, *, seed_nodes):
        calls.append(("join", gw, seed_nodes))
        return {"success": True, "node_id": "node4", "address": "127.0.0.1:1", "cluster_size": 4}

    async def leave(gw):
        calls.append(("leave", gw))
        raise conflict("node1 is the last member", "node_id")

    monkeypatch.setattr(serve_apps.ops, "join_cluster", join)
    monkeypatch.setattr(serve_apps.ops, "leave_cluster", leave)
    body = await gql(cluster, 'mutation { joinCluster(seedNodes: ["a:7000", "b:7000"]) '
                              '{ success message clusterSize } }')
    assert body["data"]["joinCluster"] == {"success": True, "message": "Successfully joined cluster as node4",
                                           "clusterSize": 4}
    body = await gql(cluster, "mutation { leaveCluster { success message } }")
    assert body["errors"][0]["extensions"] == {"status": 409, "field": "node_id"}
    assert calls == [("join", cluster.gateway, ["a:7000", "b:7000"]), ("leave", cluster.gateway)]


async def test_join_cluster_really_starts_a_node_that_joins(cluster):
    seed = cluster.node("node2").tcp_address
    body = await gql(cluster, "mutation($s: [String!]!) { joinCluster(seedNodes: $s) { success message "
                              "clusterSize nodeId } }", {"s": [seed]})
    assert body["data"]["joinCluster"] == {"success": True, "message": "Successfully joined cluster as node4",
                                           "clusterSize": 4, "nodeId": "node4"}
    assert cluster.node("node4").running  # started through the gateway's spawner
    peers = (await gql(cluster, "{ peers { nodeId state } }"))["data"]["peers"]
    assert {"nodeId": "node4", "state": "Active"} in peers


async def test_leave_cluster_makes_the_fronted_node_leave(cluster):
    body = await gql(cluster, "mutation { leaveCluster { success message nodeId clusterSize } }")
    assert body["data"]["leaveCluster"] == {
        "success": True, "message": "Successfully left cluster (node1)", "nodeId": "node1", "clusterSize": 2}
    assert "node1" not in cluster.nodes
    q = "{ topology { localNode clusterSize members { id state } } }"
    topo = (await gql(cluster, q))["data"]["topology"]
    assert topo["localNode"] == "node2" and topo["clusterSize"] == 2
    assert all(m["state"] != "Active" for m in topo["members"] if m["id"] == "node1")


# ----------------------------------------------------------------------------- subscriptions
@contextlib.asynccontextmanager
async def served(cluster, auth=None):
    """The real app over the cluster's gateway, served by uvicorn on a free loopback port."""
    app = build_app(cluster.gateway, auth or harness_auth())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", ws="websockets-sansio"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await wait_for(lambda: server.started, 10)
        yield app, f"ws://127.0.0.1:{sock.getsockname()[1]}/api/v1/network/graphql/ws"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def receive(ws, timeout: float = 10.0) -> dict[str, Any]:
    while True:
        msg = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if msg["type"] not in ("ka", "ping", "pong"):
            return msg


async def open_ws(url: str, protocol: str):
    ws = await connect(url, subprotocols=[protocol])
    assert ws.subprotocol == protocol
    await ws.send(json.dumps({"type": "connection_init"}))
    assert (await receive(ws))["type"] == "connection_ack"
    return ws


async def subscribe(ws, sub_id: str, query: str) -> None:
    kind = "subscribe" if ws.subprotocol == "graphql-transport-ws" else "start"
    await ws.send(json.dumps({"id": sub_id, "type": kind, "payload": {"query": query}}))


def payload(msg: dict[str, Any]) -> dict[str, Any]:
    assert msg["type"] in ("next", "data"), msg
    return msg["payload"]["data"]


async def test_subscriptions_share_one_poller_and_stream_live_events(cluster, monkeypatch):
    in_flight, peak = [0], [0]
    real_call = cluster.gateway.call

    async def counting_call(node_id, service, method, /, **kw):
        if (service, method) != ("membership", "events"):
            return await real_call(node_id, service, method, **kw)
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        try:
            return await real_call(node_id, service, method, **kw)
        finally:
            in_flight[0] -= 1

    monkeypatch.setattr(cluster.gateway, "call", counting_call)
    async with served(cluster) as (app, url):
        hub = app.state.graphql_hub
        new_ws = await open_ws(url, "graphql-transport-ws")
        old_ws = await open_ws(url, "graphql-ws")
        await subscribe(new_ws, "a", PEER_EVENTS)
        await subscribe(new_ws, "b", PEER_EVENTS)
        await subscribe(old_ws, "c", PEER_EVENTS)
        await subscribe(new_ws, "s", STATS_STREAM)
        await wait_for(lambda: hub.peer_events.subscriber_count == 3)
        await wait_for(lambda: hub.network_stats.subscriber_count == 1)
        await asyncio.wait_for(hub.peer_events.primed.wait(), 10)

        await cluster.start_node("node4", seeds=(cluster.node("node1").tcp_address,))
        got: dict[str, dict[str, Any]] = {}
        ticks = []
        while len(got) < 3 or len(ticks) < 2:
            for ws in (new_ws, old_ws) if len(got) < 3 else (new_ws,):
                with contextlib.suppress(TimeoutError):
                    msg = await receive(ws, 0.2)
                    if msg["id"] == "s":
                        ticks.append(payload(msg)["networkStatsStream"])
                    else:
                        got[msg["id"]] = payload(msg)["peerEvents"]
        for sub_id in "abc":
            assert got[sub_id]["eventType"] == "NodeJoined" and got[sub_id]["nodeId"] == "node4"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", got[sub_id]["timestamp"])
        assert peak[0] == 1  # three subscribers, one upstream long-poll
        assert ticks[-1]["activeConnections"] > 0 and ticks[-1]["messagesSent"].isdigit()

        await new_ws.send(json.dumps({"id": "b", "type": "complete"}))
        await wait_for(lambda: hub.peer_events.subscriber_count == 2)
        await new_ws.close()
        await wait_for(lambda: hub.subscriber_count == 1)
        await old_ws.send(json.dumps({"id": "c", "type": "stop"}))
        assert await receive(old_ws) == {"type": "complete", "id": "c"}
        await wait_for(lambda: hub.subscriber_count == 0)
        assert not hub.peer_events.running and not hub.network_stats.running  # pollers gone with them
        await old_ws.close()


async def test_stats_stream_ticks_move_in_both_protocols(cluster):
    async with served(cluster) as (app, url):
        for protocol in ("graphql-transport-ws", "graphql-ws"):
            ws = await open_ws(url, protocol)
            await subscribe(ws, "1", STATS_STREAM)
            first = payload(await receive(ws))["networkStatsStream"]
            await echo(cluster, "node1", "node3", 20, 10)
            second = payload(await receive(ws))["networkStatsStream"]
            assert int(second["messagesSent"]) >= int(first["messagesSent"]) + 20
            await ws.close()
        await wait_for(lambda: app.state.graphql_hub.subscriber_count == 0)
        assert not app.state.graphql_hub.network_stats.running


async def test_stats_stream_rejects_a_bad_interval(cluster):
    async with served(cluster) as (app, url):
        ws = await open_ws(url, "graphql-transport-ws")
        await subscribe(ws, "1", "subscription { networkStatsStream(intervalSecs: 0) { messagesSent } }")
        msg = await receive(ws)
        assert msg["type"] == "next" and msg["payload"]["data"] is None
        assert msg["payload"]["errors"][0]["extensions"] == {"status": 422, "field": "intervalSecs"}
        assert await receive(ws) == {"id": "1", "type": "complete"}
        await ws.close()
        assert app.state.graphql_hub.subscriber_count == 0


# ----------------------------------------------------------------------------- metrics
def sample(text: str, name: str, node: str) -> float:
    return labelled(text, name, node=node)


async def test_metrics_expose_every_node_with_live_values(cluster):
    r = await cluster.client.get("http://test/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for name in ("rustyray_messages_sent_total", "rustyray_messages_received_total",
                 "rustyray_bytes_sent_total", "rustyray_bytes_received_total",
                 "rustyray_active_connections", "rustyray_connection_errors_total",
                 "rustyray_request_latency_ms", "rustyray_peers_connected", "rustyray_incarnation"):
        for node in ("node1", "node2", "node3"):
            sample(text, name, node)
    assert "# TYPE rustyray_messages_sent_total counter" in text
    assert sample(text, "rustyray_peers_connected", "node2") == 2
    before = sample(text, "rustyray_bytes_sent_total", "node2")
    await echo(cluster, "node2", "node3", 5)
    await cluster.node("node3").stop()
    text = (await cluster.client.get("/metrics")).text  # also under the API prefix
    assert sample(text, "rustyray_bytes_sent_total", "node2") >= before + 5 * 2000
    assert sample(text, "rustyray_request_latency_ms", "node2") > 0
    assert sample(text, "rustyray_node_up", "node3") == 0 and sample(text, "rustyray_node_up", "node1") == 1


def labelled(text: str, name: str, **labels: str) -> float:
    """The value of ``name`` whose label set is exactly ``labels``."""
    value = prom_sample(text, name, **labels)
    assert value is not None, f"{name}{labels} missing"
    return value


async def test_metrics_carry_phi_members_raft_breakers_pools_and_a_latency_histogram(cluster):
    text = (await cluster.client.get("/metrics")).text
    assert "# TYPE rustyray_request_latency_seconds histogram" in text
    for node in ("node1", "node2", "node3"):
        assert labelled(text, "rustyray_members", node=node, state="Alive") == 3
        assert labelled(text, "rustyray_members", node=node, state="Dead") == 0
        assert labelled(text, "rustyray_raft_term", node=node) >= 1
        assert labelled(text, "rustyray_raft_commit_index", node=node) >= 1
        for peer in {"node1", "node2", "node3"} - {node}:
            assert labelled(text, "rustyray_phi", node=node, peer=peer) >= 0
            assert labelled(text, "rustyray_circuit_breaker_state", node=node, peer=peer, state="Closed") == 1
    assert sum(labelled(text, "rustyray_raft_leader", node=n) for n in ("node1", "node2", "node3")) == 1

    count = labelled(text, "rustyray_request_latency_seconds_count", node="node2")
    inf = labelled(text, "rustyray_request_latency_seconds_bucket", node="node2", le="+Inf")
    assert inf == count
    await echo(cluster, "node2", "node1", 7)
    text = (await cluster.client.get("/metrics")).text
    assert labelled(text, "rustyray_request_latency_seconds_count", node="node2") == count + 7
    assert labelled(text, "rustyray_request_latency_seconds_sum", node="node2") > 0

    # the breaker row follows the real routing hook
    lb = cluster.node("node1").services["loadbalancer"]
    for _ in range(lb.breakers.config.failure_threshold):
        lb.before_send("node3")
        lb.after_send("node3", False, 1.0)
    text = (await cluster.client.get("/metrics")).text
    assert labelled(text, "rustyray_circuit_breaker_state", node="node1", peer="node3", state="Open") == 1
    assert labelled(text, "rustyray_circuit_breaker_state", node="node1", peer="node3", state="Closed") == 0

    # a node that dies: its phi climbs on the others and SWIM moves it out of Alive
    # (phi is 0 until a peer's first heartbeat: let node1 hear node3 a few times first)
    monitor = cluster.node("node1").services["health"].monitor
    await wait_for(lambda: monitor.peer_status("node3", time.monotonic()).heartbeats >= 2, 15)
    text = (await cluster.client.get("/metrics")).text
    phi_before = labelled(text, "rustyray_phi", node="node1", peer="node3")
    await cluster.node("node3").stop(graceful=False)
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        text = (await cluster.client.get("/metrics")).text
        phi = labelled(text, "rustyray_phi", node="node1", peer="node3")
        alive = labelled(text, "rustyray_members", node="node1", state="Alive")
        if phi > phi_before and alive == 2:
            break
        assert asyncio.get_running_loop().time() < deadline, (phi, alive)
        await asyncio.sleep(0.2)
    gone = sum(labelled(text, "rustyray_members", node="node1", state=s) for s in ("Suspect", "Dead"))
    assert gone == 1


async def _ws_outcome(url: str, protocol: str, init: dict[str, Any], headers: dict[str, str] | None = None):
    """``connection_ack`` or the close code the server answered ``init`` with."""
    ws = await connect(url, subprotocols=[protocol], additional_headers=headers or {})
    try:
        await ws.send(json.dumps(init))
        try:
            return (await receive(ws))["type"]
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
    finally:
        await ws.close()


async def test_websocket_needs_a_token_where_reads_are_closed_and_mutations_need_admin(cluster):
    auth = harness_auth(read_open=False)
    async with served(cluster, auth) as (_app, url):
        proto = "graphql-transport-ws"
        assert await _ws_outcome(url, proto, {"type": "connection_init"}) == 4403
        bad = {"type": "connection_init", "payload": {"authorization": "Bearer nope"}}
        assert await _ws_outcome(url, proto, bad) == 4403
        assert auth.failures["missing"] >= 1 and auth.failures["invalid"] >= 1
        ok = {"type": "connection_init", "payload": {"authorization": f"Bearer {READ_TOKEN}"}}
        assert await _ws_outcome(url, proto, ok) == "connection_ack"
        header = {"Authorization": f"Bearer {READ_TOKEN}"}
        assert await _ws_outcome(url, proto, {"type": "connection_init"}, header) == "connection_ack"

        # A read-only connection may not run a mutation over the socket: refused, and the node stays.
        ws = await connect(url, subprotocols=[proto])
        await ws.send(json.dumps(ok))
        assert (await receive(ws))["type"] == "connection_ack"
        before = auth.failures["forbidden"]
        await ws.send(json.dumps({"id": "m", "type": "subscribe",
                                  "payload": {"query": "mutation { leaveCluster { success } }"}}))
        msg = await receive(ws)
        await ws.close()
        assert msg["type"] == "next" and "admin role" in msg["payload"]["errors"][0]["message"], msg
        assert auth.failures["forbidden"] == before + 1
        assert cluster.node("node1").running
