"""Durable Raft state: hard state (term, vote, commit) and the log.

This is an adapter, not a core: ``FileStorage`` does plain blocking file I/O (call
it from a worker thread if the event loop must not block on fsync). Use it in the
order a ``Ready`` documents: ``save(ready)`` before sending ``ready.messages``.

On-disk layout of ``FileStorage(dir)``:

* ``dir/hardstate``: one msgpack ``HardState``, replaced atomically (write a temp
  file, fsync, rename, fsync the directory). ``save`` writes it at once when the term or
  vote changed (a vote must be durable before it is sent); a change of the commit index
  alone is written at most every ``commit_sync_interval`` seconds and on ``close``: the
  commit index is not needed for safety (a restarted node re-learns it from the leader and
  re-applies from a lower one), and skipping two of the three fsyncs of a busy Ready is
  most of the disk time of a group commit. A crash can lose the commit-index advances made since
  the last write (those of the last interval of a burst, however long ago the burst ended).
* ``dir/log``: append-only records ``[u32 length][u32 crc32][msgpack RaftEntry]``
  (big-endian). Appending an entry whose index is already stored first truncates the
  file at that entry (a follower resolving a conflict). A torn last record (crash
  mid-write) is cut off on open; a bad record followed by more data is
  ``StorageCorrupt``.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import msgspec

from rustyray.membership.raft.errors import StorageCorrupt
from rustyray.membership.raft.messages import RaftEntry
from rustyray.membership.raft.state import HardState, Ready, StorageState

__all__ = ["FileStorage", "MemoryStorage", "Storage", "StorageState"]

_HEADER = struct.Struct(">II")
_entry_encoder = msgspec.msgpack.Encoder()
_entry_decoder = msgspec.msgpack.Decoder(RaftEntry)
_hs_decoder = msgspec.msgpack.Decoder(HardState)


class Storage(Protocol):
    def load(self) -> StorageState: ...

    def append(self, entries: tuple[RaftEntry, ...] | list[RaftEntry]) -> None: ...

    def set_hard_state(self, hs: HardState) -> None: ...

    def save(self, rd: Ready) -> None: ...


class MemoryStorage:
    """Storage for tests and the simulator: survives a node restart, not a process exit."""

    def __init__(self) -> None:
        self.hard_state = HardState()
        self.entries: list[RaftEntry] = []

    def load(self) -> StorageState:
        return StorageState(hard_state=self.hard_state, entries=tuple(self.entries))

    def append(self, entries: tuple[RaftEntry, ...] | list[RaftEntry]) -> None:
        if not entries:
            return
        first = entries[0].index
        if first > len(self.entries) + 1:
            raise StorageCorrupt(f"append at {first} leaves a gap after {len(self.entries)}")
        del self.entries[first - 1 :]
        self.entries.extend(entries)

    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs

    def save(self, rd: Ready) -> None:
        """Entries first, then hard state (its commit must never point past the log)."""
        self.append(rd.entries)
        if rd.hard_state is not None:
            self.set_hard_state(rd.hard_state)


class FileStorage:
    """Durable storage in one directory (see the module docstring for the layout)."""

    def __init__(self, dir: Path | str, *, fsync: bool = True, commit_sync_interval: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.dir = Path(dir)
        self._commit_sync_interval = commit_sync_interval
        self._clock = clock
        self._hs_written_at = float("-inf")
        self._hs_dirty = False  # _hard_state has a commit index newer than the file's
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync
        self._log_path = self.dir / "log"
        self._hs_path = self.dir / "hardstate"
        created = not self._log_path.exists()
        self._f = open(self._log_path, "a+b")  # noqa: SIM115 - kept open for the storage's life
        if created:
            self._sync_dir()
        self._offsets: list[int] = []  # file offset of the record for index i+1
        self._end = 0
        self._entries = self._scan()
        self._hard_state = self._durable_hs = self._read_hard_state()
        if self._hard_state.commit > len(self._offsets):
            raise StorageCorrupt(f"hard state commit {self._hard_state.commit} beyond "
                                 f"last stored index {len(self._offsets)}")

    # -- reading -------------------------------------------------------------
    def _scan(self) -> list[RaftEntry]:
        self._f.seek(0)
        data = self._f.read()
        entries: list[RaftEntry] = []
        pos = 0
        while pos < len(data):
            if pos + _HEADER.size > len(data):
                break  # torn header
            length, crc = _HEADER.unpack_from(data, pos)
            start, end = pos + _HEADER.size, pos + _HEADER.size + length
            if end > len(data):
                break  # torn payload
            payload = data[start:end]
            if zlib.crc32(payload) != crc:
                if end == len(data):
                    break  # torn last record
                raise StorageCorrupt(f"{self._log_path}: bad checksum at offset {pos}")
            try:
                entry = _entry_decoder.decode(payload)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise StorageCorrupt(f"{self._log_path}: undecodable entry at offset {pos}") from exc
            if entry.index != len(entries) + 1:
                raise StorageCorrupt(f"{self._log_path}: entry {entry.index} at position {len(entries) + 1}")
            self._offsets.append(pos)
            entries.append(entry)
            pos = end
        if pos < len(data):
            self._f.truncate(pos)
            self._sync_file()
        self._end = pos
        return entries

    def _read_hard_state(self) -> HardState:
        try:
            raw = self._hs_path.read_bytes()
        except FileNotFoundError:
            return HardState()
        try:
            return _hs_decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise StorageCorrupt(f"{self._hs_path}: unreadable hard state") from exc

    def load(self) -> StorageState:
        return StorageState(hard_state=self._hard_state, entries=tuple(self._entries))

    # -- writing -------------------------------------------------------------
    def append(self, entries: tuple[RaftEntry, ...] | list[RaftEntry]) -> None:
        if not entries:
            return
        first = entries[0].index
        last = len(self._offsets)
        if first > last + 1:
            raise StorageCorrupt(f"append at {first} leaves a gap after {last}")
        if first <= last:
            self._end = self._offsets[first - 1]
            del self._offsets[first - 1 :]
            del self._entries[first - 1 :]
            self._f.truncate(self._end)
        buf = bytearray()
        for e in entries:
            payload = _entry_encoder.encode(e)
            self._offsets.append(self._end + len(buf))
            buf += _HEADER.pack(len(payload), zlib.crc32(payload))
            buf += payload
            self._entries.append(e)
        self._f.write(buf)
        self._end += len(buf)
        self._sync_file()

    def set_hard_state(self, hs: HardState) -> None:
        tmp = self._hs_path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(msgspec.msgpack.encode(hs))
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())
        os.replace(tmp, self._hs_path)
        self._sync_dir()
        self._hard_state = self._durable_hs = hs
        self._hs_written_at = self._clock()
        self._hs_dirty = False

    def save(self, rd: Ready) -> None:
        """Entries first, then hard state (its commit must never point past the log)."""
        self.append(rd.entries)
        hs = rd.hard_state
        if hs is None:
            return
        durable = self._durable_hs
        if ((hs.term, hs.vote) == (durable.term, durable.vote)
                and self._clock() - self._hs_written_at < self._commit_sync_interval):
            self._hard_state, self._hs_dirty = hs, True  # only the commit index moved: lazily
            return
        self.set_hard_state(hs)

    def close(self) -> None:
        if self._hs_dirty and not self._f.closed:
            self.set_hard_state(self._hard_state)
        self._f.close()

    def __enter__(self) -> FileStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _sync_file(self) -> None:
        self._f.flush()
        if self._fsync:
            os.fsync(self._f.fileno())

    def _sync_dir(self) -> None:
        if not self._fsync:
            return
        fd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
