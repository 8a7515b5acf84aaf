"""SWIM <-> the node: peer-table actions, anti-entropy repairs, read-outs, and the peer-event log."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.membership.event_log import EventLog
from rustyray.membership.swim.events import (
    MemberInfo,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    NodeSuspected,
    NodeUpdated,
)
from rustyray.membership.swim.messages import SwimAlive, SwimDead, SwimLeft, SwimSuspect
from rustyray.membership.swim_bridge import (
    EVENT_NAMES,
    ForgetPeer,
    LearnPeer,
    entries,
    joins_through,
    live_members,
    member_rows,
    peer_update,
    repair_update,
    state_counts,
)


def info(node_id: str, state: MemberState, incarnation: int = 1) -> MemberInfo:
    return MemberInfo(node_id, state, incarnation, f"{node_id}:7000", f"{node_id}:7001", {}, 2, 0.0)


def test_peer_updates():
    assert peer_update(NodeJoined("n2", 0.0, 3, "t", "q")) == LearnPeer("n2", "t", "q", 3)
    assert peer_update(NodeRecovered("n2", 0.0, 4, "t", "")) == LearnPeer("n2", "t", "", 4)
    assert peer_update(NodeUpdated("n2", 0.0, 5, "t2", "q2")) == LearnPeer("n2", "t2", "q2", 5)
    assert peer_update(NodeJoined("n2", 0.0, 3)) is None  # no address to dial
    assert peer_update(NodeLeft("n2", 0.0, 3)) == ForgetPeer("n2")
    assert peer_update(NodeFailed("n2", 0.0, 3)) is None  # a Dead member stays: the node keeps dialling it
    assert peer_update(NodeSuspected("n2", 0.0, 3)) is None


def test_event_names_cover_every_event_but_updates():
    assert set(EVENT_NAMES.values()) == {"NodeJoined", "NodeRecovered", "NodeSuspected", "NodeFailed", "NodeLeft"}
    assert NodeUpdated not in EVENT_NAMES


def test_joins_through_an_unknown_learnt_or_connected_peer():
    assert joins_through("learned", None) and joins_through("connected", None)
    assert not joins_through("learned", info("n2", MemberState.ALIVE))
    assert not joins_through("disconnected", None)


def test_repair_updates():
    known = info("n2", MemberState.DEAD)
    assert repair_update("n1", "n2", 7, "Alive", known) == SwimAlive(node_id="n2", incarnation=7,
                                                                     tcp_address="n2:7000", quic_address="n2:7001")
    assert repair_update("n1", "n2", 7, "Alive", None) is None  # no addresses to claim
    assert repair_update("n1", "n2", 7, "Suspect", None) == SwimSuspect(node_id="n2", incarnation=7, from_id="n1")
    assert repair_update("n1", "n2", 7, "Dead", None) == SwimDead(node_id="n2", incarnation=7, from_id="n1")
    assert repair_update("n1", "n2", 7, "Left", None) == SwimLeft(node_id="n2", incarnation=7)
    assert repair_update("n1", "n2", 7, "Bogus", known) is None
    assert repair_update("n1", "n1", 7, "Dead", None) is None  # never about this node


def test_read_outs():
    members = [info("a", MemberState.ALIVE), info("b", MemberState.SUSPECT), info("c", MemberState.DEAD, 4),
               info("d", MemberState.LEFT)]
    assert live_members(reversed(members)) == ["a", "b"]
    assert state_counts(members) == {"Alive": 1, "Suspect": 1, "Dead": 1, "Left": 1}
    assert state_counts([]) == {"Alive": 0, "Suspect": 0, "Dead": 0, "Left": 0}
    assert entries(members)["c"] == (4, "Dead")
    rows = member_rows(members, ["a", "c"])
    assert [r["voter"] for r in rows] == [True, False, True, False]
    assert rows[0] == {"node": "a", "state": "Alive", "incarnation": 1, "address": "a:7000",
                       "quic_address": "a:7001", "suspect_count": 2, "voter": True}


# ------------------------------------------------------------------------------------ the event log


def test_event_log_shape():
    log = EventLog("node1", size=3)
    assert log.seq == 0 and log.after(0) == []
    event = log.append("NodeJoined", "node2", 0.0)
    assert event == {"seq": 1, "eventType": "NodeJoined", "nodeId": "node2", "timestamp": "1970-01-01T00:00:00Z",
                     "observer": "node1"}


@settings(max_examples=100, deadline=None)
@given(n=st.integers(min_value=0, max_value=30), size=st.integers(min_value=1, max_value=10),
       cursor=st.integers(min_value=-1, max_value=35))
def test_a_cursor_reads_exactly_the_newer_events_the_ring_still_holds(n, size, cursor):
    log = EventLog("o", size=size)
    for i in range(n):
        log.append("NodeJoined", f"n{i}", float(i))
    got = [e["seq"] for e in log.after(cursor)]
    assert log.seq == n
    assert got == [s for s in range(max(1, n - size + 1), n + 1) if s > cursor]
    assert log.after(log.seq) == []
