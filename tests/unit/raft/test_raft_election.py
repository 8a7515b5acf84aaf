"""Leader election, tied to sentences of Ongaro & Ousterhout 2014 (§5.1, §5.2, §5.4.1)."""

from __future__ import annotations

import random

import pytest
from raft_testnet import RaftTestNet

from rustyray.membership.raft import (
    EntryKind,
    HardState,
    RaftAppendEntries,
    RaftConfig,
    RaftEntry,
    RaftNode,
    RaftVoteRequest,
    RaftVoteResponse,
    Role,
)


def _node(id_: str = "a", members=("a", "b", "c"), **kw) -> RaftNode:
    cfg = RaftConfig(id=id_, **{"pre_vote": False, "check_quorum": False, **kw})
    return RaftNode.bootstrap(cfg, list(members), random.Random(7))


def _drain(n: RaftNode) -> list:
    out = []
    while n.has_ready():
        rd = n.ready()
        out.extend(rd.messages)
        n.advance(rd)
    return out


def _tick_until_role(n: RaftNode, role: Role, limit: int = 100) -> int:
    for i in range(1, limit + 1):
        n.tick()
        if n.role is role:
            return i
    raise AssertionError(f"{n} never became {role}")


def test_follower_times_out_and_starts_election() -> None:
    # §5.2 "If a follower receives no communication over a period of time called the election
    # timeout, then it assumes there is no viable leader and begins an election to choose a new
    # leader. To begin an election, a follower increments its current term and transitions to
    # candidate state. It then votes for itself and issues RequestVote RPCs in parallel."
    n = _node()
    _drain(n)
    ticks = _tick_until_role(n, Role.CANDIDATE)
    assert 10 <= ticks < 20
    assert n.term == 2 and n.vote == "a"
    msgs = _drain(n)
    assert sorted(m.to_id for m in msgs) == ["b", "c"]
    assert all(isinstance(m, RaftVoteRequest) and m.term == 2 and not m.pre_vote for m in msgs)


def test_randomized_election_timeouts_differ() -> None:
    # §5.2 "Raft uses randomized election timeouts ... chosen randomly from a fixed interval".
    cfg = RaftConfig(id="a", election_tick=10)
    rng = random.Random(1)
    seen = {cfg.randomized_election_timeout(rng) for _ in range(500)}
    assert min(seen) == 10 and max(seen) == 19 and len(seen) == 10


def test_vote_first_come_first_served() -> None:
    # §5.2 "Each server will vote for at most one candidate in a given term, on a
    # first-come-first-served basis."
    n = _node()
    _drain(n)
    n.step(RaftVoteRequest(term=2, from_id="b", to_id="a", last_log_index=1, last_log_term=1))
    n.step(RaftVoteRequest(term=2, from_id="c", to_id="a", last_log_index=1, last_log_term=1))
    n.step(RaftVoteRequest(term=2, from_id="b", to_id="a", last_log_index=1, last_log_term=1))
    rd = n.ready()
    assert [(m.to_id, m.granted) for m in rd.messages] == [("b", True), ("c", False), ("b", True)]
    assert rd.hard_state == HardState(term=2, vote="b", commit=1)


def test_candidate_wins_with_majority_and_appends_noop() -> None:
    # §5.2 "A candidate wins an election if it receives votes from a majority of the servers in
    # the full cluster for the same term." §8: the leader commits a blank no-op at term start.
    n = _node()
    _drain(n)
    n.campaign()
    assert n.role is Role.CANDIDATE
    n.step(RaftVoteResponse(term=2, from_id="b", to_id="a", granted=True))
    assert n.role is Role.LEADER and n.leader == "a"
    e = n.log.entry(n.log.last_index())
    assert (e.kind, e.term) == (EntryKind.NOOP, 2)
    appends = [m for m in _drain(n) if isinstance(m, RaftAppendEntries)]
    assert sorted(m.to_id for m in appends) == ["b", "c"]


def test_candidate_loses_with_majority_of_rejections() -> None:
    n = _node()
    _drain(n)
    n.campaign()
    n.step(RaftVoteResponse(term=2, from_id="b", to_id="a", granted=False))
    assert n.role is Role.CANDIDATE
    n.step(RaftVoteResponse(term=2, from_id="c", to_id="a", granted=False))
    assert n.role is Role.FOLLOWER and n.term == 2


