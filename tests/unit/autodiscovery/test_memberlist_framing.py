"""memberlist framing on send: Go's LZW writer, compounds, labels, relays, filters, IPv6 addresses."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_memberlist_wire import SERF_ACK, go_lzw_compress

from rustyray.autodiscovery.memberlist_framing import (
    UDP_BUFFER,
    add_label,
    frame_packet,
    frame_stream,
    group_messages,
    lzw_compress,
    open_packet,
    strip_label,
    strip_stream_label,
)
from rustyray.autodiscovery.memberlist_wire import (
    Keyring,
    MessageType,
    PushNodeState,
    PushPull,
    WireError,
    decode_push_pull,
    decode_query_filters,
    decode_relay,
    decode_serf_message,
    encode_message,
    encode_push_pull,
    encode_query_filters,
    ip_text,
    lzw_decompress,
    serf_query,
    serf_query_response,
    serf_relay,
)

KEY = bytes(range(32))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=20_000))
def test_lzw_compress_round_trips_and_writes_what_go_writes(data: bytes) -> None:
    out = lzw_compress(data)
    assert lzw_decompress(out) == data
    assert out == go_lzw_compress(data)


def test_lzw_compress_across_table_resets() -> None:
    data = bytes(range(256)) * 64 + b"serf " * 5000  # past 4095 codes: the writer clears and starts over
    assert lzw_decompress(lzw_compress(data)) == data


def test_lzw_compress_matches_bytes_the_real_serf_agent_compressed() -> None:
    """The ``Buf`` of a packet serf 0.8.2 sent: recompressing what it holds gives Go's exact bytes."""
    buf = msgpack.unpackb(SERF_ACK[1:], raw=True)[b"Buf"]
    assert lzw_compress(lzw_decompress(buf)) == buf


