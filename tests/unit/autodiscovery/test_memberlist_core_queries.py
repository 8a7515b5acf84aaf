"""The memberlist member's Serf query rules: filters and relay factor out, relays in, IPv6 members."""

from __future__ import annotations

import random

import pytest

from rustyray.autodiscovery.memberlist_core import MemberlistConfig, MemberlistCore, QueryIn, Send
from rustyray.autodiscovery.memberlist_wire import (
    MessageType,
    decode_query_filters,
    decode_relay,
    decode_serf_message,
    encode_query_filters,
    encode_user,
    serf_query,
    serf_query_response,
    serf_relay,
)

LOCAL = bytes([127, 0, 0, 1])
V6 = bytes(15) + b"\x01"


def _core(addr: bytes = LOCAL) -> MemberlistCore:
    return MemberlistCore("rr", addr, 7000, {"role": "rustyray"}, MemberlistConfig(), random.Random(1))


def _alive(core: MemberlistCore, name: str, port: int, addr: bytes = LOCAL, pmax: int = 5) -> None:
    core.on_packet(MessageType.ALIVE, {"Node": name.encode(), "Incarnation": 1, "Addr": addr, "Port": port,
                                       "Meta": b"", "Vsn": bytes([1, pmax, 2, 2, 5, 5])}, 0.0)


def _agent_query(core: MemberlistCore, relay_factor: int, filters: list[bytes] | None = None) -> QueryIn:
    msg = serf_query(4, 77, LOCAL, 7101, "serf1", 5.0, "who", b"", ack=True, filters=filters,
                     relay_factor=relay_factor)
    (q,) = core.on_packet(MessageType.USER, {"payload": msg}, 0.0)
    assert isinstance(q, QueryIn)
    return q


def test_our_query_carries_the_filters_and_relay_factor() -> None:
    core = _core()
    _alive(core, "serf1", 7101)
    (send,) = core.query(1, 2, 3.0, "ping", b"hi", filter_nodes=["serf1"], filter_tags={"role": "^db$"},
                         relay_factor=2)
    _, body = decode_serf_message(send.body["payload"])
    assert decode_query_filters(body["Filters"]) == (["serf1"], {"role": "^db$"})
    assert body["RelayFactor"] == 2


def test_an_agent_query_is_decoded_with_its_filters_and_relay_factor() -> None:
    core = _core()
    q = _agent_query(core, 1, encode_query_filters(["rr"], {"role": "rusty"}))
    assert (q.filter_nodes, q.filter_tags, q.relay_factor, q.ack) == (["rr"], {"role": "rusty"}, 1, True)


def test_answers_to_a_relayed_query_also_go_through_k_random_live_members() -> None:
    core = _core()
    for i, name in enumerate(("serf1", "serf2", "serf3", "old")):
        _alive(core, name, 7101 + i, pmax=4 if name == "old" else 5)
    _agent_query(core, 2)
    direct, *relays = core.query_response("127.0.0.1", 7101, 4, 77, "rr", b"pong")
    want = serf_query_response(4, 77, "rr", b"pong")
    assert direct == Send("127.0.0.1", 7101, MessageType.USER, {"payload": want})
    assert len(relays) == 2
    assert {r.port for r in relays} <= {7101, 7102, 7103}  # never a member below protocol 5 (it cannot forward)
    assert len({r.port for r in relays}) == 2
    for r in relays:
        assert decode_relay(r.body["payload"][1:]) == ("127.0.0.1", 7101, want)
    # a query without a relay factor, or one we never saw: the direct answer only
    assert len(core.query_response("127.0.0.1", 7101, 4, 78, "rr", b"pong")) == 1


def test_no_relay_when_the_cluster_is_not_bigger_than_the_relay_factor() -> None:
    core = _core()
    _alive(core, "serf1", 7101)
    _agent_query(core, 2)  # two members in all (us and serf1): Serf's relayResponse skips it
    assert len(core.query_response("127.0.0.1", 7101, 4, 77, "rr", b"pong")) == 1


def test_a_relay_from_an_agent_is_forwarded_to_its_destination() -> None:
    core = _core()
    inner = serf_query_response(4, 77, "serf2", b"pong")
    out = core.on_packet(MessageType.USER, {"payload": serf_relay(LOCAL, 7101, inner)}, 0.0)
    assert out == [Send("127.0.0.1", 7101, MessageType.USER, {"payload": inner})]
    assert encode_user(out[0].body["payload"])[1:] == inner and core.relayed == 1


def test_ipv6_members_are_listed_probed_and_answered() -> None:
    core = _core(V6)
    _alive(core, "serf6", 7101, addr=V6)
    (row,) = [m for m in core.view() if m["name"] == "serf6"]
    assert row["address"] == "[::1]:7101"
    pings = [s for t in range(21) for s in core.tick(t * 0.05) if isinstance(s, Send) and s.kind is MessageType.PING]
    assert pings and pings[0].host == "::1"  # (the first probe comes at a random point of the first interval)
    msg = serf_query(4, 77, V6, 7101, "serf6", 5.0, "who", b"")
    (q,) = core.on_packet(MessageType.USER, {"payload": msg}, 0.0)
    assert isinstance(q, QueryIn) and q.host == "::1"
    req = {"SeqNo": 9, "Target": V6, "Port": 7101, "Node": b"serf6", "SourceAddr": V6, "SourcePort": 7200}
    (ping,) = [s for s in core.on_packet(MessageType.INDIRECT_PING, req, 1.0) if s.kind is MessageType.PING]
    assert isinstance(ping, Send) and ping.host == "::1"


def test_label_config_is_bounded() -> None:
    with pytest.raises(ValueError, match="255"):
        MemberlistConfig(label="x" * 256)


def test_a_crc_goes_only_to_known_members_of_protocol_5() -> None:
    core = _core()
    _alive(core, "new", 7101)
    _alive(core, "old", 7102, pmax=4)
    assert core.wants_crc("127.0.0.1", 7101)
    assert not core.wants_crc("127.0.0.1", 7102) and not core.wants_crc("127.0.0.1", 7999)
