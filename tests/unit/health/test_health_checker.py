"""HealthChecker against real listeners on 127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import socket

import grpc
import grpc.aio
import pytest

from rustyray.health import HealthAggregator, UnknownCheckError
from rustyray.health.checker import (
    CheckStatus,
    CheckType,
    HealthChecker,
    decode_health_status,
    encode_health_request,
    parse_host_port,
)


@pytest.fixture
async def tcp_server():
    accepted = []

    async def on_conn(reader, writer):
        accepted.append(1)
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield port, accepted
    server.close()
    await server.wait_closed()


@pytest.fixture
async def http_server():
    """A tiny HTTP/1.1 server: /health -> 200, /sick -> 503, /hang -> never answers."""
    hung: list[asyncio.StreamWriter] = []

    async def on_conn(reader, writer):
        request_line = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        path = request_line.split()[1].decode() if request_line else "/"
        if path == "/hang":
            hung.append(writer)
            return
        status = "200 OK" if path == "/health" else "503 Service Unavailable"
        body = b"ok"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    for w in hung:
        w.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
async def grpc_server():
    """grpc.health.v1 served with raw bytes: "" -> SERVING, "sick" -> NOT_SERVING."""

    async def check(request: bytes, context) -> bytes:
        return b"\x08\x02" if request == encode_health_request("sick") else b"\x08\x01"

    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health", {"Check": grpc.unary_unary_rpc_method_handler(check)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield port
    await server.stop(None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_tcp_check_passes_and_fails(tcp_server):
    port, accepted = tcp_server
    hc = HealthChecker()
    ok = hc.add_check("node2", "TCP", f"127.0.0.1:{port}", interval_ms=1000, timeout_ms=1000)
    bad = hc.add_check("node3", CheckType.TCP, f"127.0.0.1:{free_port()}", timeout_ms=1000)
    assert (ok.check_id, bad.check_id) == ("hc-1", "hc-2")
    assert hc.result("hc-1").status is CheckStatus.PENDING
    r = await hc.run_once(ok.check_id)
    assert r.status is CheckStatus.PASSING and r.error is None and r.latency_ms >= 0
    for expected in (1, 2):
        r = await hc.run_once(bad.check_id)
        assert r.status is CheckStatus.FAILING and r.consecutive_failures == expected
        assert "Error" in r.error
    assert accepted
    await hc.stop()


async def test_http_check_statuses_and_timeout(http_server):
    hc = HealthChecker()
    good = hc.add_check("node2", "HTTP", f"{http_server}/health", timeout_ms=2000)
    sick = hc.add_check("node2", "HTTP", f"{http_server}/sick", timeout_ms=2000)
    hang = hc.add_check("node3", "http", f"{http_server}/hang", timeout_ms=100)
    assert (await hc.run_once(good.check_id)).status is CheckStatus.PASSING
    r = await hc.run_once(sick.check_id)
    assert r.status is CheckStatus.FAILING and r.error == "HTTP 503"
    r = await hc.run_once(hang.check_id)
    assert r.status is CheckStatus.FAILING and "timed out" in r.error
    summary = hc.summary()
    assert summary["node2"]["checks_passed"] == 1 and summary["node2"]["checks_total"] == 2
    assert summary["node3"]["latency_ms"] is None
    signals = hc.node_signals()
    report = HealthAggregator().aggregate(signals.values())
    by_node = {n.node: n for n in report.nodes}
    assert by_node["node2"].components["checks"] == 0.5
    assert set(by_node["node2"].components) == {"checks", "latency"}  # latency of the passing check
    assert by_node["node3"].score == 0.0 and by_node["node3"].components == {"checks": 0.0}
    await hc.stop()


async def test_grpc_health_check(grpc_server):
    hc = HealthChecker()
    ok = hc.add_check("node2", "gRPC", f"127.0.0.1:{grpc_server}", timeout_ms=3000)
    sick = hc.add_check("node2", "gRPC", f"grpc://127.0.0.1:{grpc_server}/sick", timeout_ms=3000)
    down = hc.add_check("node3", "gRPC", f"127.0.0.1:{free_port()}", timeout_ms=500)
    assert (await hc.run_once(ok.check_id)).status is CheckStatus.PASSING
    r = await hc.run_once(sick.check_id)
    assert r.status is CheckStatus.FAILING and "NOT_SERVING" in r.error
    assert (await hc.run_once(down.check_id)).status is CheckStatus.FAILING
    await hc.stop()


async def test_custom_checks():
    hc = HealthChecker()
    calls = []

    async def disk_ok(spec):
        calls.append(spec.node_id)
        return True

    async def disk_full(spec):
        return False

    async def broken(spec):
        raise RuntimeError("probe crashed")

    hc.register_custom("disk_ok", disk_ok)
    hc.register_custom("disk_full", disk_full)
    hc.register_custom("broken", broken)
    a = hc.add_check("n1", "Custom", "disk_ok")
    b = hc.add_check("n1", "Custom", "disk_full")
    c = hc.add_check("n1", "Custom", "broken")
    assert (await hc.run_once(a.check_id)).status is CheckStatus.PASSING
    assert (await hc.run_once(b.check_id)).error == "custom check returned False"
    assert (await hc.run_once(c.check_id)).error == "RuntimeError: probe crashed"
    assert calls == ["n1"]
    with pytest.raises(UnknownCheckError, match="endpoint"):
        hc.add_check("n1", "Custom", "not_registered")


async def test_periodic_runs_and_stop_cancels(tcp_server):
    port, _ = tcp_server
    seen: list[str] = []
    enough = asyncio.Event()

    def on_result(result):
        seen.append(result.check_id)
        if seen.count("hc-1") >= 3 and "hc-2" in seen:
            enough.set()

    hc = HealthChecker(on_result=on_result)
    hc.add_check("node2", "TCP", f"127.0.0.1:{port}", interval_ms=10, timeout_ms=1000)
    async with hc:
        hc.add_check("node3", "TCP", f"127.0.0.1:{port}", interval_ms=10, timeout_ms=1000)  # while running
        await asyncio.wait_for(enough.wait(), timeout=10)
        assert hc.running
    assert not hc.running
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("health-check-")]
    assert hc.result("hc-1").runs >= 3
    assert await hc.remove_check("hc-1") and not await hc.remove_check("hc-1")
    with pytest.raises(UnknownCheckError):
        hc.result("hc-1")


@pytest.mark.parametrize(
    ("check_type", "endpoint", "kw", "field"),
    [
        ("TCP", "localhost", {}, "endpoint"),
        ("TCP", "localhost:0", {}, "endpoint"),
        ("TCP", "localhost:99999", {}, "endpoint"),
        ("TCP", "::1:80", {}, "endpoint"),
        ("HTTP", "ftp://node2/health", {}, "endpoint"),
        ("HTTP", "node2:8080/health", {}, "endpoint"),
        ("HTTP", "http:///health", {}, "endpoint"),
        ("gRPC", "grpc://node2", {}, "endpoint"),
        ("TCP", "127.0.0.1:80", {"interval_ms": 0}, "interval_ms"),
        ("TCP", "127.0.0.1:80", {"timeout_ms": -1}, "timeout_ms"),
        ("TCP", "127.0.0.1:80", {"node_id": ""}, "node_id"),
        ("SNMP", "127.0.0.1:80", {}, "check_type"),
    ],
)
def test_add_check_validation(check_type, endpoint, kw, field):
    hc = HealthChecker()
    node_id = kw.pop("node_id", "node2")
    with pytest.raises(ValueError, match=field):
        hc.add_check(node_id, check_type, endpoint, **kw)
    assert hc.checks() == []


def test_host_port_parsing_and_grpc_codec():
    assert parse_host_port("[::1]:8080") == ("::1", 8080)
    assert parse_host_port("node2:80") == ("node2", 80)
    assert encode_health_request("") == b""
    assert encode_health_request("db") == b"\x0a\x02db"
    assert decode_health_status(b"\x08\x01") == 1
    assert decode_health_status(b"") == 0
    assert decode_health_status(b"\x12\x01x\x08\x02") == 2  # unknown field skipped
    with pytest.raises(ValueError):
        decode_health_status(b"\x08")
