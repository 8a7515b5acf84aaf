"""The in-memory Raft log with its commit index and persistence watermark.

Indexes start at 1; index 0 is a sentinel of term 0 so ``prev_log_index=0`` always
matches. There are no snapshots: the whole log is kept (the cluster-configuration
log is small). ``stable`` is the last index known to be on disk; entries after it
go out in the next Ready. The positions of conf-change entries are tracked so the
current configuration (the latest conf entry, thesis §4.1) survives truncation.
"""

from __future__ import annotations

from rustyray.membership.raft.messages import EntryKind, RaftEntry


class RaftLog:
    def __init__(self, entries: tuple[RaftEntry, ...] | list[RaftEntry] = (), commit: int = 0,
                 stable: int = 0) -> None:
        self._entries: list[RaftEntry] = []
        self._conf_indexes: list[int] = []
        self.commit = 0
        self.stable = 0
        self._trunc_since_ready: int | None = None
        self.append(list(entries))
        assert 0 <= commit <= self.last_index(), "commit beyond the log"
        assert 0 <= stable <= self.last_index()
        self.commit = commit
        self.stable = stable

    # -- reading -------------------------------------------------------------
    def last_index(self) -> int:
        return len(self._entries)

    def last_term(self) -> int:
        return self._entries[-1].term if self._entries else 0

    def term(self, index: int) -> int:
        assert 0 <= index <= len(self._entries), f"term({index}) outside log 0..{len(self._entries)}"
        return self._entries[index - 1].term if index else 0

    def match_term(self, index: int, term: int) -> bool:
        return index <= len(self._entries) and self.term(index) == term

    def entry(self, index: int) -> RaftEntry:
        assert 1 <= index <= len(self._entries)
        return self._entries[index - 1]

    def slice(self, lo: int, hi: int) -> tuple[RaftEntry, ...]:
        """Entries with lo <= index <= hi (clamped to the log)."""
        lo = max(lo, 1)
        hi = min(hi, len(self._entries))
        return tuple(self._entries[lo - 1 : hi]) if lo <= hi else ()

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Paper §5.4.1: the candidate's log is at least as up-to-date as ours."""
        mine = self.last_term()
        return last_term > mine or (last_term == mine and last_index >= self.last_index())

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest i <= index whose term <= ``term`` (0 if none): everything after it
        certainly differs from a log whose entry at ``index`` has ``term``."""
        index = min(index, len(self._entries))
        while index > 0 and self.term(index) > term:
            index -= 1
        return index

    def last_conf_index(self) -> int:
        return self._conf_indexes[-1] if self._conf_indexes else 0

    def unstable_entries(self) -> tuple[RaftEntry, ...]:
        return tuple(self._entries[self.stable :])

    # -- writing -------------------------------------------------------------
    def append(self, entries: list[RaftEntry] | tuple[RaftEntry, ...]) -> None:
        """Append entries that follow the last one directly (indexes consecutive, terms not
        decreasing). Checked at the batch's ends only: this runs once per proposal and per
        received append, and a batch comes from one leader's log, which is consecutive."""
        if not entries:
            return
        first, last = entries[0], entries[-1]
        start = len(self._entries) + 1
        assert first.index == start, f"gap or overlap appending index {first.index}"
        assert last.index == start + len(entries) - 1, "entries to append are not consecutive"
        assert first.term >= self.last_term() and last.term >= first.term, "terms in the log must not decrease"
        self._entries.extend(entries)
        conf = EntryKind.CONF_CHANGE
        for e in entries:
            if e.kind is conf:
                self._conf_indexes.append(e.index)

    def truncate_from(self, index: int) -> None:
        """Drop entries >= index (a follower resolving a conflict; never committed ones)."""
        assert index > self.commit, f"truncating committed entry {index} (commit {self.commit})"
        del self._entries[index - 1 :]
        while self._conf_indexes and self._conf_indexes[-1] >= index:
            self._conf_indexes.pop()
        self.stable = min(self.stable, index - 1)
        if self._trunc_since_ready is None or index < self._trunc_since_ready:
            self._trunc_since_ready = index

    def maybe_append(self, prev_index: int, prev_term: int, commit: int,
                     entries: tuple[RaftEntry, ...]) -> int | None:
        """Follower side of AppendEntries (fig. 2 receiver steps 2-5).

        Returns the index of the last entry the leader sent (what we now match) or None
        if the log does not contain ``prev_index`` with ``prev_term``.
        """
        if not self.match_term(prev_index, prev_term):
            return None
        last_new = prev_index + len(entries)
        for i, e in enumerate(entries):
            assert e.index == prev_index + 1 + i
            if e.index > len(self._entries):
                self.append(entries[i:])
                break
            if self.term(e.index) != e.term:
                self.truncate_from(e.index)
                self.append(entries[i:])
                break
        self.commit_to(min(commit, last_new))
        return last_new

    def commit_to(self, index: int) -> bool:
        if index <= self.commit:
            return False
        assert index <= len(self._entries), f"commit {index} beyond last index {len(self._entries)}"
        self.commit = index
        return True

    # -- persistence watermark --------------------------------------------------
    def begin_ready(self) -> None:
        self._trunc_since_ready = None

    def stable_to(self, index: int) -> None:
        """Entries up to ``index`` (handed out in the last Ready) are now on disk, except
        those replaced by a truncation that happened after that Ready was taken."""
        if self._trunc_since_ready is not None:
            index = min(index, self._trunc_since_ready - 1)
        self.stable = max(self.stable, min(index, len(self._entries)))
