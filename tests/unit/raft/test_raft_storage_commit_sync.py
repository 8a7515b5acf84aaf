"""FileStorage writes term and vote at once but a commit-only change at most every
``commit_sync_interval`` (and on close): a crash may lose a recent commit index, never a vote."""

from __future__ import annotations

from pathlib import Path

from rustyray.membership.raft import FileStorage, HardState, RaftEntry
from rustyray.membership.raft.state import Ready


def _rd(hs: HardState, entries: tuple[RaftEntry, ...] = ()) -> Ready:
    return Ready(hard_state=hs, soft_state=None, entries=entries, messages=(), committed_entries=())


def _on_disk(path: Path) -> HardState:
    with FileStorage(path, fsync=False) as other:
        return other.load().hard_state


def test_commit_only_changes_are_rate_limited_and_flushed_on_close(tmp_path: Path) -> None:
    now = [0.0]
    s = FileStorage(tmp_path, commit_sync_interval=1.0, clock=lambda: now[0])
    es = tuple(RaftEntry(term=1, index=i) for i in range(1, 6))
    s.save(_rd(HardState(term=1, vote="a", commit=1), es))  # first write: at once
    assert _on_disk(tmp_path) == HardState(term=1, vote="a", commit=1)
    s.save(_rd(HardState(term=1, vote="a", commit=3)))  # commit only, within the interval
    assert s.load().hard_state.commit == 3
    assert _on_disk(tmp_path).commit == 1  # a crash now would restart from commit 1: safe
    now[0] = 1.5
    s.save(_rd(HardState(term=1, vote="a", commit=4)))  # interval passed: written
    assert _on_disk(tmp_path).commit == 4
    s.save(_rd(HardState(term=1, vote="a", commit=5)))
    s.close()
    assert _on_disk(tmp_path) == HardState(term=1, vote="a", commit=5)


def test_term_or_vote_changes_are_written_at_once(tmp_path: Path) -> None:
    s = FileStorage(tmp_path, commit_sync_interval=3600, clock=lambda: 0.0)
    s.save(_rd(HardState(term=1, vote=None, commit=0)))
    s.save(_rd(HardState(term=2, vote=None, commit=0)))
    assert _on_disk(tmp_path).term == 2
    s.save(_rd(HardState(term=2, vote="b", commit=0)))
    assert _on_disk(tmp_path).vote == "b"
    s.close()
