"""Write-ahead journal of ExactlyOnce dedup entries.

Why: the dedup window is snapshotted periodically, so a node killed between
processing a message and the next snapshot would come back without the key and
run a redelivery again. Each new key (with the handler's stored result) is
appended here with one ``write(2)`` before the acknowledgement leaves, so it
survives the process being killed (not a machine crash: there is no fsync per
message). A snapshot makes the journal redundant, so saving one truncates it;
restoring replays whatever the journal holds on top of the last snapshot. A torn
last record (killed mid-write) is ignored.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import msgspec

_LEN = struct.Struct("!I")
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[str, float, bytes | None])


class DedupJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def append(self, key: str, wall_time: float, result: bytes | None) -> None:
        body = _encoder.encode((key, wall_time, result))
        os.write(self._open(), _LEN.pack(len(body)) + body)

    def replay(self) -> list[tuple[str, float, bytes | None]]:
        try:
            data = self.path.read_bytes()
        except OSError:
            return []
        out, pos = [], 0
        while pos + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, pos)
            end = pos + _LEN.size + n
            if end > len(data):
                break  # torn last record
            try:
                out.append(_decoder.decode(data[pos + _LEN.size:end]))
            except (msgspec.DecodeError, msgspec.ValidationError):
                break
            pos = end
        return out

    def reset(self) -> None:
        """Truncate after a snapshot has made the entries redundant."""
        os.ftruncate(self._open(), 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
