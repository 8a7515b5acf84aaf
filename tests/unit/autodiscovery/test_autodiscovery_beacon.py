"""BeaconCore on a fake clock: interval, TTL expiry, status shape."""

from __future__ import annotations

import random

import pytest

from rustyray.autodiscovery.beacon import BeaconConfig, BeaconCore
from rustyray.autodiscovery.broadcast_core import BroadcastConfig, BroadcastCore, NodeIdentity

SECRET = b"0123456789abcdef-cluster-secret"
T0 = 1_700_000_000.0


def node(name: str, cfg: BeaconConfig) -> BeaconCore:
    bc = BroadcastCore(
        BroadcastConfig.local("prod", SECRET, 47001),
        NodeIdentity(name, f"{name}:7000"),
        random.Random(hash(name) & 0xFFFF),
    )
    return BeaconCore(cfg, bc)


def test_beacons_every_interval_and_silent_nodes_expire() -> None:
    cfg = BeaconConfig(enabled=True, interval_ms=1000, ttl_ms=3000)
    a, b = node("a", cfg), node("b", cfg)
    sent = a.start(T0)
    assert len(sent) == 1
    b.broadcast.receive(sent[0].data, ("127.0.0.1", 1), T0 + 0.001)
    assert a.next_deadline() == T0 + 1.0
    assert a.on_timer(T0 + 0.5) == []
    later = a.on_timer(T0 + 1.0)
    assert len(later) == 1
    b.broadcast.receive(later[0].data, ("127.0.0.1", 1), T0 + 1.0)
    st = b.status(T0 + 2.0)
    assert st["beacons_received"] == 2
    assert st["candidates"] == [{"node_id": "a", "address": "a:7000", "last_seen_ms": 1000, "expires_in_ms": 2000}]
    # a falls silent: b keeps it until last_seen + ttl, then drops it
    b.on_timer(T0 + 3.99)
    assert [c.node_id for c in b.broadcast.candidates] == ["a"]
    b.on_timer(T0 + 4.01)
    assert b.expired == ["a"]
    assert b.status(T0 + 4.01)["candidates"] == []


def test_stalled_loop_does_not_burst() -> None:
    a = node("a", BeaconConfig(enabled=True, interval_ms=100, ttl_ms=500))
    a.start(T0)
    assert len(a.on_timer(T0 + 10.0)) == 1
    assert a.next_deadline() == pytest.approx(T0 + 10.1)
    assert a.beacons_sent == 2


def test_disabled_sends_nothing_and_status_shape() -> None:
    a = node("a", BeaconConfig())
    assert a.start(T0) == [] and a.next_deadline() is None
    assert a.status(T0) == {
        "enabled": False,
        "interval_ms": 1000,
        "ttl_ms": 5000,
        "beacons_sent": 0,
        "beacons_received": 0,
        "candidates": [],
    }


def test_ttl_must_exceed_interval() -> None:
    with pytest.raises(ValueError, match="ttl_ms"):
        BeaconConfig(interval_ms=1000, ttl_ms=1000).validate()
