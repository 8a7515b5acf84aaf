"""The formation core: start-up, bootstrap_expect, change routing, handoff, retries and the cluster record."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.membership.formation import (
    CHANGE_RETRY,
    HANDOFF_POLL,
    JOIN_RETRY,
    MAX_HOPS,
    ClusterRecord,
    Forward,
    InEffect,
    Propose,
    Refuse,
    RetrySchedule,
    cluster_entry,
    expect_bootstrap,
    handoff_target,
    join_steps,
    plan_bootstrap,
    plan_start,
    route_change,
)
from rustyray.membership.messages import MembershipChange
from rustyray.membership.raft.messages import EntryKind, RaftConfChange, RaftEntry, encode_conf_change
from rustyray.membership.swim.events import MemberInfo, MemberState

IDS = [f"node{i}" for i in range(1, 8)]


def info(node_id: str, state: MemberState = MemberState.ALIVE) -> MemberInfo:
    return MemberInfo(node_id, state, 1, f"{node_id}:7000", f"{node_id}:7001", {}, 0, 0.0)


# ------------------------------------------------------------------------------------ start-up


def test_a_restarted_node_rejoins_through_the_peers_it_knew():
    plan = plan_start("node1", {"node2": ["a:1", "a:2"], "node1": ["me:1", "me:2"]}, ["seed:7000"])
    assert plan.learn == {"node2": ("a:1", "a:2")}  # never itself
    assert plan.swim_seeds == ["node1", "node2"] and not plan.join_raft


def test_a_new_node_joins_through_its_seeds_and_asks_raft():
    plan = plan_start("node1", {}, ["h1:7000", "h2:7000"])
    assert plan.learn == {} and plan.swim_seeds == ["seed:h1:7000", "seed:h2:7000"] and plan.join_raft


def test_a_lone_node_waits():
    assert plan_start("node1", {}, []) == plan_start("node1", {}, ())
    plan = plan_start("node1", {}, [])
    assert plan.swim_seeds == [] and not plan.join_raft


# ------------------------------------------------------------------------------------ bootstrap


def test_plan_bootstrap_learns_the_others_and_votes_everyone():
    members = {"node1": ["t1", "q1"], "node2": ["t2", "q2"], "node3": ["t3", ""]}
    plan = plan_bootstrap("node2", members)
    assert plan.learn == {"node1": ("t1", "q1"), "node3": ("t3", "")}
    assert sorted(plan.voters) == ["node1", "node2", "node3"] and plan.swim_seeds == ["node1", "node3"]


def test_expect_bootstrap_waits_for_enough_alive_members():
    members = [info("node1"), info("node2"), info("node3", MemberState.SUSPECT)]
    assert expect_bootstrap("node1", 3, members) is None  # a Suspect member does not count
    assert expect_bootstrap("node1", 0, members) is None  # off
    assert expect_bootstrap("node1", 2, members) == {"node1": ["node1:7000", "node1:7001"],
                                                     "node2": ["node2:7000", "node2:7001"]}
    assert expect_bootstrap("node2", 2, members) is None  # not the lowest id


@settings(max_examples=200, deadline=None)
@given(states=st.dictionaries(st.sampled_from(IDS), st.sampled_from(list(MemberState)), min_size=1),
       expect=st.integers(min_value=1, max_value=len(IDS)))
def test_at_most_one_node_of_a_shared_view_bootstraps(states, expect):
    """Every node that sees the same view decides alike: one bootstraps (the lowest Alive id), or none does."""
    members = [info(n, s) for n, s in sorted(states.items())]
    alive = sorted(n for n, s in states.items() if s is MemberState.ALIVE)
    deciders = {n: t for n in states if (t := expect_bootstrap(n, expect, members)) is not None}
    if len(alive) >= expect:
        assert list(deciders) == [alive[0]] and sorted(deciders[alive[0]]) == alive
    else:
        assert deciders == {}


# ------------------------------------------------------------------------------------ changes


def route(msg, *, started=True, is_leader=True, leader="node1", voters=("node1", "node2", "node3")):
    return route_change(msg, started=started, is_leader=is_leader, leader=leader, voters=voters)


def test_route_change_table():
    add4 = MembershipChange(op="add", node_id="node4", tcp_address="t4", quic_address="q4")
    assert route(add4, started=False) == Refuse("this node has no cluster configuration yet")
    assert route(add4, is_leader=False, leader=None) == Refuse("no Raft leader at the moment; retry")
    assert route(add4) == Propose("add", "node4", ("t4", "q4"))
    assert route(MembershipChange(op="add", node_id="node4")) == Propose("add", "node4", None)
    assert route(MembershipChange(op="add", node_id="node2")) == InEffect()
    assert route(MembershipChange(op="remove", node_id="node9")) == InEffect()
    assert route(MembershipChange(op="remove", node_id="node3")) == Propose("remove", "node3", None)
    fwd = route(add4, is_leader=False, leader="node2")
    assert fwd == Forward("node2", MembershipChange(op="add", node_id="node4", tcp_address="t4", quic_address="q4",
                                                    hops=1))
    assert Refuse("x").result().ok is False and Refuse("x").result().error == "x"


def test_a_node_without_raft_state_first_retires_a_voter_of_its_name_then_joins_fresh():
    steps = join_steps("node3", "t3", "q3", has_raft_state=False)
    assert [(m.op, m.node_id) for m in steps] == [("remove", "node3"), ("add", "node3")]
    assert (steps[1].tcp_address, steps[1].quic_address) == ("t3", "q3")
    # a member that lost its state (still a voter): the leader removes it, then adds it back as new
    voters = ["node1", "node2", "node3"]
    assert route_change(steps[0], started=True, is_leader=True, leader="node1", voters=voters) == \
        Propose("remove", "node3", None)
    voters.remove("node3")
    assert route_change(steps[1], started=True, is_leader=True, leader="node1", voters=voters) == \
        Propose("add", "node3", ("t3", "q3"))
    # a brand-new node: nothing to retire, the removal is already in effect
    assert route_change(steps[0], started=True, is_leader=True, leader="node1", voters=voters) == InEffect()
    # a node that kept its log asks only to be added
    assert [m.op for m in join_steps("node3", "t3", "q3", has_raft_state=True)] == ["add"]


def test_forwarding_between_confused_followers_ends_within_max_hops():
    """Two followers that each think the other leads stop forwarding after MAX_HOPS hops."""
    msg, at, hops = MembershipChange(op="add", node_id="node9"), "node1", 0
    other = {"node1": "node2", "node2": "node1"}
    while True:
        decision = route(msg, is_leader=False, leader=other[at])
        if isinstance(decision, Refuse):
            break
        assert isinstance(decision, Forward)
        msg, at, hops = decision.change, decision.leader, hops + 1
    assert hops == MAX_HOPS


def test_handoff_goes_to_the_first_other_alive_voter():
    state = {"node1": MemberState.ALIVE, "node2": MemberState.SUSPECT, "node3": MemberState.ALIVE}
    assert handoff_target("node1", ["node1", "node2", "node3"], state.get) == "node3"
    assert handoff_target("node1", ["node1", "node2"], state.get) is None
    assert handoff_target("node1", ["node1", "node4"], state.get) is None  # unknown to SWIM


def test_retry_schedules():
    assert list(CHANGE_RETRY.pauses()) == [0.1] * 50
    join = list(JOIN_RETRY.pauses())
    assert len(join) == 120 and join[:3] == pytest.approx([0.2, 0.4, 0.6]) and join[9:] == [2.0] * 111
    assert list(HANDOFF_POLL.pauses()) == [0.05] * 40
    assert list(RetrySchedule(attempts=0, first_s=1.0).pauses()) == []


# ------------------------------------------------------------------------------------ the record


def conf(index: int, op: str, node_id: str, members: tuple[str, ...]) -> RaftEntry:
    return RaftEntry(term=1, index=index, kind=EntryKind.CONF_CHANGE,
                     data=encode_conf_change(RaftConfChange(op=op, node_id=node_id, members=members)))


def test_the_record_folds_in_committed_entries():
    rec = ClusterRecord()
    assert rec.apply(conf(1, "bootstrap", "node1", ("node2", "node1"))) is False
    assert rec.apply(RaftEntry(term=1, index=2, kind=EntryKind.NOOP)) is False
    assert rec.apply(RaftEntry(term=1, index=3, data=b"not json")) is False
    assert rec.apply(RaftEntry(term=1, index=4, data=cluster_entry("prod", "cluster-1", 3))) is True
    assert rec.apply(RaftEntry(term=1, index=5, data=json.dumps({"type": "other", "x": 1}).encode())) is False
    assert (rec.name, rec.id) == ("prod", "cluster-1")
    assert list(rec.log) == [
        {"index": 1, "term": 1, "op": "bootstrap", "node_id": "node1", "members": ["node1", "node2"]},
        {"index": 4, "term": 1, "type": "cluster", "cluster_name": "prod", "cluster_id": "cluster-1",
         "replication_factor": 3},
        {"index": 5, "term": 1, "type": "other", "x": 1},
    ]
    result = rec.result(True, None, ["node1", "node2"])
    assert (result.ok, result.leader, result.members, result.cluster_name, result.cluster_id) == (
        True, "", ["node1", "node2"], "prod", "cluster-1")


def test_snapshot_restore_round_trip_and_adopt():
    rec = ClusterRecord()
    rec.name, rec.id = "prod", "cluster-1"
    snap = json.loads(json.dumps(rec.snapshot({"node2": ["t2", "q2"]})))
    back = ClusterRecord()
    assert back.restore(snap) == {"node2": ["t2", "q2"]} and (back.name, back.id) == ("prod", "cluster-1")
    assert ClusterRecord().restore({}) == {}
    back.adopt("", "cluster-2")  # an empty field keeps what the node had
    assert (back.name, back.id) == ("prod", "cluster-2")


cluster_entries = st.builds(lambda name, cid: ("cluster", name, cid), st.text(max_size=5), st.text(max_size=5))
other_entries = st.builds(lambda n: ("conf", n), st.integers(min_value=1, max_value=3))


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(st.one_of(cluster_entries, other_entries), max_size=40),
       log_size=st.integers(min_value=1, max_value=8))
def test_the_identity_is_the_last_cluster_entry_and_the_log_keeps_the_newest(entries, log_size):
    rec = ClusterRecord(log_size=log_size)
    for index, e in enumerate(entries, start=1):
        if e[0] == "cluster":
            assert rec.apply(RaftEntry(term=1, index=index, data=cluster_entry(e[1], e[2], None)))
        else:
            assert not rec.apply(conf(index, "add", f"node{e[1]}", tuple(IDS[: e[1]])))
    last = next((e for e in reversed(entries) if e[0] == "cluster"), None)
    assert (rec.name, rec.id) == ((None, None) if last is None else (last[1], last[2]))
    assert [x["index"] for x in rec.log] == list(range(1, len(entries) + 1))[-log_size:]


def _outcome(**kw):
    from rustyray.membership.formation import BootstrapOutcome

    base = {"cluster_name": "c", "cluster_id": "cluster-1", "members": ("n1", "n2", "n3"), "unreached": {},
            "leader": "n2", "record_error": None, "leader_wait_s": 15.0}
    return BootstrapOutcome(**{**base, **kw})


def test_a_bootstrap_is_reported_as_it_went() -> None:
    from rustyray.membership.formation import bootstrap_report

    ok = bootstrap_report(_outcome())
    assert (ok["bootstrapped"], ok["cluster_record"], ok["errors"]) == (True, "committed", [])
    assert ok["acknowledged"] == ["n1", "n2", "n3"] and ok["initial_leader"] == "n2"
    partial = bootstrap_report(_outcome(unreached={"n3": "timed out"}))
    assert partial["bootstrapped"] and partial["unreached"] == ["n3"] and partial["acknowledged"] == ["n1", "n2"]
    assert partial["errors"] == ["n3 did not acknowledge the bootstrap: timed out"]
    leaderless = bootstrap_report(_outcome(leader=None, unreached={"n2": "x", "n3": "y"}))
    assert (leaderless["bootstrapped"], leaderless["cluster_record"]) == (False, "not_committed")
    assert "no Raft leader within 15 s" in leaderless["errors"][-1]
    unrecorded = bootstrap_report(_outcome(record_error="leadership moved to n3"))
    assert (unrecorded["bootstrapped"], unrecorded["cluster_record"]) == (False, "not_committed")
    assert unrecorded["errors"] == ["the cluster record was not committed: leadership moved to n3"]
