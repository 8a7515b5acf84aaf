"""The core endpoints against a live in-process 3-node cluster (real sockets, real TLS)."""

from __future__ import annotations

import pytest
from harness import local_cluster


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(3, tmp_path) as c:
        yield c


async def test_nodes_lists_every_node_with_live_addresses(cluster):
    r = await cluster.client.get("/nodes")
    assert r.status_code == 200
    body = r.json()
    assert [n["node_id"] for n in body["nodes"]] == ["node1", "node2", "node3"]
    for n in body["nodes"]:
        assert n["address"] == cluster.node(n["node_id"]).tcp_address
        assert n["quic_address"] == cluster.node(n["node_id"]).quic_address
        assert n["state"] == "Alive"


async def test_tcp_and_quic_connect_really_dial(cluster):
    node2 = cluster.node("node2")
    r = await cluster.client.post("/transport/tcp/connect",
                                  json={"host": "127.0.0.1", "port": node2.tcp_port, "node_id": "node2"})
    body = r.json()
    assert body["success"] is True and body["state"] == "Connected" and body["encrypted"] is True
    assert body["connection_id"] in cluster.node("node1").connections
    r = await cluster.client.post("/transport/quic/connect",
                                  json={"host": "127.0.0.1", "port": node2.quic_port, "node_id": "node2"})
    body = r.json()
    assert body["success"] is True and body["protocol"] == "QUIC" and body["encrypted"] is True


async def test_connect_to_closed_port_fails_cleanly(cluster):
    node3 = cluster.node("node3")
    port = node3.tcp_port
    await node3.stop()
    r = await cluster.client.post("/transport/tcp/connect", json={"host": "127.0.0.1", "port": port})
    assert r.status_code == 200
    assert r.json()["success"] is False and "error" in r.json()


async def test_wrong_node_id_is_refused_in_the_handshake(cluster):
    r = await cluster.client.post("/transport/tcp/connect",
                                  json={"host": "127.0.0.1", "port": cluster.node("node2").tcp_port,
                                        "node_id": "node3"})
    assert r.json()["success"] is False


@pytest.mark.parametrize("body,field", [
    ({"host": "127.0.0.1"}, "port"),
    ({"host": "127.0.0.1", "port": 0}, "port"),
    ({"host": "127.0.0.1", "port": 70000}, "port"),
    ({"port": 7000}, "host"),
])
async def test_connect_rejects_bad_input_naming_the_field(cluster, body, field):
    r = await cluster.client.post("/transport/tcp/connect", json=body)
    assert r.status_code == 422
    assert r.json()["field"] == field


async def test_encode_reports_the_real_frame(cluster):
    data = {"node_id": "node1", "timestamp": 1733943600}
    plain = (await cluster.client.post("/protocol/encode",
                                       json={"message_type": "Heartbeat", "compression": "none", "data": data})).json()
    assert plain["compression_ratio"] == 1.0 and plain["encoded_size"] == plain["payload_size"] + 18
    big = {"node_id": "node1", "timestamp": 1, "seq": 2}
    r = await cluster.client.post("/protocol/encode", json={"message_type": "QueryRequest", "compression": "zstd",
                                                            "data": {"query": "SELECT * FROM users " * 50, **big}})
    body = r.json()
    assert body["compression_ratio"] < 0.5
    assert len(body["checksum"]) == 8


@pytest.mark.parametrize("body,status,field", [
    ({"message_type": "Heartbeat", "compression": "brotli", "data": {}}, 422, "compression"),
    ({"message_type": "Heartbeat", "compression": "lz4", "data": {"node_id": 5}}, 422, "data"),
    ({"compression": "lz4", "data": {}}, 422, "message_type"),
    ({"message_type": "Blob", "compression": "none", "data": {"x": "a" * (17 * 1024 * 1024)}}, 413, "data"),
])
async def test_encode_rejects_bad_input(cluster, body, status, field):
    r = await cluster.client.post("/protocol/encode", json=body)
    assert r.status_code == status
    assert r.json()["field"] == field


