"""Log replication and safety, tied to sentences of Ongaro & Ousterhout 2014 (§5.3, §5.4)."""

from __future__ import annotations

import random

import pytest
from raft_testnet import RaftTestNet

from rustyray.membership.raft import (
    EntryKind,
    HardState,
    RaftAppendEntries,
    RaftAppendResponse,
    RaftConfig,
    RaftEntry,
    RaftNode,
    RaftVoteResponse,
    Role,
    StorageState,
)

BOOT = RaftNode.bootstrap(RaftConfig(id="lead"), ["lead", "foll", "voter"], random.Random(0)).log.entry(1)


def _drain(n: RaftNode) -> list:
    out = []
    while n.has_ready():
        rd = n.ready()
        out.extend(rd.messages)
        n.advance(rd)
    return out


def _log(terms: list[int]) -> tuple[RaftEntry, ...]:
    """A log whose entry 1 is the shared bootstrap conf entry, then one entry per term given."""
    rest = tuple(RaftEntry(term=t, index=i + 2, data=f"{i + 2}@{t}".encode()) for i, t in enumerate(terms))
    return (BOOT, *rest)


def _leader_of(members=("lead", "foll", "voter")) -> RaftNode:
    n = RaftNode.bootstrap(RaftConfig(id="lead", pre_vote=False), list(members), random.Random(1))
    _drain(n)
    n.campaign()
    for m in members[1:]:
        n.step(RaftVoteResponse(term=n.term, from_id=m, to_id="lead", granted=True))
    _drain(n)
    assert n.role is Role.LEADER
    return n


def test_leader_replicates_new_entry_to_all_followers() -> None:
    # §5.3 "The leader appends the command to its log as a new entry, then issues AppendEntries
    # RPCs in parallel to each of the other servers to replicate the entry."
    n = _leader_of()
    for f in ("foll", "voter"):  # acks of the no-op move both followers to replicate state
        n.step(RaftAppendResponse(term=n.term, from_id=f, to_id="lead", success=True, index=2))
    _drain(n)
    idx = n.propose(b"x")
    msgs = _drain(n)
    assert idx == 3 and n.log.entry(3).data == b"x"
    assert sorted(m.to_id for m in msgs if isinstance(m, RaftAppendEntries) and m.entries) == ["foll", "voter"]


def test_entry_commits_once_on_a_majority() -> None:
    # §5.3 "A log entry is committed once the leader that created the entry has replicated it on
    # a majority of the servers". The leader's own copy counts only once it is persisted.
    n = _leader_of()
    n.step(RaftAppendResponse(term=n.term, from_id="foll", to_id="lead", success=True, index=2))
    _drain(n)
    idx = n.propose(b"x")
    n.step(RaftAppendResponse(term=n.term, from_id="foll", to_id="lead", success=True, index=idx))
    assert n.log.commit == 2, "own copy not yet persisted: 1 of 3 is no majority"
    rd = n.ready()
    assert [e.index for e in rd.entries] == [idx]
    n.advance(rd)
    assert n.log.commit == idx
    rd = n.ready()
    assert [e.data for e in rd.committed_entries] == [b"x"]
    assert rd.hard_state.commit == idx


def test_old_term_entries_not_committed_by_counting_replicas() -> None:
    # §5.4.2 "Raft never commits log entries from previous terms by counting replicas. Only log
    # entries from the leader's current term are committed by counting replicas".
    n = RaftNode(RaftConfig(id="lead", pre_vote=False), random.Random(1), entries=_log([2]),
                 hard_state=HardState(term=2, commit=1), stable=True)
    n.campaign()
    for m in ("foll", "voter"):
        n.step(RaftVoteResponse(term=3, from_id=m, to_id="lead", granted=True))
    _drain(n)  # noop at index 3, term 3, persisted
    n.step(RaftAppendResponse(term=3, from_id="foll", to_id="lead", success=True, index=2))
    assert n.log.commit == 1, "entry 2 (term 2) is on a majority but must not commit by itself"
    n.step(RaftAppendResponse(term=3, from_id="foll", to_id="lead", success=True, index=3))
    assert n.log.commit == 3, "committing the term-3 no-op commits entry 2 indirectly"


def test_follower_rejects_append_whose_prev_does_not_match() -> None:
    # §5.3 "If the follower does not find an entry in its log with the same index and term, then
    # it refuses the new entries." (the consistency check behind Log Matching)
    n = RaftNode(RaftConfig(id="foll"), random.Random(1), entries=_log([2, 2]),
                 hard_state=HardState(term=3, commit=1), stable=True)
    n.step(RaftAppendEntries(term=3, from_id="lead", to_id="foll", prev_log_index=3, prev_log_term=3,
                             entries=(RaftEntry(term=3, index=4),)))
    (resp,) = _drain(n)
    assert isinstance(resp, RaftAppendResponse) and not resp.success and resp.index == 3
    assert (resp.reject_hint, resp.reject_hint_term) == (3, 2)
    assert n.log.last_index() == 3


