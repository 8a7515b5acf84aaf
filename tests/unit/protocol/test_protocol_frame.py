"""Frame codec: layout, round trips in any chunking, and typed errors for bad input."""

from __future__ import annotations

import struct
import zlib

import lz4.block
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rustyray.protocol import (
    MAX_FRAME_SIZE,
    Compression,
    Echo,
    FrameDecoder,
    Heartbeat,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    encode_frame,
)
from rustyray.protocol.control import AppMessage
from rustyray.protocol.frame import HEADER, Flags, encode_payload

messages = st.one_of(
    st.builds(Echo, data=st.binary(max_size=4096)),
    st.builds(Heartbeat, node_id=st.text(min_size=1, max_size=20), timestamp=st.floats(allow_nan=False),
              seq=st.integers(min_value=0, max_value=2**62)),
    st.builds(AppMessage, message_type=st.text(max_size=30),
              data=st.dictionaries(st.text(max_size=10), st.one_of(st.integers(-(2**60), 2**60), st.text(max_size=50)),
                                   max_size=8)),
)


def test_layout_matches_the_seed_header():
    frame = encode_frame(Echo(data=b"abc"), 0x0102030405060708)
    length, flags, msg_id = HEADER.unpack_from(frame)
    assert len(frame) == 14 + length
    assert flags == 0 and msg_id == 0x0102030405060708
    payload, crc = frame[14:-4], struct.unpack("!I", frame[-4:])[0]
    assert crc == zlib.crc32(payload, zlib.crc32(frame[4:14]))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=st.lists(messages, min_size=1, max_size=6), codec=st.sampled_from(list(Compression)),
       chunk=st.integers(min_value=1, max_value=97))
def test_round_trip_in_any_chunking(msgs, codec, chunk):
    wire = b"".join(encode_frame(m, i + 1, compression=codec) for i, m in enumerate(msgs))
    dec = FrameDecoder()
    out = []
    for i in range(0, len(wire), chunk):
        dec.feed(wire[i:i + chunk])
        out.extend(dec.frames())
    assert [f.message for f in out] == msgs
    assert [f.msg_id for f in out] == list(range(1, len(msgs) + 1))
    assert dec.buffered == 0


@settings(max_examples=300)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise_anything_but_protocol_error(data):
    dec = FrameDecoder()
    try:
        dec.feed(data)
        dec.frames()
    except ProtocolError:
        pass


@settings(max_examples=200)
@given(msg=messages, cut=st.integers(min_value=0, max_value=10_000))
def test_truncated_frame_waits_for_more(msg, cut):
    frame = encode_frame(msg, 9)
    dec = FrameDecoder()
    dec.feed(frame[: min(cut, len(frame) - 1)])
    assert dec.next_frame() is None


@settings(max_examples=200)
@given(msg=messages, pos=st.integers(min_value=4, max_value=10_000), bit=st.integers(min_value=0, max_value=7))
def test_any_flipped_bit_after_the_length_is_caught(msg, pos, bit):
    frame = bytearray(encode_frame(msg, 3))
    pos = pos % (len(frame) - 4) + 4
    frame[pos] ^= 1 << bit
    dec = FrameDecoder()
    dec.feed(bytes(frame))
    with pytest.raises(RemoteProtocolError):
        dec.frames()


def test_oversize_frames_are_refused_on_both_sides():
    with pytest.raises(LocalProtocolError) as exc:
        encode_payload(b"x" * (MAX_FRAME_SIZE + 1), 1)
    assert exc.value.code == "frame_too_large"
    dec = FrameDecoder()
    dec.feed(HEADER.pack(MAX_FRAME_SIZE + 5 + 4, 0, 1))
    with pytest.raises(RemoteProtocolError) as rexc:
        dec.next_frame()
    assert rexc.value.code == "frame_too_large"


@pytest.mark.parametrize("flags,code", [(0x0100, "bad_flags"), (0x0003, "bad_flags")])
def test_unknown_flags_and_compression_are_refused(flags, code):
    payload = b"\x80"
    head = HEADER.pack(len(payload) + 4, flags, 1)
    frame = head + payload + struct.pack("!I", zlib.crc32(payload, zlib.crc32(head[4:])))
    dec = FrameDecoder()
    dec.feed(frame)
    with pytest.raises(RemoteProtocolError) as exc:
        dec.next_frame()
    assert exc.value.code == code


@pytest.mark.parametrize("kind", [Compression.ZSTD, Compression.LZ4])
def test_decompression_bomb_is_refused(kind):
    dec = FrameDecoder(max_frame_size=1024)
    frame = encode_payload(b"\0" * 100_000, 1, compression=kind)
    assert len(frame) < 1024  # the compressed frame itself is small: only its expansion is refused
    dec.feed(frame)
    with pytest.raises(RemoteProtocolError) as exc:
        dec.next_frame()
    assert exc.value.code in {"frame_too_large", "bad_compression"}


def _lz4_frame(payload: bytes) -> bytes:
    flags = int(Compression.LZ4)
    head = HEADER.pack(len(payload) + 4, flags, 1)
    return head + payload + struct.pack("!I", zlib.crc32(payload, zlib.crc32(head[4:])))


@pytest.mark.parametrize("payload", [
    b"\x01\x00",  # shorter than the stored size
    struct.pack("<I", 50) + b"\xff" * 8,  # garbage block
    struct.pack("<I", 10_000) + lz4.block.compress(b"y" * 100, store_size=False),  # lies about its size
])
def test_corrupt_lz4_payloads_are_typed_errors(payload):
    dec = FrameDecoder()
    dec.feed(_lz4_frame(payload))
    with pytest.raises(RemoteProtocolError) as exc:
        dec.next_frame()
    assert exc.value.code == "bad_compression"


def test_decoder_is_poisoned_after_an_error():
    dec = FrameDecoder()
    dec.feed(b"\x00\x00\x00\x01" + b"\x00" * 20)
    with pytest.raises(RemoteProtocolError):
        dec.next_frame()
    with pytest.raises(RemoteProtocolError):
        dec.feed(encode_frame(Echo(), 1))


def test_valid_frame_with_an_undecodable_payload_is_a_remote_error():
    dec = FrameDecoder()
    dec.feed(encode_payload(b"\xc1not msgpack", 5))
    with pytest.raises(RemoteProtocolError) as exc:
        dec.next_frame()
    assert exc.value.code == "bad_payload"


def test_small_payloads_are_not_compressed_but_large_ones_are():
    small = encode_frame(Echo(data=b"x" * 10), 1, compression=Compression.LZ4)
    assert HEADER.unpack_from(small)[1] & Flags.COMPRESSION_MASK == 0
    big = encode_frame(Echo(data=b"x" * 5000), 1, compression=Compression.LZ4)
    assert HEADER.unpack_from(big)[1] & Flags.COMPRESSION_MASK == Compression.LZ4
    assert len(big) < 500
