"""The aggregator's inputs per node, and where a dialled health check goes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustyray.health.aggregator import NodeSignals
from rustyray.health.endpoints import ResolvedEndpoint, host_table, resolve_endpoint
from rustyray.health.heartbeat import HeartbeatStatus, PeerHeartbeat
from rustyray.health.signals import node_signals, request_signals


def stats(sent: int = 0, failed: int = 0, latencies=()):
    return SimpleNamespace(requests_sent=sent, requests_failed=failed, latencies_ms=list(latencies))


def row(node_id: str, phi: float, status: HeartbeatStatus) -> PeerHeartbeat:
    return PeerHeartbeat(node_id, 100, phi, status, 3)


def test_request_signals():
    assert request_signals(stats()) == (0.0, None)
    assert request_signals(stats(4, 1, [10.0, 30.0])) == (0.25, 20.0)
    assert request_signals(stats(1, 5)) == (1.0, None)  # clamped


def test_node_signals_force_phi_for_suspected_peers_and_merge_checks():
    rows = [row("c", 9.5, HeartbeatStatus.FAILED), row("b", 3.0, HeartbeatStatus.SUSPECTED),
            row("a", 1.0, HeartbeatStatus.HEALTHY)]
    checks = {"me": NodeSignals("me", checks_passed=1, checks_total=2, latency_ms=7.0),
              "a": NodeSignals("a", checks_passed=2, checks_total=2, latency_ms=5.0)}
    out = node_signals("me", stats(2, 0), rows, checks, threshold=8.0,
                       peer_signals=lambda n: (0.5, 12.0) if n == "b" else (None, None))
    assert [s.node for s in out] == ["me", "a", "b", "c"]
    me, a, b, c = out
    assert me == NodeSignals("me", None, 1, 2, 0.0, 7.0)  # no phi; no own latency: the checks' one
    assert a == NodeSignals("a", 1.0, 2, 2, None, 5.0)
    assert b == NodeSignals("b", 8.0, None, None, 0.5, 12.0)  # Suspected: phi forced to the threshold
    assert c.phi == 9.5  # already above it


def test_node_signals_without_routing():
    out = node_signals("me", stats(), [row("a", 0.5, HeartbeatStatus.HEALTHY)], {}, threshold=8.0)
    assert out[1] == NodeSignals("a", 0.5, None, None, None, None)


HOSTS = host_table("node1", "10.0.0.1", [("node2", "10.0.0.2:7000"), ("node3", "[::1]:7000")])


def test_host_table():
    assert HOSTS == {"node1": "10.0.0.1", "node2": "10.0.0.2", "node3": "::1"}


@pytest.mark.parametrize(("check_type", "endpoint", "expected"), [
    ("HTTP", "http://node2:8080/health", ResolvedEndpoint("10.0.0.2", "http://10.0.0.2:8080/health")),
    ("http", "https://example.org/x", ResolvedEndpoint("example.org", "https://example.org/x")),
    ("TCP", "node3:50051", ResolvedEndpoint("::1", "[::1]:50051")),
    ("GRPC", "node1:50051", ResolvedEndpoint("10.0.0.1", "10.0.0.1:50051")),
    ("TCP", "127.0.0.1:9", ResolvedEndpoint("127.0.0.1", "127.0.0.1:9")),
    ("TCP", "node2", None),  # no port: the checker refuses it
    ("HTTP", "node2:8080/health", None),  # no scheme
    ("TCP", "tcp://node2:1", None),
    ("custom", "event_loop", None),  # dials nothing
    ("SMTP", "node2:25", None),  # unknown type: the checker's 422
    (None, "node2:25", None),
    ("TCP", 42, None),
])
def test_resolve_endpoint(check_type, endpoint, expected):
    assert resolve_endpoint(check_type, endpoint, HOSTS) == expected


@given(host=st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z]{2,5})?", fullmatch=True),
       port=st.integers(min_value=1, max_value=65535))
def test_an_address_that_names_no_node_is_dialled_as_given(host, port):
    assert resolve_endpoint("TCP", f"{host}:{port}", {}) == ResolvedEndpoint(host, f"{host}:{port}")