_messages = st.lists(st.builds(lambda seq, node: encode_message(MessageType.PING, {"SeqNo": seq, "Node": node}),
                               st.integers(0, 2**32 - 1), st.text(max_size=40)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(_messages, st.booleans(), st.booleans(), st.booleans(), st.sampled_from(["", "blue", "x" * 255]))
def test_framed_packets_open_to_the_same_messages(messages: list[bytes], compress: bool, crc: bool,
                                                  sealed: bool, label: str) -> None:
    ring = Keyring([KEY]) if sealed else None
    got = []
    for group in group_messages(messages):
        packet = frame_packet(group, compress=compress, crc=crc, keyring=ring, label=label)
        got += open_packet(packet, keyring=ring, label=label)
    assert [encode_message(k, b) for k, b in got] == messages


def test_a_packet_is_compressed_only_when_that_makes_it_smaller() -> None:
    small = [encode_message(MessageType.PING, {"SeqNo": 1, "Node": "a"})]
    assert frame_packet(small, compress=True) == small[0]
    big = [encode_message(MessageType.ALIVE, {"Node": "rr-node1", "Incarnation": 1, "Meta": b"x" * 200})] * 3
    packet = frame_packet(big, compress=True)
    assert packet[0] == MessageType.COMPRESS and len(packet) < sum(map(len, big))


def test_groups_fit_one_udp_packet_and_keep_the_order() -> None:
    messages = [bytes([MessageType.USER]) + bytes([i % 256]) * 300 for i in range(20)]
    groups = group_messages(messages)
    assert [m for g in groups for m in g] == messages
    assert all(2 + sum(2 + len(m) for m in g) <= UDP_BUFFER for g in groups)
    huge = [b"\x08" + b"y" * 5000]
    assert group_messages(huge) == [huge]  # too big for a compound: alone


def test_a_push_pull_stream_is_always_compressed_and_labelled_only_by_the_dialer() -> None:
    msg = encode_push_pull(PushPull([PushNodeState("rr", b"\x7f\0\0\1", 7946)], b"", True))
    out = frame_stream(msg, compress=True, label="blue", dialer=True)
    assert strip_label(out)[0] == "blue"
    rest = strip_stream_label(out, "blue")
    assert rest is not None and rest[0] == MessageType.COMPRESS
    assert decode_push_pull(rest).nodes[0].name == "rr"
    reply = frame_stream(msg, compress=True, label="blue", dialer=False)
    assert reply[0] == MessageType.COMPRESS  # the answer on the same connection carries no label
    sealed = frame_stream(msg, keyring=Keyring([KEY]), label="blue", dialer=False)
    assert Keyring([KEY]).open_stream(sealed, b"blue") == msg
    with pytest.raises(WireError):
        Keyring([KEY]).open_stream(sealed, b"")  # the label is authenticated


def test_labels_must_match_exactly() -> None:
    ping = encode_message(MessageType.PING, {"SeqNo": 1})
    with pytest.raises(WireError, match="unacceptable label"):
        open_packet(add_label(ping, "blue"), label="green")
    with pytest.raises(WireError, match="unacceptable label"):
        open_packet(add_label(ping, "blue"))  # we have none, it has one
    with pytest.raises(WireError, match="unacceptable label"):
        open_packet(ping, label="blue")  # we have one, it has none
    sealed = frame_packet([ping], keyring=Keyring([KEY]), label="blue")
    with pytest.raises(WireError):  # same label text, but the ciphertext was bound to it
        open_packet(add_label(strip_label(sealed)[1], "blux"), keyring=Keyring([KEY]), label="blux")
    with pytest.raises(WireError, match="longer than 255"):
        add_label(ping, "x" * 256)
    for bad in (bytes([244]), bytes([244, 0, 1]), bytes([244, 5, 1, 2])):
        with pytest.raises(WireError):
            strip_label(bad)
    assert strip_stream_label(bytes([244, 4]) + b"bl", "blue") is None  # wait for the rest of the header
    with pytest.raises(WireError, match="unacceptable label"):
        strip_stream_label(add_label(ping, "blue"), "")


@given(st.lists(st.text(min_size=1, max_size=20), max_size=5),
       st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=4))
def test_query_filters_round_trip(nodes: list[str], tags: dict[str, str]) -> None:
    assert decode_query_filters(encode_query_filters(nodes, tags)) == (nodes, tags)


def test_a_query_carries_filters_and_relay_factor_as_serf_encodes_them() -> None:
    msg = serf_query(3, 9, b"\x7f\0\0\1", 7946, "rr", 2.0, "ping", b"hi", ack=True,
                     filters=encode_query_filters(["serf1"], {"role": "^d"}), relay_factor=2)
    _, body = decode_serf_message(msg)
    assert body["RelayFactor"] == 2 and body["Flags"] == 1 and body["Timeout"] == 2_000_000_000
    assert body["Filters"][0][0] == 0 and msgpack.unpackb(body["Filters"][0][1:]) == ["serf1"]
    assert body["Filters"][1][0] == 1 and msgpack.unpackb(body["Filters"][1][1:]) == {"Tag": "role", "Expr": "^d"}
    with pytest.raises(WireError):
        serf_query(3, 9, b"", 1, "rr", 1.0, "x", b"", relay_factor=256)


def test_a_relay_wraps_a_response_for_its_destination() -> None:
    resp = serf_query_response(3, 9, "serf1", b"pong")
    for addr, host in ((b"\x7f\0\0\1", "127.0.0.1"), (b"\0" * 15 + b"\1", "::1"),
                       (b"\0" * 10 + b"\xff\xff\x7f\0\0\2", "127.0.0.2")):  # Go's 16-byte form of an IPv4
        relay = serf_relay(addr, 7946, resp)
        assert relay[0] == 9
        assert decode_relay(relay[1:]) == (host, 7946, resp)
    for bad in (b"", msgpack.packb({"DestAddr": {"IP": b"\1\2", "Port": 1}}) + resp,
                msgpack.packb({"DestAddr": {"IP": b"\x7f\0\0\1", "Port": 1}})):
        with pytest.raises(WireError):
            decode_relay(bad)


def test_ip_text_reads_four_and_sixteen_bytes() -> None:
    assert ip_text(b"\x7f\0\0\1") == "127.0.0.1"
    assert ip_text(b"\0" * 15 + b"\1") == "::1"
    assert ip_text(b"\1\2\3") is None
