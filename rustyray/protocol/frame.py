"""Frame codec, sans-I/O (after h11's ``receive_data`` / ``next_event``).

Theory of operation. A frame on the wire is::

    +--------+--------+------------+-----------------+--------+
    | Length | Flags  | Message ID | Payload         | CRC32  |
    | 4 B    | 2 B    | 8 B        | Length - 4 B    | 4 B    |
    +--------+--------+------------+-----------------+--------+

all big-endian. ``Length`` counts the bytes after the 14-byte header (payload and
checksum), so a reader knows how much to wait for before it has parsed anything
else. The payload is a msgspec/msgpack-encoded ``Message``, optionally compressed
(flag bits 0-1) and optionally sealed by the security layer (``ENCRYPTED``). The
CRC32 covers flags, message id and payload, so a corrupted header or body is
caught before decoding. Frames over ``MAX_FRAME_SIZE`` (16 MiB) are refused on
both sides, before any allocation on the receive side.

Streams (NETWORKING-045). A frame with ``Flags.STREAM`` carries a 4-byte big-endian
stream id between the header and the payload::

    | Length | Flags | Message ID | Stream ID 4 B | Payload | CRC32 |

``Length`` and the CRC cover the stream id too. It stays in the clear (like an HTTP/2
frame header, RFC 9113 section 4.1) so a receiver can route a frame before decoding it;
compression applies to the payload only, and a sealed frame authenticates the stream id
as part of its associated data. A STREAM frame too short to hold the id is a
``RemoteProtocolError`` (code ``bad_stream_id``). Frames without the flag are unchanged.

``FrameDecoder.feed(bytes)`` buffers any chunking; ``next_frame()`` returns one
``Frame`` or ``None`` (need more data) and raises ``RemoteProtocolError`` for
malformed input, after which the decoder is poisoned: the connection must close.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from rustyray.protocol.compression import Compression, compress, decompress
from rustyray.protocol.errors import LocalProtocolError, RemoteProtocolError
from rustyray.protocol.messages import Message, decode_message, encode_message

HEADER = struct.Struct("!IHQ")
HEADER_SIZE = HEADER.size  # 14
CRC = struct.Struct("!I")
MAX_FRAME_SIZE = 16 * 1024 * 1024
"""Largest payload (after compression) and largest decompressed message, in bytes."""
COMPRESS_MIN_BYTES = 256
"""Payloads smaller than this are never compressed: the codec overhead outweighs the gain."""


class Flags:
    """Frame flag bits. Bits 0-1 hold the ``Compression`` code; bits 8-15 must be zero.

    Plain ints rather than an ``IntFlag``: every frame tests several bits, and enum
    arithmetic costs a Python-level call per test on the hot path.
    """

    COMPRESSION_MASK = 0b11
    RESPONSE = 1 << 2  # this frame answers the request with the same message id
    ACK_REQUESTED = 1 << 3  # the sender wants a RouteAck / response
    ENCRYPTED = 1 << 4  # payload is sealed by security.encryption (header is the AAD)
    STREAM = 1 << 5  # payload is prefixed by a 4-byte stream id (multiplexing)
    PRIORITY_MASK = 0b11 << 6  # Low=0, Normal=1, High=2, Critical=3


KNOWN_FLAG_BITS = 0xFF
_PLAIN_FLAGS = KNOWN_FLAG_BITS & ~(Flags.COMPRESSION_MASK | Flags.ENCRYPTED | Flags.STREAM)
STREAM_ID = struct.Struct("!I")
MAX_STREAM_ID = 2**32 - 1
_AAD = struct.Struct("!HQ")
_AAD_STREAM = struct.Struct("!HQI")


def priority_bits(level: int) -> int:
    """Encode a priority level 0..3 into the flag bits."""
    assert 0 <= level <= 3
    return level << 6


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: its id, flags, the decoded message and its size on the wire.

    ``stream_id`` is the multiplexed stream the frame belongs to (``Flags.STREAM``), else None.
    """

    msg_id: int
    flags: int
    message: Message
    wire_size: int
    stream_id: int | None = None

    @property
    def is_response(self) -> bool:
        return bool(self.flags & Flags.RESPONSE)

    @property
    def priority(self) -> int:
        return (self.flags & Flags.PRIORITY_MASK) >> 6


