"""The codec's per-frame fast paths keep the wire format and the error semantics of the general path.

``encode_frame`` builds unsealed frames in one pass; ``encode_payload`` is the reference
(it handles every case). ``FrameDecoder.receive`` decodes a burst in one call and must
return exactly what ``next_frame`` would, plus the error that stopped it.
"""

from __future__ import annotations

import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rustyray.protocol import Compression, Echo, FrameDecoder, RemoteProtocolError, encode_frame
from rustyray.protocol.frame import Flags, encode_payload
from rustyray.protocol.messages import encode_message

messages = st.builds(Echo, data=st.one_of(st.binary(max_size=2048), st.just(b"x" * 1024)))
plain_flags = st.sampled_from([0, Flags.RESPONSE, Flags.ACK_REQUESTED, Flags.ACK_REQUESTED | (1 << 6), 3 << 6])
stream_ids = st.one_of(st.none(), st.integers(min_value=0, max_value=2**32 - 1))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(msg=messages, msg_id=st.integers(min_value=0, max_value=2**64 - 1), flags=plain_flags,
       codec=st.sampled_from(list(Compression)), stream_id=stream_ids)
def test_fast_encoder_writes_the_bytes_of_the_general_one(msg, msg_id, flags, codec, stream_id):
    fast = encode_frame(msg, msg_id, flags=flags, compression=codec, stream_id=stream_id)
    reference = encode_payload(encode_message(msg), msg_id, flags=flags, compression=codec, stream_id=stream_id)
    assert fast == reference


def _reference_frames(wire: bytes) -> tuple[list, str | None]:
    dec = FrameDecoder()
    dec.feed(wire)
    out = []
    try:
        while (frame := dec.next_frame()) is not None:
            out.append(frame)
    except RemoteProtocolError as exc:
        return out, exc.code
    return out, None


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(msgs=st.lists(messages, min_size=1, max_size=8), codec=st.sampled_from(list(Compression)),
       corrupt_at=st.one_of(st.none(), st.integers(min_value=0)), chunk=st.integers(min_value=1, max_value=4096))
def test_receive_returns_what_next_frame_would_and_the_error_after_the_good_frames(msgs, codec, corrupt_at, chunk):
    wire = bytearray(b"".join(encode_frame(m, i + 1, compression=codec) for i, m in enumerate(msgs)))
    if corrupt_at is not None:
        wire[corrupt_at % len(wire)] ^= 0xFF
    want, want_error = _reference_frames(bytes(wire))
    dec = FrameDecoder()
    got, error = [], None
    for i in range(0, len(wire), chunk):
        frames, error = dec.receive(bytes(wire[i:i + chunk]))
        got.extend(frames)
        if error is not None:
            break
    assert got == want
    if want_error is None:
        assert error is None
    else:  # a corrupted length may leave the decoder waiting for bytes that never come: no error yet
        assert error is None or error.code == want_error


def test_receive_after_an_error_raises_it_again():
    frame = bytearray(encode_frame(Echo(data=b"abc"), 1))
    frame[-1] ^= 0xFF
    dec = FrameDecoder()
    frames, error = dec.receive(bytes(frame))
    assert frames == [] and error is not None and error.code == "bad_checksum"
    try:
        dec.receive(encode_frame(Echo(), 2))
    except RemoteProtocolError as exc:
        assert exc is error
    else:
        raise AssertionError("a poisoned decoder accepted more bytes")


def test_a_corrupt_lz4_payload_is_a_typed_error_and_the_decoder_can_be_dropped():
    raw = encode_message(Echo(data=b"y" * 1024))
    payload = bytearray(encode_frame(Echo(data=b"y" * 1024), 7, compression=Compression.LZ4))
    assert len(payload) < len(raw)  # it was compressed
    body = bytearray(payload[14:-4])
    body[6:] = b"\xff" * (len(body) - 6)  # keep the stored size, break the block
    crc = zlib.crc32(bytes(body), zlib.crc32(bytes(payload[4:14])))
    wire = bytes(payload[:14]) + bytes(body) + crc.to_bytes(4, "big")
    frames, error = FrameDecoder().receive(wire)
    assert frames == [] and error is not None and error.code in ("bad_compression", "bad_payload")