def test_candidate_recognises_leader_of_same_term() -> None:
    # §5.2 "If the leader's term ... is at least as large as the candidate's current term, then
    # the candidate recognizes the leader as legitimate and returns to follower state."
    n = _node()
    _drain(n)
    n.campaign()
    n.step(RaftAppendEntries(term=2, from_id="b", to_id="a", prev_log_index=1, prev_log_term=1, commit=1))
    assert n.role is Role.FOLLOWER and n.leader == "b" and n.term == 2


@pytest.mark.parametrize("role", [Role.CANDIDATE, Role.LEADER])
def test_higher_term_reverts_to_follower(role: Role) -> None:
    # §5.1 "If a candidate or leader discovers that its term is out of date, it immediately
    # reverts to follower state."
    n = _node()
    _drain(n)
    n.campaign()
    if role is Role.LEADER:
        n.step(RaftVoteResponse(term=2, from_id="b", to_id="a", granted=True))
    assert n.role is role
    n.step(RaftAppendEntries(term=9, from_id="c", to_id="a", prev_log_index=1, prev_log_term=1))
    assert (n.role, n.term, n.leader) == (Role.FOLLOWER, 9, "c")


def test_stale_term_request_is_rejected() -> None:
    # §5.1 "If a server receives a request with a stale term number, it rejects the request."
    n = _node()
    _drain(n)
    n.step(RaftAppendEntries(term=5, from_id="b", to_id="a", prev_log_index=1, prev_log_term=1))
    _drain(n)
    n.step(RaftVoteRequest(term=3, from_id="c", to_id="a", last_log_index=9, last_log_term=9))
    assert not n.has_ready() and n.vote is None and n.leader == "b"


@pytest.mark.parametrize(
    ("cand_last_term", "cand_last_index", "granted"),
    [
        (1, 1, False),  # older last term
        (2, 1, False),  # same last term, shorter log
        (2, 2, True),  # identical
        (2, 5, True),  # same term, longer
        (3, 1, True),  # newer last term wins regardless of length
    ],
)
def test_vote_denied_to_less_up_to_date_log(cand_last_term: int, cand_last_index: int, granted: bool) -> None:
    # §5.4.1 "the voter denies its vote if its own log is more up-to-date than that of the
    # candidate ... If the logs have last entries with different terms, then the log with the
    # later term is more up-to-date. If the logs end with the same term, then whichever log is
    # longer is more up-to-date."
    n = _node()
    n.step(RaftAppendEntries(term=2, from_id="b", to_id="a", prev_log_index=1, prev_log_term=1,
                             entries=(RaftEntry(term=2, index=2),)))
    _drain(n)
    n.step(RaftVoteRequest(term=4, from_id="c", to_id="a", last_log_index=cand_last_index,
                           last_log_term=cand_last_term))
    (resp,) = _drain(n)
    assert isinstance(resp, RaftVoteResponse) and resp.granted is granted
    assert n.term == 4


@pytest.mark.parametrize("pre_vote", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_cluster_elects_exactly_one_leader(pre_vote: bool, seed: int) -> None:
    # §5.2 Election Safety: "at most one leader can be elected in a given term" (the net asserts
    # it on every role change); and a leader is eventually elected.
    net = RaftTestNet(["a", "b", "c", "d", "e"], seed=seed, pre_vote=pre_vote)
    net.tick_until(lambda: net.leader() is not None, max_ticks=200)
    leader = net.leader()
    net.tick(3)
    assert [n.id for n in net.nodes.values() if n.role is Role.LEADER] == [leader.id]
    assert all(n.leader == leader.id and n.term == leader.term for n in net.nodes.values())


def test_single_node_cluster_elects_itself() -> None:
    n = RaftNode.bootstrap(RaftConfig(id="solo"), ["solo"], random.Random(0))
    n.campaign()
    assert n.role is Role.LEADER
    _drain(n)
    assert n.log.commit == 2  # the no-op commits once it is persisted
