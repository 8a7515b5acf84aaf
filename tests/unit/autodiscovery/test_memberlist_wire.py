"""memberlist's wire format: round trips, every wrapper, Go's LZW, and a decoder that only ever raises WireError."""

from __future__ import annotations

import contextlib
import struct
import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.autodiscovery.memberlist_wire import (
    MessageType,
    NodeState,
    PushNodeState,
    PushPull,
    WireError,
    decode_packet,
    decode_push_pull,
    decode_tags,
    encode_compound,
    encode_message,
    encode_push_pull,
    encode_tags,
    encode_user,
    lzw_decompress,
    serf_leave_intent,
    with_crc,
)


def go_lzw_compress(data: bytes, lit_width: int = 8) -> bytes:
    """Go's ``compress/lzw`` writer (writer.go), LSB first: clear code, codes widening to 12 bits, a clear when
    the table is full, the last code, EOF."""
    clear, eof = 1 << lit_width, (1 << lit_width) + 1
    state = {"width": lit_width + 1, "hi": eof, "overflow": 1 << (lit_width + 1), "bits": 0, "nbits": 0}
    table: dict[tuple[int, int], int] = {}
    out = bytearray()

    def emit(code: int) -> None:
        state["bits"] |= code << state["nbits"]
        state["nbits"] += state["width"]
        while state["nbits"] >= 8:
            out.append(state["bits"] & 0xFF)
            state["bits"] >>= 8
            state["nbits"] -= 8

    def inc_hi() -> bool:
        """False when the table was full and has been cleared (writer.go's errOutOfCodes)."""
        state["hi"] += 1
        if state["hi"] == state["overflow"]:
            state["width"] += 1
            state["overflow"] <<= 1
        if state["hi"] == 4095:
            emit(clear)
            state.update(width=lit_width + 1, hi=eof, overflow=1 << (lit_width + 1))
            table.clear()
            return False
        return True

    emit(clear)
    if data:
        saved = data[0]
        for byte in data[1:]:
            key = (saved, byte)
            if key in table:
                saved = table[key]
                continue
            emit(saved)
            saved = byte
            if inc_hi():
                table[key] = state["hi"]
        emit(saved)
        inc_hi()
    emit(eof)
    if state["nbits"]:
        out.append(state["bits"] & 0xFF)
    return bytes(out)


def compressed(message: bytes) -> bytes:
    return encode_message(MessageType.COMPRESS, {"Algo": 0, "Buf": go_lzw_compress(message)})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=20_000))
def test_lzw_decodes_what_a_go_style_writer_wrote(data: bytes) -> None:
    assert lzw_decompress(go_lzw_compress(data)) == data


def test_lzw_decodes_long_repetitive_input_across_width_changes() -> None:
    data = (b"memberlist " * 3000) + bytes(range(256)) * 20
    assert lzw_decompress(go_lzw_compress(data)) == data


# What serf 0.8.2 (``serf agent -node serf1 -bind 127.0.0.1:17946 -tag role=db``) sent back to
# ``encode_message(PING, {"SeqNo": 7, "Node": "serf1"})``: an LZW-compressed compound of the ack (its
# network-coordinate payload) and a piggybacked alive about itself.
SERF_ACK = bytes.fromhex(
    "0982a4416c676f00a3427566da00b2000f08006009c01101824e41099387cd9b3064b40110148090aa2064d4d49943a74d19377496"
    "0118497264a92272e4bc91b3ec07be92234d212993e60c9a903ec8e1ab85681c9a78a3ac9419834924cc91468f2685b9b4645392"
    "4f911e953ab5d49432719cbc3940c010298c64e490fa3332c0aa246ec68491e3260c9d346fdc0420d5a40c9d30aafe0522a5924d"
    "195164c490d24aa64ca93965e49889410aca4a3acd8c68083ac78da90005040828502020"
)


def test_a_real_serf_ack_decodes() -> None:
    (kind, body), (kind2, body2) = decode_packet(SERF_ACK)
    assert (kind, body["SeqNo"], kind2) == (MessageType.ACK, 7, MessageType.ALIVE)
    assert (body2["Node"], body2["Addr"], body2["Port"]) == (b"serf1", b"\x7f\x00\x00\x01", 17946)
    assert decode_tags(body2["Meta"]) == {"role": "db"} and tuple(body2["Vsn"]) == (1, 5, 2, 2, 5, 5)


@settings(max_examples=200, deadline=None)
@given(seq=st.integers(0, 2**32 - 1), node=st.text(max_size=30), label=st.binary(min_size=1, max_size=40),
       wrap=st.lists(st.sampled_from(["crc", "compress", "compound", "label"]), max_size=3))
def test_every_wrapper_round_trips(seq: int, node: str, label: bytes, wrap: list[str]) -> None:
    packet = encode_message(MessageType.PING, {"SeqNo": seq, "Node": node})
    for w in wrap:
        if w == "crc":
            packet = with_crc(packet)
        elif w == "compress":
            packet = compressed(packet)
        elif w == "compound":
            packet = encode_compound([packet, encode_message(MessageType.ACK, {"SeqNo": 1, "Payload": b""})])
        else:
            packet = bytes([MessageType.HAS_LABEL, len(label)]) + label + packet
    decoded = decode_packet(packet)
    assert decoded[0] == (MessageType.PING, {"SeqNo": seq, "Node": node.encode()})


def test_a_bad_crc_is_refused() -> None:
    packet = with_crc(encode_message(MessageType.PING, {"SeqNo": 1, "Node": "a"}))
    with pytest.raises(WireError, match="CRC"):
        decode_packet(packet[:-1] + bytes([packet[-1] ^ 1]))


