"""Payload compression: none, LZ4 (frame format) and Zstandard.

Why a decompressed-size cap: a tiny compressed frame could otherwise expand into
gigabytes (a decompression bomb) before the frame-size limit can apply.
"""

from __future__ import annotations

import enum

import lz4.frame
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


def compress(kind: Compression, data: bytes) -> bytes:
    if kind is Compression.NONE:
        return data
    if kind is Compression.LZ4:
        return lz4.frame.compress(data)
    if kind is Compression.ZSTD:
        return _zstd_c.compress(data)
    raise LocalProtocolError(f"unsupported compression {kind!r}", code="bad_compression")


def decompress(kind: Compression, data: bytes, max_size: int) -> bytes:
    """Decompress at most ``max_size`` bytes; anything larger or corrupt is the peer's fault."""
    try:
        if kind is Compression.NONE:
            return data
        if kind is Compression.LZ4:
            d = lz4.frame.LZ4FrameDecompressor()
            out = d.decompress(data, max_length=max_size + 1)
            if len(out) > max_size:
                raise RemoteProtocolError("decompressed payload over the frame limit", code="frame_too_large")
            if not d.eof:
                raise RemoteProtocolError("truncated lz4 payload", code="bad_compression")
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
