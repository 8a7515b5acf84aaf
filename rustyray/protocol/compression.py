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
import struct

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
    try:
        if kind is Compression.NONE:
            return data
        if kind is Compression.LZ4:
            if len(data) < 4:
                raise RemoteProtocolError("truncated lz4 payload", code="bad_compression")
            (size,) = _LZ4_SIZE.unpack_from(data)
            if size > max_size:
                raise RemoteProtocolError("decompressed payload over the frame limit", code="frame_too_large")
            out = lz4.block.decompress(data)
            if len(out) != size:
                raise RemoteProtocolError("lz4 payload does not match its stored size", code="bad_compression")
            return out
        if kind is Compression.ZSTD:
            with zstandard.ZstdDecompressor().stream_reader(data) as reader:
                out = reader.read(max_size + 1)
            if len(out) > max_size:
                raise RemoteProtocolError("decompressed payload over the frame limit", code="frame_too_large")
            return out
    except RemoteProtocolError:
        raise
    except Exception as exc:  # lz4/zstd raise library-specific errors for corrupt input
        raise RemoteProtocolError(f"corrupt {kind.name.lower()} payload: {exc}", code="bad_compression") from exc
    raise RemoteProtocolError(f"unknown compression code {int(kind)}", code="bad_flags")