async def test_handshake_negotiates_against_the_node(cluster):
    r = await cluster.client.post("/protocol/handshake",
                                  json={"node_id": "node9", "protocol_version": 1, "capabilities": ["lz4", "tls13"]})
    body = r.json()
    assert body == {**body, "accepted": True, "negotiated_protocol": 1, "compression": "lz4"}
    assert body["peer_capabilities"] == cluster.node("node1").capabilities
    r = await cluster.client.post("/protocol/handshake",
                                  json={"node_id": "node9", "protocol_version": 7, "capabilities": ["zstd"]})
    assert r.json()["accepted"] is False and "version" in r.json()["reason"]
    r = await cluster.client.post("/protocol/handshake",
                                  json={"node_id": "node9", "protocol_version": 1, "capabilities": ["gzip"]})
    assert r.status_code == 422 and r.json()["field"] == "capabilities"


async def test_unknown_node_is_404(cluster):
    r = await cluster.client.get("/stats", params={"node": "node42"})
    assert r.status_code == 404 and r.json()["field"] == "node"


async def test_stats_move_when_messages_flow(cluster):
    before = (await cluster.client.get("/stats")).json()
    from rustyray.protocol.control import Echo

    for _ in range(10):
        await cluster.node("node1").request("node2", Echo(data=b"x" * 100))
    after = (await cluster.client.get("/stats")).json()
    assert after["messages_sent"] >= before["messages_sent"] + 10
    assert after["bytes_sent"] > before["bytes_sent"]
    assert after["avg_latency_ms"] > 0


async def test_initialize_is_idempotent(cluster):
    first = (await cluster.client.post("/manager/initialize")).json()
    second = (await cluster.client.post("/manager/initialize")).json()
    assert first["initialized"] and not first["already_initialized"]
    assert second["already_initialized"] and second["initialized_at"] == first["initialized_at"]
    assert {c["name"] for c in first["components"]} >= {"transport", "membership", "discovery"}


def _component(report: dict, name: str) -> dict:
    return next(c for c in report["components"] if c["name"] == name)


async def test_the_transport_component_reports_its_listeners_for_real(cluster):
    """Not a constant "healthy": stop node1's TCP listener and initialize says failed, naming it."""
    node = cluster.node("node1")
    transport = _component((await cluster.client.post("/manager/initialize")).json(), "transport")
    assert transport["status"] == "healthy" and node.tcp_address in transport["detail"]
    assert node.quic_address in transport["detail"]
    await node._tcp.stop()  # the listener goes away; the node process stays up
    report = (await cluster.client.post("/manager/initialize", params={"node": "node1"})).json()
    transport = _component(report, "transport")
    assert transport["status"] == "failed" and "not serving" in transport["detail"]
    assert report["initialized"] is False
    other = _component((await cluster.client.post("/manager/initialize", params={"node": "node2"})).json(),
                       "transport")
    assert other["status"] == "healthy"


@pytest.mark.parametrize("path,body,field", [
    ("/transport/tcp/connect", {"host": "192.168.1.10", "port": 7000, "node_id": "node2"}, "host"),
    ("/transport/quic/connect", {"host": "10.0.0.1", "port": 7001}, "host"),
    ("/transport/tcp/connect", {"host": "db.example.com", "port": 7000}, "host"),
    ("/membership/join", {"node_id": "node9", "seed_nodes": ["192.168.1.10:5432"]}, "seed_nodes"),
    ("/health/checks/add", {"node_id": "node2", "check_type": "HTTP", "endpoint": "http://8.8.8.8/health",
                            "interval_ms": 5000, "timeout_ms": 2000}, "endpoint"),
])
async def test_addresses_outside_the_dial_policy_are_refused_without_traffic(cluster, path, body, field):
    errors = cluster.node("node1").stats.connection_errors
    r = await cluster.client.post(path, json=body)
    assert r.status_code == 403 and r.json()["field"] == field
    assert "allowed" in r.json()["error"]
    assert cluster.node("node1").stats.connection_errors == errors  # nothing was dialled


async def test_a_health_check_naming_a_node_resolves_to_that_node(cluster):
    r = await cluster.client.post("/health/checks/add", json={
        "node_id": "node2", "check_type": "TCP", "endpoint": f"node2:{cluster.node('node2').tcp_port}",
        "interval_ms": 200, "timeout_ms": 1000})
    body = r.json()
    assert r.status_code == 200 and body["resolved_endpoint"] == cluster.node("node2").tcp_address
