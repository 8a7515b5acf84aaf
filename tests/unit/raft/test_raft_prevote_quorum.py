"""Pre-vote, check-quorum and the leader lease (Ongaro's thesis §9.6 and §6.2)."""

from __future__ import annotations

import random

import pytest
from raft_testnet import RaftTestNet

from rustyray.membership.raft import RaftConfig, RaftNode, RaftVoteRequest, RaftVoteResponse, Role

IDS = ["a", "b", "c", "d", "e"]


def _stable_net(pre_vote: bool, check_quorum: bool, seed: int = 5) -> tuple[RaftTestNet, RaftNode]:
    net = RaftTestNet(IDS, seed=seed, pre_vote=pre_vote, check_quorum=check_quorum)
    net.tick_until(lambda: net.leader() is not None, max_ticks=200)
    net.tick(2)
    return net, net.leader()


def test_prevote_partitioned_node_does_not_disrupt_on_rejoin() -> None:
    # Thesis §9.6: "a server that has been partitioned ... will not be able to increment its
    # term, since it cannot receive permission from a majority", so on rejoining it does not
    # force the working leader to step down.
    net, leader = _stable_net(pre_vote=True, check_quorum=True)
    term = leader.term
    lonely = next(i for i in IDS if i != leader.id)
    net.isolate(lonely)
    net.tick(100)  # ~5-10 election timeouts alone
    assert net.nodes[lonely].term == term, "pre-vote must keep the term of a partitioned node"
    assert net.nodes[lonely].role is Role.PRE_CANDIDATE
    net.heal()
    net.tick(20)
    assert net.leader() is leader and leader.term == term
    assert net.nodes[lonely].role is Role.FOLLOWER and net.nodes[lonely].leader == leader.id


def test_without_prevote_rejoining_node_disrupts_leader() -> None:
    # The failure pre-vote prevents (so the test above can fail): the isolated node inflates
    # its term and the leader must step down when it hears of it.
    net, leader = _stable_net(pre_vote=False, check_quorum=False)
    term = leader.term
    lonely = next(i for i in IDS if i != leader.id)
    net.isolate(lonely)
    net.tick(100)
    assert net.nodes[lonely].term > term + 3
    net.heal()
    net.tick(30)
    assert net.leader() is not None and net.leader().term > term + 3


def test_check_quorum_leader_steps_down_when_cut_off() -> None:
    # Thesis §6.2: "a leader steps down if an election timeout elapses without a successful
    # round of heartbeats to a majority of its cluster".
    net, leader = _stable_net(pre_vote=True, check_quorum=True)
    net.isolate(leader.id)
    # Checks run every election_tick (10); the first may still see acks from before the cut,
    # so the leader is gone within two periods.
    net.tick(20, ids=[leader.id])
    assert leader.role is Role.FOLLOWER and leader.leader is None


def test_without_check_quorum_cut_off_leader_keeps_leading() -> None:
    net, leader = _stable_net(pre_vote=True, check_quorum=False)
    net.isolate(leader.id)
    net.tick(50, ids=[leader.id])
    assert leader.role is Role.LEADER


def test_majority_side_elects_and_old_leader_rejoins_as_follower() -> None:
    net, leader = _stable_net(pre_vote=True, check_quorum=True)
    net.isolate(leader.id)
    net.tick_until(lambda: (lead := net.leader()) is not None and lead is not leader and lead.term > leader.term,
                   max_ticks=200)
    new = net.leader()
    net.heal()
    net.tick(3)
    assert leader.role is Role.FOLLOWER and leader.leader == new.id and leader.term == new.term


@pytest.mark.parametrize("pre_vote", [False, True])
def test_leader_lease_follower_ignores_votes_while_leader_is_fresh(pre_vote: bool) -> None:
    # Thesis §4.2.3 / §6.2: "if a server receives a RequestVote request within the minimum
    # election timeout of hearing from a current leader, it does not update its term or grant
    # its vote".
    net, leader = _stable_net(pre_vote=True, check_quorum=True)
    f = next(n for n in net.nodes.values() if n is not leader)
    term = f.term
    intruder = next(i for i in IDS if i not in (leader.id, f.id))
    f.step(RaftVoteRequest(term=term + 1, from_id=intruder, to_id=f.id, last_log_index=100,
                           last_log_term=term, pre_vote=pre_vote))
    assert not f.has_ready() and f.term == term and f.leader == leader.id
    # After a full election timeout without the leader, the same request is answered.
    net.isolate(leader.id)
    for _ in range(10):
        f.tick()
        net.process(f.id)
    net.queue.clear()
    f.step(RaftVoteRequest(term=term + 1, from_id=intruder, to_id=f.id, last_log_index=100,
                           last_log_term=term, pre_vote=pre_vote))
    rd = f.ready()
    assert [m.granted for m in rd.messages if isinstance(m, RaftVoteResponse)] == [True]
    assert f.term == (term if pre_vote else term + 1)


def test_prevote_grant_does_not_change_voter_term_or_vote() -> None:
    n = RaftNode.bootstrap(RaftConfig(id="a"), ["a", "b", "c"], random.Random(0))
    n.step(RaftVoteRequest(term=2, from_id="b", to_id="a", last_log_index=1, last_log_term=1, pre_vote=True))
    rd = n.ready()
    (resp,) = rd.messages
    assert resp.granted and resp.pre_vote and resp.term == 2
    assert (n.term, n.vote) == (1, None)


def test_precandidate_only_bumps_term_after_winning_prevote() -> None:
    n = RaftNode.bootstrap(RaftConfig(id="a"), ["a", "b", "c"], random.Random(0))
    n.campaign()
    assert n.role is Role.PRE_CANDIDATE and n.term == 1 and n.vote is None
    rd = n.ready()
    assert sorted(m.to_id for m in rd.messages) == ["b", "c"]
    assert all(isinstance(m, RaftVoteRequest) and m.pre_vote and m.term == 2 for m in rd.messages)
    n.advance(rd)
    n.step(RaftVoteResponse(term=2, from_id="b", to_id="a", granted=True, pre_vote=True))
    assert n.role is Role.CANDIDATE and n.term == 2 and n.vote == "a"

