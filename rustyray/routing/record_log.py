"""A durable, bounded log of what a node's handlers processed (``node_dir/records.jsonl``).

Why it exists: the receive log lives in memory and a node actor that Ray restarts
loses it, so "every acknowledged message was processed" cannot be checked from it.
A handler that appends here does so *before* its result is acknowledged, with one
``write(2)`` of one JSON line on an ``O_APPEND`` descriptor: once the call returns the
line is in the kernel's page cache and survives the process being killed (not a
machine crash: there is no fsync, by design, to keep the handler path cheap).

Each record gets an absolute, never reused ``index`` (0, 1, 2, ...), so a reader can
page with ``after``/``limit`` and notice what it missed. The file is bounded: when it
holds more than ``2 * max_entries`` lines it is rewritten with the newest
``max_entries`` (atomically, by rename); ``first_index`` then moves forward. A torn
last line (a kill in the middle of a write) is ignored on load.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import deque
from pathlib import Path
from typing import Any


class RecordLog:
    """Append-only records with absolute indexes, mirrored in memory (newest ``max_entries``)."""

    def __init__(self, path: Path, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.path = path
        self.max_entries = max_entries
        self._entries: deque[dict[str, Any]] = deque(maxlen=max_entries)
        self._lines_in_file = 0
        self._next = 0
        self._fd: int | None = None
        self._loaded = False
        self._torn_tail = False  # the file ends without a newline: start the next record on a new line

    # ------------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Read what an earlier incarnation of this node wrote (idempotent)."""
        if self._loaded:
            return
        self._loaded = True
        try:
            text = self.path.read_text()
        except OSError:
            return
        self._torn_tail = bool(text) and not text.endswith("\n")
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                index = int(rec["index"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line
            self._entries.append(rec)
            self._lines_in_file += 1
            self._next = max(self._next, index + 1)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    # ------------------------------------------------------------------ writing
    def append(self, record: dict[str, Any]) -> int:
        """Write one record durably (against a process kill) and return its index."""
        self.load()
        index = self._next
        rec = {"index": index, **record}
        line = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
        if self._torn_tail:
            line = b"\n" + line
            self._torn_tail = False
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        written = os.write(self._fd, line)
        assert written == len(line), "a short write to a regular file"
        self._next = index + 1
        self._entries.append(rec)
        self._lines_in_file += 1
        if self._lines_in_file > 2 * self.max_entries:
            self._compact()
        return index

    def _compact(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in self._entries))
        self.close()
        os.replace(tmp, self.path)
        self._lines_in_file = len(self._entries)

    # ------------------------------------------------------------------ reading
    @property
    def total(self) -> int:
        """Records ever written (the next index)."""
        self.load()
        return self._next

    @property
    def first_index(self) -> int:
        """Index of the oldest record still kept."""
        self.load()
        return self._entries[0]["index"] if self._entries else self._next

    def read(self, after: int | None = None, limit: int = 1000) -> dict[str, Any]:
        """Records with ``index > after`` (oldest first), or the newest ``limit`` when ``after`` is None."""
        self.load()
        if after is None:
            entries = list(self._entries)[-limit:] if limit else []
        else:
            # indexes are contiguous from first_index, so the start position is arithmetic
            start = max(0, after + 1 - self.first_index)
            entries = list(itertools.islice(self._entries, start, start + limit))
        nxt = entries[-1]["index"] if entries else (after if after is not None else self._next - 1)
        return {
            "total": self._next,
            "first_index": self.first_index,
            "last_index": self._next - 1,
            "next_after": nxt,
            "entries": entries,
        }
