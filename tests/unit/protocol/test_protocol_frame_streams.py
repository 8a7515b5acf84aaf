"""Frame codec with stream ids (Flags.STREAM): layout, round trips, typed errors."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rustyray.protocol import Compression, Echo, FrameDecoder, LocalProtocolError, RemoteProtocolError, encode_frame
from rustyray.protocol.frame import HEADER, MAX_STREAM_ID, Flags, encode_payload
from rustyray.protocol.messages import encode_message

stream_ids = st.one_of(st.none(), st.integers(min_value=0, max_value=MAX_STREAM_ID))
payloads = st.one_of(st.binary(max_size=64), st.binary(min_size=300, max_size=3000),
                     st.just(b"compressible " * 200))


def test_stream_id_sits_between_header_and_payload_inside_the_crc():
    frame = encode_frame(Echo(data=b"abc"), 7, stream_id=0x01020304)
    length, flags, msg_id = HEADER.unpack_from(frame)
    assert flags == Flags.STREAM and msg_id == 7 and len(frame) == 14 + length
    assert frame[14:18] == b"\x01\x02\x03\x04"
    assert frame[18:-4] == encode_message(Echo(data=b"abc"))
    assert struct.unpack("!I", frame[-4:])[0] == zlib.crc32(frame[4:-4])
    dec = FrameDecoder()
    dec.feed(frame)
    (out,) = dec.frames()
    assert out.stream_id == 0x01020304 and out.message == Echo(data=b"abc") and out.wire_size == len(frame)


def test_frames_without_the_flag_have_no_stream_id_and_unchanged_bytes():
    frame = encode_frame(Echo(data=b"x"), 1)
    assert HEADER.unpack_from(frame)[1] == 0 and len(frame) == 14 + len(encode_message(Echo(data=b"x"))) + 4
    dec = FrameDecoder()
    dec.feed(frame)
    assert dec.frames()[0].stream_id is None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.tuples(payloads, stream_ids, st.sampled_from([0, Flags.RESPONSE, Flags.ACK_REQUESTED])),
                      min_size=1, max_size=6),
       codec=st.sampled_from(list(Compression)), chunk=st.integers(min_value=1, max_value=113))
def test_round_trip_with_and_without_stream_ids_in_any_chunking(items, codec, chunk):
    wire = b"".join(encode_frame(Echo(data=data), i + 1, flags=flags, compression=codec, stream_id=sid)
                    for i, (data, sid, flags) in enumerate(items))
    dec = FrameDecoder()
    out = []
    for i in range(0, len(wire), chunk):
        dec.feed(wire[i:i + chunk])
        out.extend(dec.frames())
    assert [(f.message.data, f.stream_id, f.msg_id) for f in out] == \
        [(data, sid, i + 1) for i, (data, sid, _) in enumerate(items)]
    assert [bool(f.flags & Flags.STREAM) for f in out] == [sid is not None for _, sid, _ in items]
    assert [f.flags & ~(Flags.STREAM | Flags.COMPRESSION_MASK) for f in out] == [fl for _, _, fl in items]
    assert dec.buffered == 0


@settings(max_examples=60, deadline=None)
@given(sid=st.integers(min_value=0, max_value=MAX_STREAM_ID), data=st.binary(max_size=500))
def test_sealed_stream_frames_authenticate_the_stream_id(sid, data):
    seen: list[bytes] = []

    def seal(aad: bytes, plain: bytes) -> bytes:
        seen.append(aad)
        return bytes(b ^ 0x5A for b in plain) + aad  # a toy AEAD: the tag is the associated data

    def unseal(aad: bytes, sealed: bytes) -> bytes:
        if not sealed.endswith(aad):
            raise ValueError("tag mismatch")
        return bytes(b ^ 0x5A for b in sealed[: -len(aad)])

    frame = encode_frame(Echo(data=data), 3, stream_id=sid, seal=seal)
    assert seen[0][-4:] == struct.pack("!I", sid)
    dec = FrameDecoder(unseal=unseal)
    dec.feed(frame)
    (out,) = dec.frames()
    assert out.stream_id == sid and out.message == Echo(data=data) and out.flags & Flags.ENCRYPTED


@pytest.mark.parametrize("body", [b"", b"\x00", b"\x00\x00\x01"])
def test_stream_frame_too_short_for_its_id_is_a_typed_error(body):
    head = HEADER.pack(len(body) + 4, Flags.STREAM, 1)
    frame = head + body + struct.pack("!I", zlib.crc32(body, zlib.crc32(head[4:])))
    dec = FrameDecoder()
    dec.feed(frame)
    with pytest.raises(RemoteProtocolError) as err:
        dec.next_frame()
    assert err.value.code == "bad_stream_id"
    with pytest.raises(RemoteProtocolError):
        dec.next_frame()  # poisoned


@pytest.mark.parametrize("sid", [-1, MAX_STREAM_ID + 1])
def test_out_of_range_stream_id_is_a_local_error(sid):
    with pytest.raises(LocalProtocolError) as err:
        encode_frame(Echo(), 1, stream_id=sid)
    assert err.value.code == "bad_stream_id"


def test_stream_flag_without_an_id_is_a_local_error():
    with pytest.raises(LocalProtocolError):
        encode_frame(Echo(), 1, flags=Flags.STREAM)
    with pytest.raises(LocalProtocolError):
        encode_payload(b"\x80", 1, flags=Flags.STREAM)
