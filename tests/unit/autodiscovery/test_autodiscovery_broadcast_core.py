"""BroadcastCore: signing, verification, freshness, replay, cluster isolation, reply counting."""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.autodiscovery.broadcast_core import (
    AutodiscSigned,
    BroadcastConfig,
    BroadcastCore,
    CandidateSeen,
    NodeIdentity,
    PacketDropped,
    SendDatagram,
)
from rustyray.autodiscovery.errors import AutodiscoveryConfigError

SECRET = b"0123456789abcdef-cluster-secret"
T0 = 1_700_000_000.0


def core(node: str, *, cluster: str = "prod", secret: bytes = SECRET, seed: int = 0) -> BroadcastCore:
    cfg = BroadcastConfig.local(cluster, secret, 47000)
    ident = NodeIdentity(node, f"127.0.0.1:{7000 + int(node[-1])}", f"127.0.0.1:{8000 + int(node[-1])}")
    return BroadcastCore(cfg, ident, random.Random(seed))


def test_announce_goes_to_configured_broadcast_address() -> None:
    a = core("n1")
    _, dgram = a.announce(T0)
    assert dgram.addr == ("127.255.255.255", 47000)


def test_listener_replies_and_announcer_counts_distinct_listeners() -> None:
    a, b, c = core("n1", seed=1), core("n2", seed=2), core("n3", seed=3)
    nonce, dgram = a.announce(T0)
    replies = []
    for listener, src in ((b, ("127.0.0.1", 5002)), (c, ("127.0.0.1", 5003))):
        actions = listener.receive(dgram.data, ("127.0.0.1", 5001), T0 + 0.01)
        seen = [x for x in actions if isinstance(x, CandidateSeen)]
        assert seen and seen[0].candidate.node_id == "n1" and seen[0].new
        assert seen[0].candidate.quic_addr == "127.0.0.1:8001"
        sends = [x for x in actions if isinstance(x, SendDatagram)]
        assert [s.addr for s in sends] == [("127.0.0.1", 5001)]
        replies.append((sends[0].data, src))
    for data, src in replies:
        a.receive(data, src, T0 + 0.02)
    a.receive(replies[0][0], replies[0][1], T0 + 0.03)  # a replayed reply is refused, not double-counted
    assert a.announce_result(nonce) == {"broadcast_sent": True, "listeners_notified": 2}
    assert {c.node_id for c in a.candidates} == {"n2", "n3"}
    assert a.stats["dropped"] == 1


def test_own_broadcast_is_ignored() -> None:
    a = core("n1")
    _, dgram = a.announce(T0)
    assert a.receive(dgram.data, ("127.0.0.1", 1), T0) == []
    assert len(a.candidates) == 0


@pytest.mark.parametrize(
    ("listener", "when", "reason"),
    [
        (lambda: core("n2", cluster="staging"), T0, "foreign_cluster"),
        (lambda: core("n2", secret=b"another-secret-of-16+bytes"), T0, "bad_signature"),
        (lambda: core("n2"), T0 + 31, "stale"),
        (lambda: core("n2"), T0 - 31, "stale"),
    ],
)
def test_rejections(listener, when: float, reason: str) -> None:
    _, dgram = core("n1").announce(T0)
    actions = listener().receive(dgram.data, ("127.0.0.1", 1), when)
    assert actions == [PacketDropped(reason, ("127.0.0.1", 1))]


def test_replay_is_rejected_and_tampering_breaks_the_mac() -> None:
    a, b = core("n1"), core("n2")
    _, dgram = a.announce(T0)
    assert isinstance(b.receive(dgram.data, ("127.0.0.1", 1), T0)[0], CandidateSeen)
    assert b.receive(dgram.data, ("127.0.0.1", 1), T0 + 1) == [PacketDropped("replayed", ("127.0.0.1", 1))]
    env = msgspec.msgpack.decode(dgram.data, type=AutodiscSigned)
    forged = env.body.replace(b"n1", b"n9")
    data = msgspec.msgpack.encode(AutodiscSigned(cluster=env.cluster, body=forged, mac=env.mac))
    assert core("n3").receive(data, ("127.0.0.1", 1), T0) == [PacketDropped("bad_signature", ("127.0.0.1", 1))]


def test_nonce_cache_is_bounded() -> None:
    a = core("n1")
    b = core("n2")
    b_small = BroadcastCore(
        BroadcastConfig(cluster_name="prod", secret=SECRET, broadcast_address="127.255.255.255", nonce_cache_size=3),
        NodeIdentity("n2", "x:1"),
        random.Random(0),
    )
    for i in range(10):
        _, d = a.announce(T0 + i)
        b_small.receive(d.data, ("127.0.0.1", 1), T0 + i)
        b.receive(d.data, ("127.0.0.1", 1), T0 + i)
    assert len(b_small._seen_nonces) == 3
    assert len(b._seen_nonces) == 10


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    actions = core("n2").receive(data, ("127.0.0.1", 9), T0)
    assert len(actions) == 1 and isinstance(actions[0], PacketDropped)


def test_config_validation_names_the_field() -> None:
    with pytest.raises(AutodiscoveryConfigError, match="secret"):
        BroadcastConfig(cluster_name="c", secret=b"short", broadcast_address="127.255.255.255").validate()
    with pytest.raises(ValueError, match="broadcast_address"):
        BroadcastConfig(cluster_name="c", secret=SECRET, broadcast_address="").validate()
    assert BroadcastConfig(cluster_name="c", secret=SECRET, broadcast_address="10.0.0.255").enabled is False


def test_announce_to_a_chosen_destination_and_the_candidates_listing() -> None:
    a, b = core("n1", seed=1), core("n2", seed=2)
    nonce, dgram = a.announce(T0, ("127.0.0.9", 47001))
    assert dgram.addr == ("127.0.0.9", 47001) and a.stats["announces_sent"] == 1
    for act in b.receive(dgram.data, ("127.0.0.1", 5000), T0):
        if isinstance(act, SendDatagram):
            a.receive(act.data, ("127.0.0.1", 47000), T0 + 0.1)
    assert a.listeners_notified(nonce) == 1
    assert a.candidates_status(T0 + 1.0) == [{"node_id": "n2", "tcp_address": "127.0.0.1:7002",
                                              "quic_address": "127.0.0.1:8002", "via": "reply",
                                              "last_seen_ms": 900}]
    assert b.candidates_status(T0 - 5.0)[0]["last_seen_ms"] == 0  # a clock behind the packet: never negative


def test_the_derived_secret_depends_on_the_ca_only() -> None:
    from rustyray.autodiscovery.broadcast_core import derive_secret

    assert derive_secret(b"ca one") == derive_secret(b"ca one") != derive_secret(b"ca two")
    assert len(derive_secret(b"ca one")) == 32  # long enough for BroadcastConfig.validate
