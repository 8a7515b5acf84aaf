"""FileStorage durability and restart (paper fig. 2: "Persistent state on all servers:
currentTerm, votedFor, log[] -- updated on stable storage before responding to RPCs")."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from raft_testnet import RaftTestNet

from rustyray.membership.raft import (
    FileStorage,
    HardState,
    MemoryStorage,
    RaftConfig,
    RaftEntry,
    RaftNode,
    RaftVoteRequest,
    RaftVoteResponse,
    Role,
    StorageCorrupt,
)


def _entries(terms: list[int], start: int = 1) -> list[RaftEntry]:
    return [RaftEntry(term=t, index=start + i, data=f"d{start + i}".encode()) for i, t in enumerate(terms)]


def test_file_storage_round_trip(tmp_path: Path) -> None:
    with FileStorage(tmp_path) as s:
        assert s.load().entries == () and s.load().hard_state == HardState()
        s.append(_entries([1, 1, 2]))
        s.set_hard_state(HardState(term=2, vote="b", commit=2))
    with FileStorage(tmp_path) as s:
        st = s.load()
    assert st.entries == tuple(_entries([1, 1, 2]))
    assert st.hard_state == HardState(term=2, vote="b", commit=2)


def test_file_storage_truncates_on_conflict(tmp_path: Path) -> None:
    with FileStorage(tmp_path) as s:
        s.append(_entries([1, 1, 2, 2]))
        s.append(_entries([3, 3], start=3))  # replaces 3..4
        s.append(_entries([3], start=5))
    with FileStorage(tmp_path) as s:
        assert [e.term for e in s.load().entries] == [1, 1, 3, 3, 3]
        with pytest.raises(StorageCorrupt, match="gap"):
            s.append(_entries([4], start=9))


def test_file_storage_drops_torn_tail(tmp_path: Path) -> None:
    with FileStorage(tmp_path) as s:
        s.append(_entries([1, 1, 1]))
    log = tmp_path / "log"
    data = log.read_bytes()
    log.write_bytes(data[:-3])  # crash in the middle of writing entry 3
    with FileStorage(tmp_path) as s:
        assert [e.index for e in s.load().entries] == [1, 2]
        s.append(_entries([2], start=3))
    with FileStorage(tmp_path) as s:
        assert [e.term for e in s.load().entries] == [1, 1, 2]


def test_file_storage_detects_corruption_in_the_middle(tmp_path: Path) -> None:
    with FileStorage(tmp_path) as s:
        s.append(_entries([1, 1, 1]))
    log = tmp_path / "log"
    data = bytearray(log.read_bytes())
    data[10] ^= 0xFF  # inside the first record's payload
    log.write_bytes(bytes(data))
    with pytest.raises(StorageCorrupt, match="checksum"):
        FileStorage(tmp_path)


def test_file_storage_rejects_commit_beyond_log(tmp_path: Path) -> None:
    with FileStorage(tmp_path) as s:
        s.append(_entries([1]))
        s.set_hard_state(HardState(term=1, commit=5))
    with pytest.raises(StorageCorrupt, match="commit"):
        FileStorage(tmp_path)


def test_memory_storage_matches_file_storage(tmp_path: Path) -> None:
    ops = [_entries([1, 1, 2]), _entries([3], start=2), _entries([3, 3], start=3)]
    mem = MemoryStorage()
    with FileStorage(tmp_path) as f:
        for es in ops:
            mem.append(es)
            f.append(es)
        assert mem.load() == f.load()


def test_restart_from_file_storage_keeps_term_vote_and_log(tmp_path: Path) -> None:
    ids = ["a", "b", "c"]
    net = RaftTestNet(ids, seed=9, storage_factory=lambda i: FileStorage(tmp_path / i))
    net.tick_until(lambda: net.leader() is not None)
    lead = net.leader()
    for k in range(5):
        net.propose(lead.id, f"k{k}".encode())
    net.tick(2)
    victim = next(i for i in ids if i != lead.id)
    before = net.nodes[victim]
    net.crash(victim)
    net.storages[victim].close()  # type: ignore[attr-defined]
    net.storages[victim] = FileStorage(tmp_path / victim)  # reopen from disk
    restored = net.restart(victim)
    assert (restored.term, restored.vote) == (before.term, before.vote)
    assert restored.log.slice(1, 100) == before.log.slice(1, 100)
    assert restored.log.commit == before.log.commit
    assert restored.status().members == ids
    # Committed entries are replayed to the state machine after a restart (no snapshots).
    assert [e.data for e in net.applied[victim]] == [e.data for e in before.log.slice(1, before.log.commit)]
    # And it rejoins: new entries reach it.
    i = net.propose(lead.id, b"after-restart")
    net.tick(2)
    assert restored.log.commit >= i and restored.leader == lead.id
    for s in net.storages.values():
        s.close()  # type: ignore[attr-defined]


def test_restore_has_nothing_new_to_persist(tmp_path: Path) -> None:
    n = RaftNode.bootstrap(RaftConfig(id="a"), ["a"], random.Random(0))
    with FileStorage(tmp_path) as fs:
        n.campaign()
        while n.has_ready():
            rd = n.ready()
            fs.save(rd)
            n.advance(rd)
    with FileStorage(tmp_path) as fs:
        r = RaftNode.restore(RaftConfig(id="a"), fs.load(), random.Random(0), applied=1)
    rd = r.ready()
    assert rd.entries == () and rd.hard_state is None
    assert [e.index for e in rd.committed_entries] == [2], "applied=1 skips what was applied"
    assert (r.term, r.vote, r.role) == (2, "a", Role.FOLLOWER)


def test_persisted_vote_survives_restart(tmp_path: Path) -> None:
    # §5.2 "Each server will vote for at most one candidate in a given term" -- even across a
    # crash, because votedFor is persisted before the vote is sent.
    n = RaftNode.bootstrap(RaftConfig(id="a"), ["a", "b", "c"], random.Random(0))
    with FileStorage(tmp_path) as fs:
        n.step(RaftVoteRequest(term=5, from_id="b", to_id="a", last_log_index=1, last_log_term=1))
        rd = n.ready()
        fs.save(rd)
        assert rd.messages[0].granted
        n.advance(rd)
    with FileStorage(tmp_path) as fs:
        n2 = RaftNode.restore(RaftConfig(id="a"), fs.load(), random.Random(0))
    n2.step(RaftVoteRequest(term=5, from_id="c", to_id="a", last_log_index=1, last_log_term=1))
    (resp,) = n2.ready().messages
    assert isinstance(resp, RaftVoteResponse) and not resp.granted
