"""Payload compression: none, LZ4 and Zstandard.

LZ4 uses the block format with its 4-byte little-endian size prefix, not the LZ4 frame
format: frames already carry their own length and CRC, and for the small payloads a node
sends (about 1 KiB) the frame format's header and per-call decompressor cost five times the
decompression itself.

Why a decompressed-size cap: a tiny compressed frame could otherwise expand into
gigabytes (a decompression bomb) before the frame-size limit can apply. For LZ4 the
stored size is checked before anything is decompressed.
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Callable

import lz4.block
import zstandard

from rustyray.protocol.errors import LocalProtocolError, RemoteProtocolError


class Compression(enum.IntEnum):
    """Compression codes as carried in the low two flag bits; API names are lower case."""

    NONE = 0
    LZ4 = 1
    ZSTD = 2

    @property
    def api_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_name(cls, name: str) -> Compression:
        """Parse an API name (``none``, ``lz4``, ``zstd``), case-insensitively."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown compression {name!r}; expected one of none, lz4, zstd") from None


_zstd_c = zstandard.ZstdCompressor(level=3)
_LZ4_SIZE = struct.Struct("<I")  # lz4.block's stored uncompressed size


def compress(kind: Compression, data: bytes) -> bytes:
    if kind is Compression.NONE:
        return data
    if kind is Compression.LZ4:
        return lz4.block.compress(data, store_size=True)
    if kind is Compression.ZSTD:
        return _zstd_c.compress(data)
    raise LocalProtocolError(f"unsupported compression {kind!r}", code="bad_compression")


def decompress(kind: Compression, data: bytes, max_size: int) -> bytes:
    """Decompress at most ``max_size`` bytes; anything larger or corrupt is the peer's fault."""
    if kind is Compression.NONE:
        return data
    fn = DECOMPRESSORS.get(kind)
    if fn is None:
        raise RemoteProtocolError(f"unknown compression code {int(kind)}", code="bad_flags")
    return fn(data, max_size)


def _lz4_decompress(data: bytes, max_size: int) -> bytes:
    if len(data) < 4:
        raise RemoteProtocolError("truncated lz4 payload", code="bad_compression")
    (size,) = _LZ4_SIZE.unpack_from(data)
    if size > max_size:
        raise RemoteProtocolError("decompressed payload over the frame limit", code="frame_too_large")
    try:
        out = lz4.block.decompress(data)
    except Exception as exc:  # lz4 raises its own error types for corrupt input
        raise RemoteProtocolError(f"corrupt lz4 payload: {exc}", code="bad_compression") from exc
    if len(out) != size:
        raise RemoteProtocolError("lz4 payload does not match its stored size", code="bad_compression")
    return out


def _zstd_decompress(data: bytes, max_size: int) -> bytes:
    try:
        with zstandard.ZstdDecompressor().stream_reader(bytes(data)) as reader:
            out = reader.read(max_size + 1)
    except Exception as exc:  # zstandard raises its own error types for corrupt input
        raise RemoteProtocolError(f"corrupt zstd payload: {exc}", code="bad_compression") from exc
    if len(out) > max_size:
        raise RemoteProtocolError("decompressed payload over the frame limit", code="frame_too_large")
    return out


COMPRESSORS: dict[int, Callable[[bytes], bytes]] = {
    Compression.LZ4: functools.partial(lz4.block.compress, store_size=True),
    Compression.ZSTD: _zstd_c.compress,
}
"""``compress`` by code, without the dispatch: the frame encoder looks the negotiated codec up once per frame."""
DECOMPRESSORS: dict[int, Callable[[bytes, int], bytes]] = {
    Compression.LZ4: _lz4_decompress,
    Compression.ZSTD: _zstd_decompress,
}
"""``decompress`` by wire code (bits 0-1 of the flags); a code missing here is a protocol error.

Both accept any bytes-like ``data`` (the decoder passes a view of its buffer; zstd copies it first)."""

COMPRESSOR_BY_CODE: tuple[Callable[[bytes], bytes] | None, ...] = (
    None, COMPRESSORS[Compression.LZ4], COMPRESSORS[Compression.ZSTD], None)
DECOMPRESSOR_BY_CODE: tuple[Callable[[bytes, int], bytes] | None, ...] = (
    None, _lz4_decompress, _zstd_decompress, None)
"""The same tables indexed by code 0..3: indexing takes the int value of a ``Compression``, a dict
lookup would call ``Enum.__hash__`` (Python code) once per frame."""
