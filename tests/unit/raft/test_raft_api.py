"""Config, wire codec, the Ready/Advance contract and status shape (purity: tests/unit/test_sans_io_guard.py)."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.membership.raft import (
    EntryKind,
    HardState,
    RaftAppendEntries,
    RaftAppendResponse,
    RaftConfig,
    RaftEntry,
    RaftHeartbeat,
    RaftHeartbeatResponse,
    RaftNode,
    RaftTimeoutNow,
    RaftUsageError,
    RaftVoteRequest,
    RaftVoteResponse,
    Role,
    SoftState,
)
from rustyray.protocol.messages import decode_message, encode_message


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"id": ""}, "id"),
        ({"heartbeat_tick": 0}, "heartbeat_tick"),
        ({"election_tick": 1}, "election_tick"),
        ({"max_inflight": 0}, "max_inflight"),
        ({"max_entries_per_append": 0}, "max_entries_per_append"),
        ({"tick_interval": 0}, "tick_interval"),
    ],
)
def test_config_validate_names_field(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RaftConfig(**{"id": "a", **kw}).validate()


def test_config_presets() -> None:
    d = RaftConfig(id="a").validate()
    assert (d.election_tick, d.heartbeat_tick, d.pre_vote, d.check_quorum) == (10, 1, True, True)
    assert d.election_tick * d.tick_interval == pytest.approx(0.5)  # 500-1000 ms elections
    f = RaftConfig.fast("a").validate()
    assert f.election_tick * f.tick_interval == pytest.approx(0.15)  # 150-300 ms
    lan = RaftConfig.lan("a").validate()
    assert lan == replace(d, heartbeat_tick=2)  # etcd's 100 ms heartbeat, five per shortest election timeout
    assert lan.heartbeat_tick * lan.tick_interval == pytest.approx(0.1)
    with pytest.raises(ValueError):
        RaftNode.bootstrap(RaftConfig(id="a", election_tick=1), ["a"], random.Random())


entries = st.lists(st.builds(RaftEntry, term=st.integers(0, 2**40), index=st.integers(1, 2**40),
                             kind=st.sampled_from(EntryKind), data=st.binary(max_size=64)), max_size=4)
ids = st.text(min_size=1, max_size=12)
wire = st.one_of(
    st.builds(RaftVoteRequest, term=st.integers(0, 2**40), from_id=ids, to_id=ids,
              last_log_index=st.integers(0, 2**40), last_log_term=st.integers(0, 2**40),
              pre_vote=st.booleans(), transfer=st.booleans()),
    st.builds(RaftVoteResponse, term=st.integers(0, 9), from_id=ids, to_id=ids, granted=st.booleans(),
              pre_vote=st.booleans()),
    st.builds(RaftAppendEntries, term=st.integers(0, 9), from_id=ids, to_id=ids,
              prev_log_index=st.integers(0, 2**40), prev_log_term=st.integers(0, 9),
              entries=entries.map(tuple), commit=st.integers(0, 2**40)),
    st.builds(RaftAppendResponse, term=st.integers(0, 9), from_id=ids, to_id=ids, success=st.booleans(),
              index=st.integers(0, 2**40), reject_hint=st.integers(0, 99), reject_hint_term=st.integers(0, 9)),
    st.builds(RaftHeartbeat, term=st.integers(0, 9), from_id=ids, to_id=ids, commit=st.integers(0, 99)),
    st.builds(RaftHeartbeatResponse, term=st.integers(0, 9), from_id=ids, to_id=ids),
    st.builds(RaftTimeoutNow, term=st.integers(0, 9), from_id=ids, to_id=ids),
)


@settings(max_examples=150, deadline=None)
@given(wire)
def test_wire_messages_round_trip_through_the_shared_codec(msg) -> None:
    data = encode_message(msg)
    assert decode_message(data) == msg
    assert type(decode_message(data)).__name__.startswith("Raft")


def test_ready_contract() -> None:
    n = RaftNode.bootstrap(RaftConfig(id="a", pre_vote=False), ["a", "b", "c"], random.Random(0))
    rd = n.ready()
    assert rd.hard_state == HardState(term=1, vote=None, commit=1)  # bootstrap must be persisted
    assert [e.index for e in rd.entries] == [1] and rd.soft_state is None
    with pytest.raises(RaftUsageError):
        n.ready()
    assert not n.has_ready()
    n.advance(rd)
    with pytest.raises(RaftUsageError):
        n.advance(rd)
    assert not n.has_ready()
    n.campaign()
    rd = n.ready()
    assert rd.soft_state == SoftState(Role.CANDIDATE, None)
    assert rd.hard_state == HardState(term=2, vote="a", commit=1)
    assert rd.committed_entries == ()  # handed out once already
    n.advance(rd)
    # A step between ready() and advance() is allowed; its output waits for the next Ready.
    n.step(RaftVoteResponse(term=2, from_id="b", to_id="a", granted=True))
    rd = n.ready()
    n.step(RaftAppendResponse(term=2, from_id="b", to_id="a", success=True, index=2))
    assert rd.soft_state == SoftState(Role.LEADER, "a") and rd.hard_state is None
    assert [e.kind for e in rd.entries] == [EntryKind.NOOP]
    n.advance(rd)
    rd = n.ready()
    assert rd.hard_state == HardState(term=2, vote="a", commit=2)
    assert [e.kind for e in rd.committed_entries] == [EntryKind.NOOP]
    n.advance(rd)


def test_status_shape_matches_networking_031() -> None:
    n = RaftNode.bootstrap(RaftConfig(id="node1"), ["node3", "node1", "node2"], random.Random(0))
    n.campaign()
    s = n.status()
    assert s.role is Role.PRE_CANDIDATE and s.members == ["node1", "node2", "node3"]
    d = dict(s)
    assert {"state", "term", "leader", "members", "commit_index", "applied_index"} <= set(d)
    assert d["state"] == "PreCandidate" and d["members"] == ["node1", "node2", "node3"]
    assert s["commit_index"] == 1 and d["last_index"] == 1 and d["vote"] is None
    assert [r.value for r in Role] == ["Follower", "PreCandidate", "Candidate", "Leader"]


def test_joiner_never_campaigns() -> None:
    n = RaftNode.join(RaftConfig(id="new"), random.Random(0))
    for _ in range(100):
        n.tick()
    n.campaign()
    assert n.role is Role.FOLLOWER and not n.has_ready()
