"""The receiver's dedup files in ``node_dir``: the snapshot ``dedup.bin`` and the journal ``dedup.journal``.

The file I/O under ``ReceiveCore``'s persistence. On start, ``restore`` adopts the last snapshot and
replays the write-ahead journal on top of it (keys processed after that snapshot, journaled ahead of
their acks). ``save`` writes a snapshot atomically (a temporary file, then a rename) and truncates
the journal, which the snapshot made redundant; ``append`` journals one key before its
acknowledgement leaves. Ages are taken on the wall clock: it survives a process restart, a
monotonic clock does not. A missing or corrupt snapshot is skipped (logged), never fatal.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import msgspec

from rustyray.routing.dedup_journal import DedupJournal
from rustyray.routing.receive_core import JournalEntry, ReceiveCore

log = logging.getLogger(__name__)

DEDUP_FILE = "dedup.bin"
DEDUP_JOURNAL = "dedup.journal"


class DedupStore:
    """The snapshot file and the journal of one node (``owner`` names it in log lines)."""

    def __init__(self, node_dir: Path, owner: str) -> None:
        self.path = node_dir / DEDUP_FILE
        self.journal = DedupJournal(node_dir / DEDUP_JOURNAL)
        self.owner = owner

    def restore(self, core: ReceiveCore) -> None:
        """The last snapshot, then the keys journaled after it."""
        try:
            core.restore(self.path.read_bytes(), time.time())
        except OSError:
            pass
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            log.warning("%s ignores a corrupt %s: %s", self.owner, self.path, exc)
        replayed = core.replay(self.journal.replay())
        if replayed:
            log.info("%s restored %d dedup keys from the journal", self.owner, replayed)

    def save(self, core: ReceiveCore) -> None:
        """Snapshot the window (a failure is logged; the next change saves again)."""
        data = core.snapshot(time.time())
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, self.path)
            self.journal.reset()
        except OSError as exc:
            log.warning("%s cannot save %s: %s", self.owner, self.path, exc)

    def append(self, entry: JournalEntry) -> None:
        """Journal one processed key with one ``write(2)``: it survives the process being killed."""
        self.journal.append(entry.key, entry.wall_time, entry.stored)

    def close(self) -> None:
        self.journal.close()