@settings(max_examples=150, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=20), min_size=0, max_size=8, unique=True),
       user=st.binary(max_size=300), join=st.booleans(), tags=st.dictionaries(st.text(max_size=8), st.text(max_size=8)))
def test_push_pull_round_trips(names, user, join, tags) -> None:
    nodes = [PushNodeState(n, bytes([127, 0, 0, i + 1]), 7946 + i, encode_tags(tags), i, NodeState(i % 4))
             for i, n in enumerate(names)]
    pp = decode_push_pull(encode_push_pull(PushPull(nodes, user, join)))
    assert (pp.nodes, pp.user_state, pp.join) == (nodes, user, join)
    assert all(decode_tags(n.meta) == tags for n in pp.nodes)
    wrapped = compressed(encode_push_pull(PushPull(nodes, user, join)))
    assert decode_push_pull(wrapped).nodes == nodes


def test_tags_without_the_magic_byte_are_the_role() -> None:
    assert decode_tags(b"web") == {"role": "web"} and decode_tags(b"") == {"role": ""}


def test_user_messages_and_the_serf_leave_intent() -> None:
    intent = serf_leave_intent("rr-1", 5)
    assert intent[0] == 0 and msgpack.unpackb(intent[1:]) == {"LTime": 5, "Node": "rr-1", "Prune": False}
    assert decode_packet(encode_user(intent)) == [(MessageType.USER, {"payload": intent})]


VALID = [
    encode_message(MessageType.PING, {"SeqNo": 9, "Node": "x"}),
    with_crc(encode_message(MessageType.ACK, {"SeqNo": 9, "Payload": b""})),
    compressed(encode_compound([encode_message(MessageType.SUSPECT, {"Incarnation": 1, "Node": "y", "From": "x"})])),
]


@settings(max_examples=500, deadline=None)
@given(base=st.sampled_from(VALID), cut=st.integers(0, 200), flip=st.integers(0, 10_000), junk=st.binary(max_size=64))
def test_the_decoder_only_ever_raises_wire_error(base: bytes, cut: int, flip: int, junk: bytes) -> None:
    """Truncated, bit-flipped, wrong type byte, bad msgpack, random bytes: drop (WireError), never crash."""
    mutated = bytearray(base[: max(1, len(base) - cut % len(base))])
    mutated[flip % len(mutated)] ^= 1 << (flip % 8)
    for packet in (bytes(mutated), junk, bytes([200]) + base[1:], base[:1] + b"\xc1"):
        with contextlib.suppress(WireError):
            decode_packet(packet)
        with contextlib.suppress(WireError):
            decode_push_pull(packet)


def test_compound_limits() -> None:
    with pytest.raises(WireError):
        encode_compound([])
    bad = bytes([MessageType.COMPOUND, 2]) + struct.pack(">HH", 5, 500) + b"x" * 10
    with pytest.raises(WireError, match="past the packet"):
        decode_packet(bad)
    assert zlib.crc32(b"") == 0


def test_the_keyring_seals_with_the_primary_and_opens_with_any_key() -> None:
    from rustyray.autodiscovery.memberlist_wire import Keyring

    a, b = bytes([1]) * 32, bytes([2]) * 16
    ring = Keyring([a, b], random_bytes=lambda n: bytes(n))
    packet = encode_message(MessageType.PING, {"SeqNo": 1, "Node": "x"})
    sealed = ring.seal_packet(packet)
    assert sealed[0] == 1 and sealed[1:13] == bytes(12) and len(sealed) == len(packet) + 29
    assert Keyring([b, a]).open_packet(sealed) == packet  # any installed key opens
    with pytest.raises(WireError, match="no installed key"):
        Keyring([b]).open_packet(sealed)
    stream = ring.seal_stream(b"state")
    assert stream[0] == MessageType.ENCRYPT and ring.open_stream(stream) == b"state"
    assert ring.open_stream(stream[:7]) is None  # more bytes needed
    with pytest.raises(WireError):
        ring.open_stream(b"\x06plain")  # an unencrypted stream is refused
    tampered = stream[:1] + struct.pack(">I", len(stream) - 4) + stream[5:]  # the header is authenticated
    with pytest.raises(WireError):
        ring.open_stream(tampered + b"x")
    with pytest.raises(ValueError):
        Keyring([b"short"])


def test_key_queries_install_use_remove_list() -> None:
    import base64

    from rustyray.autodiscovery.memberlist_wire import Keyring, answer_key_query

    a, b = bytes([1]) * 32, bytes([2]) * 32
    ring = Keyring([a])

    def ask(name: str, key: bytes = b"") -> dict:
        payload, _ = answer_key_query(ring, name, bytes([7]) + msgpack.packb({"Key": key}, use_bin_type=False))
        assert payload[0] == 8
        return msgpack.unpackb(payload[1:])

    assert ask("_serf_install-key", b)["Result"] and ring.keys == [a, b]
    assert ask("_serf_use-key", b)["Result"] and ring.keys == [b, a]
    assert not ask("_serf_remove-key", b)["Result"] and "primary" in ask("_serf_remove-key", b)["Message"]
    assert ask("_serf_remove-key", a)["Result"] and ring.keys == [b]
    assert ask("_serf_list-keys")["Keys"] == [base64.b64encode(b).decode()]
    assert not ask("_serf_use-key", a)["Result"]  # not installed
    assert not ask("_serf_install-key", b"short")["Result"]
    payload, changed = answer_key_query(None, "_serf_install-key", b"")
    assert not changed and b"encryption not enabled" in payload