def encode_payload(payload: bytes, msg_id: int, *, flags: int = 0, compression: Compression = Compression.NONE,
                   seal: Callable[[bytes, bytes], bytes] | None = None, always_compress: bool = False,
                   stream_id: int | None = None) -> bytes:
    """Wrap already-encoded payload bytes into one frame.

    Compression is skipped for small payloads and when it does not shrink them,
    unless ``always_compress`` (used to show a codec's effect honestly, e.g. by the
    encode endpoint). ``seal(aad, plaintext)`` encrypts the (compressed) payload with the
    header bytes after the length (and the stream id, if any) as associated data, and sets
    ``ENCRYPTED``. ``stream_id`` (0..2**32-1) sets ``STREAM`` and prefixes the payload with it.
    """
    if flags & ~KNOWN_FLAG_BITS or flags & Flags.COMPRESSION_MASK:
        raise LocalProtocolError(f"invalid flags 0x{flags:04x}", code="bad_flags")
    if not 0 <= msg_id < 2**64:
        raise LocalProtocolError("message id out of range", code="bad_message_id")
    if stream_id is None:
        if flags & Flags.STREAM:
            raise LocalProtocolError("STREAM flag without a stream id", code="bad_stream_id")
    elif not 0 <= stream_id <= MAX_STREAM_ID:
        raise LocalProtocolError(f"stream id {stream_id} is outside 0..2**32-1", code="bad_stream_id")
    else:
        flags |= Flags.STREAM
    if compression is not Compression.NONE and (always_compress or len(payload) >= COMPRESS_MIN_BYTES):
        packed = compress(compression, payload)
        if always_compress or len(packed) < len(payload):
            payload = packed
            flags |= int(compression)
    if seal is not None:
        flags |= Flags.ENCRYPTED
        aad = _AAD.pack(flags, msg_id) if stream_id is None else _AAD_STREAM.pack(flags, msg_id, stream_id)
        payload = seal(aad, payload)
    if len(payload) + (0 if stream_id is None else 4) > MAX_FRAME_SIZE:
        raise LocalProtocolError(
            f"frame payload of {len(payload)} bytes exceeds the {MAX_FRAME_SIZE} byte limit", code="frame_too_large"
        )
    if stream_id is None:
        head = HEADER.pack(len(payload) + 4, flags, msg_id)
        crc = zlib.crc32(payload, zlib.crc32(head[4:]))
        return b"".join((head, payload, CRC.pack(crc)))
    head = HEADER.pack(len(payload) + 8, flags, msg_id) + STREAM_ID.pack(stream_id)
    crc = zlib.crc32(payload, zlib.crc32(head[4:]))
    return b"".join((head, payload, CRC.pack(crc)))


def encode_frame(message: Message, msg_id: int, *, flags: int = 0,
                 compression: Compression = Compression.NONE,
                 seal: Callable[[bytes, bytes], bytes] | None = None, stream_id: int | None = None) -> bytes:
    """Encode one message as a complete frame (see the module docstring for the layout)."""
    raw = encode_message(message)
    if len(raw) > MAX_FRAME_SIZE:
        raise LocalProtocolError(
            f"message of {len(raw)} bytes exceeds the {MAX_FRAME_SIZE} byte limit", code="frame_too_large"
        )
    if seal is None and stream_id is None and (compression is Compression.NONE or len(raw) < COMPRESS_MIN_BYTES) \
            and not flags & ~_PLAIN_FLAGS and 0 <= msg_id < 2**64:
        head = HEADER.pack(len(raw) + 4, flags, msg_id)  # hot path: small, uncompressed, unsealed
        return b"".join((head, raw, CRC.pack(zlib.crc32(raw, zlib.crc32(head[4:])))))
    return encode_payload(raw, msg_id, flags=flags, compression=compression, seal=seal, stream_id=stream_id)


