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

import lz4.block
import msgspec

from rustyray.protocol import messages as _messages
from rustyray.protocol.compression import COMPRESSOR_BY_CODE, DECOMPRESSOR_BY_CODE, Compression, compress
from rustyray.protocol.errors import LocalProtocolError, RemoteProtocolError
from rustyray.protocol.messages import Message, message_decoder

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
_LENGTH = struct.Struct("!I")
_FLAGS_ID = _AAD  # the header after the length: what the CRC covers first
_FLAGS_ID_STREAM = _AAD_STREAM
_U64 = 2**64
_crc32 = zlib.crc32
_LZ4 = int(Compression.LZ4)
_LZ4_SIZE = struct.Struct("<I")  # lz4.block's stored uncompressed size
_lz4_block_decompress = lz4.block.decompress
_encode = _messages._encoder.encode  # encode_message without its Python frame (per-frame path)


def priority_bits(level: int) -> int:
    """Encode a priority level 0..3 into the flag bits."""
    assert 0 <= level <= 3
    return level << 6


class Frame(msgspec.Struct, frozen=True):
    """A decoded frame: its id, flags, the decoded message and its size on the wire.

    ``stream_id`` is the multiplexed stream the frame belongs to (``Flags.STREAM``), else None.
    A frozen msgspec ``Struct`` rather than a frozen dataclass: one is built per received
    frame, and the dataclass's ``__init__`` (an ``object.__setattr__`` per field) cost five
    times as much.
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
    """Encode one message as a complete frame (see the module docstring for the layout).

    Unsealed frames (every frame of a connection without payload encryption) are built
    here in one pass; the bytes are exactly those ``encode_payload`` would produce, which
    handles sealed frames and every invalid argument (and raises for those).
    """
    raw = _encode(message)
    n = len(raw)
    if n > MAX_FRAME_SIZE:
        raise LocalProtocolError(
            f"message of {n} bytes exceeds the {MAX_FRAME_SIZE} byte limit", code="frame_too_large"
        )
    if seal is None and not flags & ~_PLAIN_FLAGS and 0 <= msg_id < _U64 and (
            stream_id is None or (0 <= stream_id <= MAX_STREAM_ID and n + 4 <= MAX_FRAME_SIZE)):
        body = raw
        if compression and n >= COMPRESS_MIN_BYTES:  # Compression.NONE is 0
            packed = COMPRESSOR_BY_CODE[compression](raw)  # type: ignore[misc]  # 1..2 are set
            if len(packed) < n:
                body, n = packed, len(packed)
                flags |= compression
        if stream_id is None:
            fields = _FLAGS_ID.pack(flags, msg_id)
            return b"".join((_LENGTH.pack(n + 4), fields, body, CRC.pack(_crc32(body, _crc32(fields)))))
        fields = _FLAGS_ID_STREAM.pack(flags | Flags.STREAM, msg_id, stream_id)
        return b"".join((_LENGTH.pack(n + 8), fields, body, CRC.pack(_crc32(body, _crc32(fields)))))
    return encode_payload(raw, msg_id, flags=flags, compression=compression, seal=seal, stream_id=stream_id)


class FrameDecoder:
    """Incremental decoder: feed bytes in any chunking, pull whole frames out.

    ``unseal(aad, ciphertext)`` is required to accept ``ENCRYPTED`` frames; without
    it such a frame is a protocol error. Consumed bytes are tracked by an offset and
    compacted once per ``feed`` (not per frame), so a burst of small frames costs
    one memmove instead of one per frame. ``receive`` decodes a whole burst in one
    call (one view of the buffer, one decoder lookup): the per-frame cost is what
    bounds a connection's message rate.
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

    def receive(self, data: bytes) -> tuple[list[Frame], RemoteProtocolError | None]:
        """Feed ``data``, then decode every complete frame now buffered.

        Returns the frames and, if a malformed frame stopped decoding, its error (the
        decoder is then poisoned); the good frames before a bad one are still returned.
        Raises the earlier error if the decoder was already poisoned.
        """
        self.feed(data)
        out: list[Frame] = []
        try:
            self._scan(out, -1)
        except RemoteProtocolError as exc:
            self._poison(exc)
            return out, exc
        return out, None

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, ``None`` if more bytes are needed."""
        if self._poisoned is not None:
            raise self._poisoned
        out: list[Frame] = []
        try:
            self._scan(out, 1)
        except RemoteProtocolError as exc:
            self._poison(exc)
            raise
        return out[0] if out else None

    def frames(self) -> list[Frame]:
        """Drain every complete frame currently buffered."""
        if self._poisoned is not None:
            raise self._poisoned
        out: list[Frame] = []
        try:
            self._scan(out, -1)
        except RemoteProtocolError as exc:
            self._poison(exc)
            raise
        return out

    def _poison(self, exc: RemoteProtocolError) -> None:
        self._poisoned = exc
        # A new buffer rather than clear(): the error's traceback may still hold a view of the old one.
        self._buf = bytearray()
        self._pos = 0

    def _scan(self, out: list[Frame], limit: int) -> None:
        """Append up to ``limit`` (-1: all) complete frames to ``out``; raise at the first malformed one."""
        buf, pos = self._buf, self._pos
        size = len(buf)
        if size - pos < HEADER_SIZE:
            return
        decode = message_decoder().decode
        unpack_header, unpack_crc, crc32, max_size = HEADER.unpack_from, CRC.unpack_from, _crc32, self._max
        view = memoryview(buf)
        try:
            while limit and size - pos >= HEADER_SIZE:
                length, flags, msg_id = unpack_header(buf, pos)
                if length < 4:
                    raise RemoteProtocolError(f"frame length {length} is shorter than its checksum", code="bad_length")
                if length - 4 > max_size:
                    raise RemoteProtocolError(
                        f"frame of {length - 4} bytes exceeds the {max_size} byte limit", code="frame_too_large"
                    )
                if flags & ~KNOWN_FLAG_BITS:
                    raise RemoteProtocolError(f"unknown flag bits 0x{flags:04x}", code="bad_flags")
                end = pos + HEADER_SIZE + length
                if size < end:
                    break
                (crc,) = unpack_crc(buf, end - 4)
                if crc32(view[pos + 4 : end - 4]) != crc:  # flags, id and payload are contiguous
                    raise RemoteProtocolError("frame checksum mismatch", code="bad_checksum")
                start = pos + HEADER_SIZE
                if flags & Flags.STREAM:
                    if length < 8:
                        raise RemoteProtocolError("STREAM frame too short for its stream id", code="bad_stream_id")
                    (stream_id,) = STREAM_ID.unpack_from(buf, start)
                    start += 4
                else:
                    stream_id = None
                code = flags & Flags.COMPRESSION_MASK
                if flags & Flags.ENCRYPTED:
                    body = self._open(bytes(view[start : end - 4]), flags, msg_id, stream_id)
                    if code:
                        body = _decompressor(code)(body, max_size)
                elif code == _LZ4:  # the default codec, inlined (compression._lz4_decompress does the same)
                    if end - 4 - start < 4:
                        raise RemoteProtocolError("truncated lz4 payload", code="bad_compression")
                    (stored,) = _LZ4_SIZE.unpack_from(buf, start)
                    if stored > max_size:
                        raise RemoteProtocolError("decompressed payload over the frame limit", code="frame_too_large")
                    try:
                        body = _lz4_block_decompress(view[start : end - 4])
                    except Exception as exc:  # lz4 raises its own error types for corrupt input
                        raise RemoteProtocolError(f"corrupt lz4 payload: {exc}", code="bad_compression") from exc
                    if len(body) != stored:
                        raise RemoteProtocolError("lz4 payload does not match its stored size", code="bad_compression")
                elif code:
                    unpack = DECOMPRESSOR_BY_CODE[code] or _decompressor(code)  # the latter raises
                    body = unpack(view[start : end - 4], max_size)  # reads the view, returns bytes
                else:
                    body = bytes(view[start : end - 4])
                try:
                    message = decode(body)
                except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
                    # RecursionError: msgpack nested deeper than the interpreter stack (a 100 kB payload suffices)
                    raise RemoteProtocolError(f"undecodable payload: {exc}", code="bad_payload") from exc
                out.append(Frame(msg_id, flags, message, end - pos, stream_id))
                self._pos = pos = end
                limit -= 1
        finally:
            view.release()

    def _open(self, sealed: bytes, flags: int, msg_id: int, stream_id: int | None) -> bytes:
        if self._unseal is None:
            raise RemoteProtocolError("encrypted frame but no key ring is configured", code="bad_flags")
        aad = _AAD.pack(flags, msg_id) if stream_id is None else _AAD_STREAM.pack(flags, msg_id, stream_id)
        try:
            return self._unseal(aad, sealed)
        except Exception as exc:
            raise RemoteProtocolError(f"cannot decrypt frame: {exc}", code="bad_ciphertext") from exc


def _decompressor(code: int) -> Callable[[bytes, int], bytes]:
    fn = DECOMPRESSOR_BY_CODE[code]
    if fn is None:
        raise RemoteProtocolError(f"unknown compression code {code}", code="bad_flags")
    return fn