def test_follower_truncates_conflicting_suffix_but_keeps_matching_one() -> None:
    # Fig. 2 receiver step 3: "If an existing entry conflicts with a new one (same index but
    # different terms), delete the existing entry and all that follow it"; step 4 appends only
    # entries not already in the log (a stale, shorter append must not truncate).
    n = RaftNode(RaftConfig(id="foll"), random.Random(1), entries=_log([2, 2, 2]),
                 hard_state=HardState(term=3, commit=1), stable=True)
    n.step(RaftAppendEntries(term=3, from_id="lead", to_id="foll", prev_log_index=2, prev_log_term=2,
                             entries=(RaftEntry(term=3, index=3, data=b"new"),)))
    assert [n.log.term(i) for i in (1, 2, 3)] == [1, 2, 3] and n.log.last_index() == 3
    rd = n.ready()
    assert [e.data for e in rd.entries] == [b"new"], "only the replaced suffix goes to storage"
    n.advance(rd)
    n.step(RaftAppendEntries(term=3, from_id="lead", to_id="foll", prev_log_index=1, prev_log_term=1,
                             entries=(n.log.entry(2),)))
    assert n.log.last_index() == 3, "a stale append that matches must not drop later entries"


# Figure 7 of the paper: the leader's log (top) and six possible follower logs (a)-(f),
# as terms of indexes 1..n. Our index 1 is the bootstrap entry (term 1), as in the figure.
LEADER_FIG7 = [1, 1, 4, 4, 5, 5, 6, 6, 6]  # indexes 2..10 (index 1 is bootstrap, term 1)
FIG7 = {
    "a": [1, 1, 4, 4, 5, 5, 6, 6],
    "b": [1, 1, 4],
    "c": [1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
    "d": [1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
    "e": [1, 1, 4, 4, 4, 4],
    "f": [1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
}


@pytest.mark.parametrize("case", sorted(FIG7))
def test_leader_forces_follower_logs_to_match_figure7(case: str) -> None:
    # §5.3 "the leader handles inconsistencies by forcing the followers' logs to duplicate its
    # own. This means that conflicting entries in follower logs will be overwritten".
    net = RaftTestNet(["lead", "foll", "voter"], pre_vote=False)
    for id_, terms, term in (("lead", LEADER_FIG7, 7), ("voter", LEADER_FIG7, 7), ("foll", FIG7[case], 7)):
        st = StorageState(hard_state=HardState(term=term, commit=1), entries=_log(terms))
        net.storages[id_].entries = list(st.entries)
        net.storages[id_].hard_state = st.hard_state
        net.restart(id_)
    net.campaign("lead")
    lead = net.nodes["lead"]
    assert lead.role is Role.LEADER and lead.term == 8
    net.tick(2)
    assert net.log_terms("foll") == net.log_terms("lead") == [1, *LEADER_FIG7, 8]
    assert net.nodes["foll"].log.slice(1, 11) == lead.log.slice(1, 11)
    assert lead.log.commit == 11
    # Fast backtracking (§5.3 "the follower can include the term of the conflicting entry and
    # the first index it stores for that term"): with the term-based hint every case of the
    # figure needs at most one rejection (entry-by-entry backtracking needs up to 7, for f).
    rejects = [m for m in net.sent if isinstance(m, RaftAppendResponse) and m.from_id == "foll"
               and not m.success]
    assert len(rejects) <= 1


def test_committed_entries_reach_followers_state_machines() -> None:
    # §5.3 "Once a follower learns that a log entry is committed, it applies the entry to its
    # local state machine (in log order)."
    net = RaftTestNet(["a", "b", "c"], seed=4)
    net.tick_until(lambda: net.leader() is not None)
    lead = net.leader()
    idxs = [net.propose(lead.id, f"v{i}".encode()) for i in range(5)]
    net.tick(2)
    for id_ in net.ids:
        normal = [e.data for e in net.applied[id_] if e.kind is EntryKind.NORMAL]
        assert normal == [f"v{i}".encode() for i in range(5)]
        assert net.nodes[id_].status().applied_index == idxs[-1]


def test_leader_append_only_through_faults() -> None:
    # §5.3 Leader Append-Only: "a leader never overwrites or deletes entries in its log; it only
    # appends new entries."
    net = RaftTestNet(["a", "b", "c", "d", "e"], seed=11)
    net.drop(0.2)
    snapshots: dict[tuple[str, int], tuple] = {}
    for step in range(300):
        net.tick()
        if step % 7 == 0 and (lead := net.leader()) is not None:
            net.propose(lead.id, f"s{step}".encode())
        if step == 100:
            net.isolate("a")
        if step == 200:
            net.heal()
        for n in net.leaders():
            key = (n.id, n.term)
            now = n.log.slice(1, n.log.last_index())
            before = snapshots.get(key, ())
            assert now[: len(before)] == before, f"leader {key} rewrote its log"
            snapshots[key] = now
    assert len({term for _, term in snapshots}) >= 1
    net.check_log_matching()


def test_lagging_follower_catches_up_in_bounded_batches() -> None:
    net = RaftTestNet(["a", "b", "c"], seed=2, max_entries_per_append=3, max_inflight=2)
    net.tick_until(lambda: net.leader() is not None)
    lead = net.leader()
    lag = next(i for i in net.ids if i != lead.id)
    net.isolate(lag)
    for i in range(20):
        net.propose(lead.id, f"e{i}".encode())
    assert net.nodes[lag].log.last_index() < lead.log.last_index()
    net.heal()
    net.tick(3)
    assert net.nodes[lag].log.slice(1, 100) == lead.log.slice(1, 100)
    sizes = [len(m.entries) for m in net.sent if isinstance(m, RaftAppendEntries)]
    assert max(sizes) <= 3