class FrameDecoder:
    """Incremental decoder: feed bytes in any chunking, pull whole frames out.

    ``unseal(aad, ciphertext)`` is required to accept ``ENCRYPTED`` frames; without
    it such a frame is a protocol error. Consumed bytes are tracked by an offset and
    compacted once per ``feed`` (not per frame), so a burst of small frames costs
    one memmove instead of one per frame.
    """

    def __init__(self, *, max_frame_size: int = MAX_FRAME_SIZE,
                 unseal: Callable[[bytes, bytes], bytes] | None = None) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max = max_frame_size
        self._unseal = unseal
        self._poisoned: RemoteProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> None:
        if self._poisoned is not None:
            raise self._poisoned
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, ``None`` if more bytes are needed."""
        if self._poisoned is not None:
            raise self._poisoned
        try:
            return self._next()
        except RemoteProtocolError as exc:
            self._poisoned = exc
            self._buf.clear()
            self._pos = 0
            raise

    def frames(self) -> list[Frame]:
        """Drain every complete frame currently buffered."""
        if self._poisoned is not None:
            raise self._poisoned
        out: list[Frame] = []
        try:
            while (frame := self._next()) is not None:
                out.append(frame)
        except RemoteProtocolError as exc:
            self._poisoned = exc
            self._buf.clear()
            self._pos = 0
            raise
        return out

    def _next(self) -> Frame | None:
        buf, pos = self._buf, self._pos
        if len(buf) - pos < HEADER_SIZE:
            return None
        length, flags, msg_id = HEADER.unpack_from(buf, pos)
        if length < 4:
            raise RemoteProtocolError(f"frame length {length} is shorter than its checksum", code="bad_length")
        if length - 4 > self._max:
            raise RemoteProtocolError(
                f"frame of {length - 4} bytes exceeds the {self._max} byte limit", code="frame_too_large"
            )
        if flags & ~KNOWN_FLAG_BITS:
            raise RemoteProtocolError(f"unknown flag bits 0x{flags:04x}", code="bad_flags")
        total = HEADER_SIZE + length
        end = pos + total
        if len(buf) < end:
            return None
        view = memoryview(buf)
        try:
            (crc,) = CRC.unpack_from(buf, end - 4)
            if zlib.crc32(view[pos + 4 : end - 4]) != crc:  # flags, id and payload are contiguous
                raise RemoteProtocolError("frame checksum mismatch", code="bad_checksum")
            if flags & Flags.STREAM:
                if length < 8:
                    raise RemoteProtocolError("STREAM frame too short for its stream id", code="bad_stream_id")
                (stream_id,) = STREAM_ID.unpack_from(buf, pos + HEADER_SIZE)
                body = bytes(view[pos + HEADER_SIZE + 4 : end - 4])
            else:
                stream_id = None
                body = bytes(view[pos + HEADER_SIZE : end - 4])
        finally:
            view.release()
        self._pos = end
        if flags & Flags.ENCRYPTED:
            if self._unseal is None:
                raise RemoteProtocolError("encrypted frame but no key ring is configured", code="bad_flags")
            aad = _AAD.pack(flags, msg_id) if stream_id is None else _AAD_STREAM.pack(flags, msg_id, stream_id)
            try:
                body = self._unseal(aad, body)
            except Exception as exc:
                raise RemoteProtocolError(f"cannot decrypt frame: {exc}", code="bad_ciphertext") from exc
        code = flags & Flags.COMPRESSION_MASK
        if code:
            if code > Compression.ZSTD:
                raise RemoteProtocolError(f"unknown compression code {code}", code="bad_flags")
            body = decompress(Compression(code), body, self._max)
        try:
            message = decode_message(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            # RecursionError: msgpack nested deeper than the interpreter stack (a 100 kB payload suffices)
            raise RemoteProtocolError(f"undecodable payload: {exc}", code="bad_payload") from exc
        return Frame(msg_id, flags, message, total, stream_id)
