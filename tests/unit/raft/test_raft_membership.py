"""Single-server membership changes (Ongaro's thesis §4.1-§4.2) and leadership transfer (§3.10)."""

from __future__ import annotations

import random

import pytest
from raft_testnet import RaftTestNet

from rustyray.membership.raft import (
    ConfChangeRejected,
    EntryKind,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RaftNode,
    RaftTimeoutNow,
    RaftVoteResponse,
    Role,
    TransferRejected,
    decode_conf_change,
)


def _net(ids=("a", "b", "c"), seed: int = 1) -> tuple[RaftTestNet, RaftNode]:
    net = RaftTestNet(list(ids), seed=seed)
    net.campaign(ids[0])
    net.tick(2)
    lead = net.leader()
    assert lead is not None and lead.id == ids[0]
    return net, lead


def test_add_server_joins_and_counts_in_quorum() -> None:
    # Thesis §4.1: "the leader ... appends Cnew to its log ... a server always uses the latest
    # configuration in its log, regardless of whether the entry is committed."
    net, lead = _net()
    net.add_joiner("d")
    assert not net.nodes["d"]._promotable()
    idx = lead.propose_conf_change("add", "d")
    assert lead.status().members == ["a", "b", "c", "d"], "used as soon as appended"
    net.process("a")
    net.deliver()
    net.tick(3)
    for id_ in "abcd":
        assert net.nodes[id_].status().members == ["a", "b", "c", "d"]
        assert net.nodes[id_].log.commit >= idx
    cc = decode_conf_change(lead.log.entry(idx).data)
    assert (cc.op, cc.node_id) == ("add", "d")
    # d now counts: with b and c down, a and d are only 2 of 4, so nothing commits.
    net.crash("b")
    net.crash("c")
    before = lead.log.commit
    net.propose("a", b"x")
    net.tick(2)
    assert lead.log.commit == before
    net.restart("b")
    net.tick(3)
    assert lead.log.commit > before


def test_one_change_at_a_time() -> None:
    # Thesis §4.1: "the leader ... must not begin another membership change until the previous
    # change's entry has committed".
    net, lead = _net()
    net.add_joiner("d")
    net.add_joiner("e")
    net.isolate("b")
    net.isolate("c")  # the add of d cannot commit (needs 3 of 4)
    lead.propose_conf_change("add", "d")
    with pytest.raises(ConfChangeRejected, match="not committed"):
        lead.propose_conf_change("add", "e")
    net.process("a")
    net.heal()
    net.tick(3)
    lead.propose_conf_change("add", "e")  # allowed once the first committed
    net.process("a")
    net.tick(3)
    assert net.nodes["e"].status().members == ["a", "b", "c", "d", "e"]


def test_conf_change_waits_for_leader_to_commit_own_term_entry() -> None:
    # Ongaro, raft-dev 2015 ("bug in single-server membership changes"): a new leader may not
    # append a configuration entry until it has committed an entry of its own term.
    n = RaftNode.bootstrap(RaftConfig(id="a", pre_vote=False), ["a", "b", "c"], random.Random(0))
    n.campaign()
    n.step(RaftVoteResponse(term=2, from_id="b", to_id="a", granted=True))
    assert n.role is Role.LEADER
    with pytest.raises(ConfChangeRejected, match="its term"):
        n.propose_conf_change("add", "d")


@pytest.mark.parametrize(
    ("op", "node", "match"),
    [("add", "b", "already"), ("remove", "zz", "not a member"), ("swap", "b", "op must")],
)
def test_invalid_conf_changes_rejected(op: str, node: str, match: str) -> None:
    _, lead = _net()
    with pytest.raises(ConfChangeRejected, match=match):
        lead.propose_conf_change(op, node)


def test_followers_cannot_propose() -> None:
    net, _ = _net()
    with pytest.raises(NotLeader) as exc:
        net.nodes["b"].propose(b"x")
    assert exc.value.leader_id == "a"
    with pytest.raises(NotLeader):
        net.nodes["b"].propose_conf_change("remove", "c")


