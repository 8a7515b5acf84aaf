"""Group commit in the core: proposals between two Readys share one append stream per follower,
a leader's appends may go out before its own fsync (``Ready.early``) and still never commit on
its unpersisted copy, and ``RaftLog.append`` takes whole batches."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from raft_testnet import RaftTestNet

from rustyray.membership.raft import (
    RaftAppendEntries,
    RaftAppendResponse,
    RaftEntry,
    RaftHeartbeat,
    RaftNode,
)
from rustyray.membership.raft.log import RaftLog

IDS = ["a", "b", "c"]


def _quiet_leader(net: RaftTestNet) -> RaftNode:
    net.tick_until(lambda: net.leader() is not None)
    net.deliver()
    lead = net.leader()
    assert lead is not None and not lead.has_ready()
    return lead


def _appends(rd_messages: tuple, to: str) -> list[RaftAppendEntries]:
    return [m for m in rd_messages if isinstance(m, RaftAppendEntries) and m.to_id == to]


def test_proposals_before_a_ready_share_one_append_per_follower() -> None:
    net = RaftTestNet(IDS, seed=1)
    lead = _quiet_leader(net)
    first = lead.log.last_index() + 1
    for k in range(10):
        lead.propose(b"p%d" % k)
    rd = lead.ready()
    for to in IDS:
        if to == lead.id:
            continue
        (app,) = _appends(rd.messages, to)
        assert [e.index for e in app.entries] == list(range(first, first + 10))
    assert len(rd.entries) == 10  # one fsync for all ten


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), max_entries=st.integers(1, 64), max_inflight=st.integers(1, 8),
       seed=st.integers(0, 1000))
def test_batches_respect_message_size_and_inflight_window(n: int, max_entries: int, max_inflight: int,
                                                          seed: int) -> None:
    net = RaftTestNet(IDS, seed=seed, max_entries_per_append=max_entries, max_inflight=max_inflight)
    lead = _quiet_leader(net)
    first = lead.log.last_index() + 1
    for k in range(n):
        lead.propose(b"x%d" % k)
    rd = lead.ready()
    for to in IDS:
        if to == lead.id:
            continue
        apps = _appends(rd.messages, to)
        assert len(apps) == min(math.ceil(n / max_entries), max_inflight)
        sent = [e.index for a in apps for e in a.entries]
        assert sent == list(range(first, first + len(sent)))  # in order, no gap, no repeat
        assert all(1 <= len(a.entries) <= max_entries for a in apps)
    # Hand the Ready back to the net and run to quiescence: everything commits everywhere.
    net.storages[lead.id].save(rd)
    for m in rd.messages:
        net.queue.append(m)
    lead.advance(rd)
    net.process(lead.id)
    net.deliver()
    net.tick(3)
    last = first + n - 1
    assert all(node.log.commit >= last for node in net.nodes.values())
    assert [e.data for e in net.applied[lead.id][first - 1:last]] == [b"x%d" % k for k in range(n)]


def test_leader_appends_are_early_and_acks_are_not() -> None:
    net = RaftTestNet(IDS, seed=2)
    lead = _quiet_leader(net)
    lead.propose(b"v")
    rd = lead.ready()
    assert rd.early == len(rd.messages) > 0
    assert all(isinstance(m, (RaftAppendEntries, RaftHeartbeat)) for m in rd.messages[:rd.early])
    follower = net.nodes[rd.messages[0].to_id]
    follower.step(rd.messages[0])
    frd = follower.ready()
    assert frd.early == 0 and any(isinstance(m, RaftAppendResponse) for m in frd.messages)


def test_unpersisted_leader_copy_does_not_count_toward_commit() -> None:
    net = RaftTestNet(["a", "b", "c", "d", "e"], seed=3)  # quorum 3: the leader plus two followers
    lead = _quiet_leader(net)
    idx = lead.propose(b"v")
    rd = lead.ready()  # entries not yet on the leader's disk
    acks = []
    for m in rd.messages[:rd.early]:
        if not isinstance(m, RaftAppendEntries):
            continue
        f = net.nodes[m.to_id]
        f.step(m)
        frd = f.ready()
        acks += [a for a in frd.messages if isinstance(a, RaftAppendResponse)]
        f.advance(frd)
        if len(acks) == 2:
            break
    for a in acks:
        lead.step(a)
    assert lead.log.commit < idx, "two followers are not a quorum of five without the leader's own fsync"
    lead.advance(rd)  # now the leader's copy is on disk: three of five
    assert lead.log.commit >= idx


def test_commit_is_announced_once_per_ready() -> None:
    net = RaftTestNet(IDS, seed=4)
    lead = _quiet_leader(net)
    idx = lead.propose(b"v")
    rd = lead.ready()
    lead.advance(rd)
    for m in rd.messages:
        f = net.nodes[m.to_id]
        f.step(m)
        frd = f.ready()
        f.advance(frd)
        for a in frd.messages:
            lead.step(a)
    assert lead.log.commit >= idx
    rd2 = lead.ready()
    for to in IDS:
        if to != lead.id:
            assert len(_appends(rd2.messages, to)) == 1  # one (empty) append carries the commit
            assert _appends(rd2.messages, to)[0].commit >= idx


def test_log_append_checks_batch_ends() -> None:
    log = RaftLog()
    log.append([RaftEntry(term=1, index=1), RaftEntry(term=1, index=2)])
    with pytest.raises(AssertionError):
        log.append([RaftEntry(term=1, index=4)])  # gap
    with pytest.raises(AssertionError):
        log.append([RaftEntry(term=1, index=3), RaftEntry(term=1, index=5)])  # not consecutive
    with pytest.raises(AssertionError):
        log.append([RaftEntry(term=0, index=3)])  # term goes down
    log.append([])
    assert log.last_index() == 2
