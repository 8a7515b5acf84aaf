"""SerfCore: Lamport clocks, event coalescing/ordering/dedup, queries, member tags."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.autodiscovery.errors import SerfError, SerfSizeLimitExceeded
from rustyray.autodiscovery.serf import (
    DeliverEvent,
    DeliverQuery,
    LamportClock,
    MemberChanged,
    MemberStatus,
    Rebroadcast,
    SendResponse,
    SerfConfig,
    SerfCore,
    SerfMemberUpdate,
    SerfQueryResponse,
    SerfUserEvent,
)
from rustyray.protocol.messages import decode_message, encode_message


def node(name: str, *, coalesce: float = 0.0, tags: dict[str, str] | None = None, **kw) -> SerfCore:
    cfg = SerfConfig(coalesce_period_s=coalesce, quiescent_period_s=coalesce, **kw)
    return SerfCore(cfg, node_name=name, addr="127.0.0.1", port=7000 + len(name), rng=random.Random(name), tags=tags)


def delivered(actions) -> list[SerfUserEvent]:
    return [a.event for a in actions if isinstance(a, DeliverEvent)]


def gossip(actions) -> list:
    return [a.message for a in actions if isinstance(a, Rebroadcast)]


# -- Lamport clocks


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 1000)), max_size=50))
def test_lamport_clock_is_monotone_and_passes_witnessed_times(ops: list[int | None]) -> None:
    c = LamportClock()
    for op in ops:
        before = c.time()
        if op is None:
            assert c.increment() == before + 1 == c.time()
        else:
            c.witness(op)
            assert c.time() >= before and c.time() > op


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["send", "deliver"]), st.integers(0, 2), st.integers(0, 2)), max_size=40))
def test_event_times_respect_happens_before(script: list[tuple[str, int, int]]) -> None:
    """An event sent after a node saw event e has a larger Lamport time (Lamport 1978, IR1/IR2)."""
    nodes = [node(f"n{i}") for i in range(3)]
    seen_max = [-1, -1, -1]  # largest ltime each node has sent or seen
    inbox: list[list[SerfUserEvent]] = [[], [], []]
    for n, (op, i, j) in enumerate(script):
        if op == "send":
            res, actions = nodes[i].user_event(f"e{n}", b"", 0.0)
            assert res["event_sent"] is True and res["ltime"] > seen_max[i]
            seen_max[i] = res["ltime"]
            for k in range(3):
                if k != i:
                    inbox[k].extend(gossip(actions))
        elif inbox[j]:
            msg = inbox[j].pop(0)
            nodes[j].receive(msg, 0.0)
            seen_max[j] = max(seen_max[j], msg.ltime)


# -- events


def test_local_event_is_delivered_and_gossiped_once() -> None:
    a, b = node("a"), node("b")
    res, actions = a.user_event("deploy", b"v1", 0.0)
    assert res == {"event_sent": True, "ltime": 0}
    [msg] = gossip(actions)
    assert delivered(actions) == [msg]
    wire = decode_message(encode_message(msg))
    assert wire == msg
    first = b.receive(wire, 0.0)
    assert delivered(first) == [msg] and gossip(first) == [msg]
    assert b.receive(wire, 0.0) == []  # duplicate: neither delivered nor gossiped again
    assert b.stats["events_duplicate"] == 1
    assert b.event_clock.time() == 1
    assert a.user_event("deploy", b"v2", 0.0)[0]["ltime"] == 1


def test_event_older_than_the_buffer_is_dropped() -> None:
    b = node("b", event_buffer=4)
    b.receive(SerfUserEvent(ltime=100, name="x"), 0.0)
    assert b.receive(SerfUserEvent(ltime=10, name="y"), 0.0) == []
    assert b.stats["events_too_old"] == 1
    assert delivered(b.receive(SerfUserEvent(ltime=99, name="y"), 0.0))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 30), st.booleans()),
        min_size=1,
        max_size=25,
        unique_by=lambda t: (t[0], t[1]),
    ),
    st.randoms(use_true_random=False),
)
def test_window_delivers_in_lamport_order_coalesced_and_deduplicated(events, rnd: random.Random) -> None:
    msgs = [SerfUserEvent(ltime=lt, name=nm, payload=f"{nm}{lt}".encode(), coalesce=cc) for nm, lt, cc in events]
    arrivals = msgs + msgs[: len(msgs) // 2]  # some duplicates
    rnd.shuffle(arrivals)
    core = node("z", coalesce=1.0)
    for i, m in enumerate(arrivals):
        assert delivered(core.receive(m, i * 0.001)) == []  # held in the window
    assert core.tick(0.5) == []
    out = delivered(core.tick(core.next_deadline()))
    assert [e.ltime for e in out] == sorted(e.ltime for e in out)
    assert len(out) == len(set(out))
    newest = {}
    for m in msgs:
        if m.coalesce:
            newest[m.name] = max(newest.get(m.name, -1), m.ltime)
    expected = {m for m in msgs if not m.coalesce or m.ltime == newest[m.name]}
    assert set(out) == expected
    assert core.tick(100.0) == []  # window emptied


def test_quiescent_period_flushes_early() -> None:
    core = SerfCore(
        SerfConfig(coalesce_period_s=10.0, quiescent_period_s=0.5),
        node_name="q",
        addr="h",
        port=1,
        rng=random.Random(0),
    )
    core.receive(SerfUserEvent(ltime=2, name="x"), 0.0)
    core.receive(SerfUserEvent(ltime=1, name="y"), 0.3)
    assert core.next_deadline() == pytest.approx(0.8)
    assert [e.name for e in delivered(core.tick(0.8))] == ["y", "x"]


def test_event_size_limit() -> None:
    with pytest.raises(SerfSizeLimitExceeded):
        node("a").user_event("big", b"x" * 600, 0.0)


# -- queries


def test_query_collects_acks_and_responses_until_timeout() -> None:
    origin = node("o")
    peers = [node("p1", tags={"role": "db"}), node("p2", tags={"role": "web"}), node("p3", tags={"role": "db-2"})]
    state, actions = origin.start_query("load", b"?", 0.0, timeout_s=2.0, request_ack=True, filter_tags={"role": "^db"})
    [q] = gossip(actions)
    assert not any(isinstance(a, DeliverQuery) for a in actions)  # origin has no role tag
    for p in peers:
        got = p.receive(decode_message(encode_message(q)), 0.1)
        assert gossip(got) == [q]
        acks = [a for a in got if isinstance(a, SendResponse)]
        deliveries = [a for a in got if isinstance(a, DeliverQuery)]
        if p.me.tags["role"] == "web":
            assert acks == [] and deliveries == []
            continue
        assert acks[0].response.ack and (acks[0].addr, acks[0].port) == ("127.0.0.1", origin.me.port)
        origin.receive(acks[0].response, 0.2)
        if p.me.name == "p1":
            resp = p.respond(deliveries[0], b"0.7", 0.3)
            origin.receive(decode_message(encode_message(resp.response)), 0.4)
            origin.receive(resp.response, 0.5)  # duplicate ignored
            with pytest.raises(SerfError, match="already"):
                p.respond(deliveries[0], b"again", 0.3)
        else:
            with pytest.raises(SerfError, match="deadline"):
                p.respond(deliveries[0], b"late", 2.2)
    assert state.result(1.0) == {
        "query_id": q.id,
        "responses": [{"node": "p1", "payload": "0.7"}],
        "acks": 2,
        "timed_out": False,
    }
    late = SerfQueryResponse(ltime=q.ltime, id=q.id, node="p3", payload=b"x")
    assert not state.on_response(late, 2.0)
    assert state.result(2.0)["timed_out"] is True and state.late == 1
    origin.tick(2.0)
    assert origin.next_deadline() is None


def test_query_node_filter_and_dedup_and_default_timeout() -> None:
    origin, p = node("o"), node("p")
    _, actions = origin.start_query("ping", b"", 0.0, filter_nodes=["o"])
    assert any(isinstance(a, DeliverQuery) for a in actions)  # origin is in its own filter
    [q] = gossip(actions)
    assert q.timeout_s == pytest.approx(0.2 * 16 * 1)
    got = p.receive(q, 0.0)
    assert gossip(got) == [q] and not any(isinstance(a, DeliverQuery) for a in got)
    assert p.receive(q, 0.0) == [] and p.stats["queries_duplicate"] == 1
    assert p.query_clock.time() == q.ltime + 1


# -- members


def test_tags_propagate_by_member_clock_and_stale_updates_are_ignored() -> None:
    a, b = node("a", tags={"dc": "1"}), node("b")
    actions = a.set_tags({"dc": "2", "role": "db"})
    [upd] = gossip(actions)
    assert isinstance(upd, SerfMemberUpdate) and upd.ltime == 1
    got = b.receive(decode_message(encode_message(upd)), 0.0)
    assert isinstance(got[0], MemberChanged)
    assert {
        "name": "a",
        "addr": "127.0.0.1",
        "port": 7001,
        "tags": {"dc": "2", "role": "db"},
        "status": "alive",
    } in b.members()
    old = SerfMemberUpdate(ltime=0, name="a", addr="127.0.0.1", port=7001, tags={"dc": "0"})
    assert b.receive(old, 0.0) == []
    assert b.receive(upd, 0.0) == []
    [leave] = gossip(a.leave())
    b.receive(leave, 0.0)
    assert [m["status"] for m in b.members() if m["name"] == "a"] == ["leaving"]


def test_non_serf_message_is_refused() -> None:
    from rustyray.autodiscovery.anti_entropy import AERoot

    with pytest.raises(SerfError):
        node("a").receive(AERoot(session=1, root=b""), 0.0)


def test_swim_driven_membership() -> None:
    a = node("a")
    assert isinstance(a.member_joined("b", "10.0.0.2", 7946, {"dc": "1"})[0], MemberChanged)
    assert a.default_query_timeout() == pytest.approx(0.2 * 16 * 1)
    assert a.set_member_status("b", MemberStatus.FAILED)[0].member.status is MemberStatus.FAILED
    assert a.set_member_status("b", MemberStatus.FAILED) == []
    a.member_joined("b", "10.0.0.2", 7946)
    assert [m for m in a.members() if m["name"] == "b"] == [
        {"name": "b", "addr": "10.0.0.2", "port": 7946, "tags": {"dc": "1"}, "status": "alive"}
    ]