def test_remove_follower_shrinks_quorum() -> None:
    net, lead = _net(("a", "b", "c", "d"))
    idx = lead.propose_conf_change("remove", "d")
    net.process("a")
    net.deliver()
    net.tick(2)
    assert lead.log.commit >= idx and lead.status().members == ["a", "b", "c"]
    net.crash("d")
    net.crash("c")  # a and b are 2 of 3: still a majority
    i = net.propose("a", b"after")
    net.tick(2)
    assert lead.log.commit >= i


def test_removed_follower_does_not_disrupt_cluster() -> None:
    # Thesis §4.2.3: removed servers must not disrupt the cluster; pre-vote and the leader
    # lease keep the remaining leader in place even though d never learns it was removed.
    net, lead = _net(("a", "b", "c", "d"))
    term = lead.term
    lead.propose_conf_change("remove", "d")
    net.process("a")
    net.isolate("d")
    net.deliver()
    net.heal()
    net.tick(200)
    assert net.leader() is lead and lead.term == term


def test_removing_the_leader_steps_it_down_after_commit() -> None:
    # Thesis §4.2.2: the leader "steps down ... once the Cnew entry is committed", managing the
    # cluster meanwhile without counting itself in majorities.
    net, lead = _net()
    idx = lead.propose_conf_change("remove", "a")
    assert lead.role is Role.LEADER
    with pytest.raises(ProposalDropped):
        lead.propose(b"x")
    net.process("a")
    net.deliver()
    assert lead.role is Role.FOLLOWER
    assert net.nodes["b"].log.entry(idx).kind is EntryKind.CONF_CHANGE
    # It handed off with TimeoutNow, so a successor is elected without waiting for a timeout.
    assert any(isinstance(m, RaftTimeoutNow) and m.from_id == "a" for m in net.sent)
    new = net.leader()
    assert new is not None and new.id in ("b", "c") and new.status().members == ["b", "c"]
    net.tick(200)
    assert not lead._promotable() and lead.role is Role.FOLLOWER
    i = net.propose(new.id, b"after")
    net.tick(2)
    assert net.nodes["b"].log.commit >= i and net.nodes["c"].log.commit >= i


def test_transfer_leadership_to_up_to_date_follower() -> None:
    # Thesis §3.10: "the prior leader sends a TimeoutNow request to the target server ... the
    # target server ... starts a new election".
    net, lead = _net()
    term = lead.term
    lead.transfer_leadership("c")
    net.process("a")
    net.deliver()
    assert net.leader().id == "c" and net.nodes["c"].term == term + 1
    assert lead.role is Role.FOLLOWER and lead.leader == "c"


def test_transfer_to_lagging_follower_catches_it_up_first() -> None:
    # Thesis §3.10 step 2: "The prior leader transfers its log entries to the target server."
    net, lead = _net()
    net.isolate("c")
    for i in range(5):
        net.propose("a", f"x{i}".encode())
    net.heal()
    lead.transfer_leadership("c")
    with pytest.raises(ProposalDropped):
        lead.propose(b"during")
    net.process("a")
    net.deliver()
    net.tick(2)
    c = net.nodes["c"]
    assert c.role is Role.LEADER
    assert all(e.data != b"during" for e in c.log.slice(1, c.log.last_index()))
    assert [e.data for e in c.log.slice(1, c.log.last_index()) if e.kind is EntryKind.NORMAL] == [
        f"x{i}".encode() for i in range(5)]


def test_transfer_to_unreachable_target_is_abandoned() -> None:
    net, lead = _net()
    net.isolate("c")
    lead.transfer_leadership("c")
    with pytest.raises(ProposalDropped):
        lead.propose(b"x")
    net.tick(10)
    assert lead.role is Role.LEADER
    net.propose("a", b"x")  # accepted again after one election timeout


def test_transfer_to_non_member_rejected() -> None:
    _, lead = _net()
    with pytest.raises(TransferRejected):
        lead.transfer_leadership("zz")
