"""SerfNode: gossip fan-out, peer events, query answers and routing, lifecycle gating, API views.

Driven with hand-made ``HostView``s and a fake clock (``now`` advanced by hand); no sockets, no sleeps.
"""

from __future__ import annotations

import json
import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.autodiscovery.serf import (
    MemberStatus,
    QueryState,
    SerfConfig,
    SerfCore,
    SerfMemberUpdate,
    SerfQuery,
    SerfQueryResponse,
    SerfUserEvent,
)
from rustyray.autodiscovery.serf_node import (
    QUERY_RECHECK_S,
    Gossip,
    HostView,
    PeerInfo,
    QueryProgress,
    SerfNode,
    Unicast,
)


def view(now: float = 10.0, *, peers: dict[str, PeerInfo] | None = None, live: set[str] | None = None,
         node_id: str = "n0") -> HostView:
    peers = {"n1": PeerInfo("127.0.0.1:7001", True, 3), "n2": PeerInfo("127.0.0.1:7002", True, 0)} \
        if peers is None else peers
    live = {node_id, *peers} if live is None else live
    return HostView(now=now, wall=1_000_000.0 + now, node_id=node_id, host="127.0.0.1", port=7000,
                    tcp_address="127.0.0.1:7000", incarnation=5, uptime_s=now - 1.0, live=frozenset(live),
                    peers=peers)


def serf_node(*, enabled: bool = True, mult: int = 4, recent: int = 8, coalesce: float = 0.0,
              running: bool = True) -> SerfNode:
    core = SerfCore(SerfConfig(coalesce_period_s=coalesce, quiescent_period_s=coalesce), node_name="n0",
                    addr="127.0.0.1", port=7000, rng=random.Random(1))
    node = SerfNode(core, enabled=enabled, retransmit_mult=mult, recent_events=recent, rng=random.Random(2))
    node.running = running
    return node


def of(kind: type, actions: list) -> list:
    return [a for a in actions if isinstance(a, kind)]


# -- gossip fan-out


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from([f"p{i}" for i in range(40)]), st.tuples(st.booleans(), st.booleans()),
                       max_size=40),
       st.integers(1, 3), st.one_of(st.none(), st.sampled_from(["p0", "p1", "p2"])))
def test_gossip_goes_to_connected_live_peers_within_the_transmit_limit(table, mult, exclude) -> None:
    peers = {p: PeerInfo(f"10.0.0.1:{i + 1}", conn, 0) for i, (p, (conn, _)) in enumerate(sorted(table.items()))}
    live = {"n0"} | {p for p, (_, alive) in table.items() if alive}
    v = view(peers=peers, live=live)
    targets = serf_node(mult=mult).gossip_targets(v, exclude)
    eligible = {p for p, info in peers.items() if info.connected and p in live and p != exclude}
    limit = mult * max(1, math.ceil(math.log10(len(live) + 1)))
    assert set(targets) <= eligible and "n0" not in targets
    assert len(targets) == len(set(targets)) == min(len(eligible), limit)


def test_a_received_event_is_forwarded_to_everyone_but_its_sender_and_logged() -> None:
    node = serf_node()
    out = node.receive(SerfUserEvent(ltime=0, name="deploy", payload=b"v1"), "n1", view())
    assert of(Gossip, out) == [Gossip(SerfUserEvent(ltime=0, name="deploy", payload=b"v1"), ("n2",))]
    assert node.delivered == 1
    assert list(node.events) == [{"name": "deploy", "payload": "v1", "ltime": 0, "coalesce": True,
                                  "delivered_at": 1_000_010.0}]
    assert node.receive(SerfUserEvent(ltime=0, name="deploy", payload=b"v1"), "n2", view()) == []  # seen


def test_the_event_log_is_bounded_and_the_view_honours_the_limit() -> None:
    node = serf_node(recent=3)
    for i in range(5):
        node.receive(SerfUserEvent(ltime=i, name=f"e{i}"), "n1", view())
    body = node.events_view("n0", 2)
    assert [e["name"] for e in body["events"]] == ["e3", "e4"] and body["total_delivered"] == 5
    assert len(node.events) == 3 and node.events_view("n0", 0)["events"] == []


def test_coalesced_events_wait_for_the_timer() -> None:
    node = serf_node(coalesce=0.5)
    node.receive(SerfUserEvent(ltime=0, name="x"), "n1", view(10.0))
    assert node.delivered == 0
    deadline = node.core.next_deadline()
    assert deadline is not None and node.tick(view(deadline - 0.01)) == [] and node.delivered == 0
    node.tick(view(deadline))
    assert node.delivered == 1


# -- lifecycle and enabled


def test_nothing_is_gossiped_or_answered_before_start_or_after_stop() -> None:
    node = serf_node(running=False)
    q = SerfQuery(ltime=0, id=9, origin="n1", addr="127.0.0.1", port=7001, timeout_s=5.0, name="uptime")
    assert node.receive(q, "n1", view()) == []
    assert node.answered == 1  # answered, but the response is not sent while stopped
    start = node.start({"role": "db"}, view())
    assert [type(a.message) for a in start] == [SerfMemberUpdate] and node.running
    node.stop()
    assert node.receive(SerfUserEvent(ltime=0, name="e"), "n1", view()) == [] and node.delivered == 1


def test_a_disabled_node_ignores_serf_messages() -> None:
    node = serf_node(enabled=False)
    assert node.receive(SerfUserEvent(ltime=0, name="e"), "n1", view()) == [] and node.delivered == 0


# -- queries


def test_a_query_is_answered_with_identity_and_uptime_and_sent_to_its_origin() -> None:
    node = serf_node()
    q = SerfQuery(ltime=0, id=9, origin="n1", addr="127.0.0.1", port=7001, timeout_s=5.0, name="uptime")
    out = node.receive(q, "n1", view(now=4.5))
    [uni] = of(Unicast, out)
    assert uni.peer == "n1" and isinstance(uni.message, SerfQueryResponse)
    assert json.loads(uni.message.payload) == {"node_id": "n0", "incarnation": 5, "uptime_s": 3.5}
    assert node.answered == 1


def test_a_registered_responder_answers_its_query_name() -> None:
    node = serf_node()
    node.responders["echo"] = lambda payload: payload.upper()
    q = SerfQuery(ltime=0, id=9, origin="n1", addr="127.0.0.1", port=7001, timeout_s=5.0, name="echo",
                  payload=b"hi")
    [uni] = of(Unicast, node.receive(q, "n1", view()))
    assert uni.message.payload == b"HI"


def test_an_ack_without_origin_goes_to_the_node_at_its_address() -> None:
    node = serf_node()
    q = SerfQuery(ltime=0, id=9, origin="", addr="127.0.0.1", port=7002, timeout_s=5.0, name="uptime",
                  request_ack=True)
    unicasts = of(Unicast, node.receive(q, "n1", view()))
    assert [u.peer for u in unicasts] == ["n2", "n2"] and unicasts[0].message.ack is True


def test_our_own_query_is_answered_locally_and_progress_reported() -> None:
    node = serf_node()
    state, out = node.start_query("uptime", b"", 2.0, view(now=10.0))
    assert set(state.responses) == {"n0"}
    assert of(QueryProgress, out) == [QueryProgress((state.ltime, state.id))]
    assert [g.targets for g in of(Gossip, out)] == [("n1", "n2")]
    live = frozenset({"n0", "n1"})
    assert node.query_wait(state, live, 10.0) == QUERY_RECHECK_S
    assert node.query_wait(state, live, 11.9) is not None and node.query_wait(state, live, 11.9) < QUERY_RECHECK_S
    assert node.query_wait(state, live, 12.0) is None  # deadline
    node.receive(SerfQueryResponse(ltime=state.ltime, id=state.id, node="n1", payload=b"x"), "n1", view(10.5))
    assert node.query_wait(state, live, 10.6) is None  # every live member answered


def test_query_wait_is_none_once_every_live_member_answered() -> None:
    state = QueryState(id=1, ltime=0, name="q", deadline=100.0, request_ack=False, responses={"a": b"", "b": b""})
    assert SerfNode.query_wait(state, frozenset({"a", "b"}), 0.0) is None
    assert SerfNode.query_wait(state, frozenset({"a", "b", "c"}), 0.0) == QUERY_RECHECK_S


# -- peer events and the members view


def test_peer_events_map_onto_member_status() -> None:
    node = serf_node()
    out = node.peer_event("connected", "n1", view())
    [uni] = of(Unicast, out)
    assert uni.peer == "n1" and isinstance(uni.message, SerfMemberUpdate) and uni.message.name == "n0"
    assert node.status_of("n1") is MemberStatus.ALIVE
    node.peer_event("disconnected", "n1", view())
    assert node.status_of("n1") is MemberStatus.FAILED
    node.peer_event("connected", "n1", view())
    node.peer_event("goodbye", "n1", view())
    node.peer_event("disconnected", "n1", view())
    assert node.status_of("n1") is MemberStatus.LEFT  # a goodbye is not undone by the disconnect
    assert node.peer_event("connected", "stranger", view()) == []  # not in the peer table


def test_members_view_merges_serf_with_the_live_set() -> None:
    node = serf_node()
    node.peer_event("connected", "n1", view())
    node.peer_event("connected", "n2", view())
    node.peer_event("goodbye", "n2", view())
    body = node.members_view(view(live={"n0", "n1", "n3"}, peers={**view().peers, "n3": PeerInfo("h:9", True, 7)}))
    by = {m["name"]: m for m in body["members"]}
    assert [m["name"] for m in body["members"]] == ["n0", "n1", "n2", "n3"]
    assert by["n0"]["status"] == "alive" and by["n0"]["incarnation"] == 5
    assert by["n1"]["status"] == "alive" and by["n1"]["incarnation"] == 3
    assert by["n2"]["status"] == "left"
    assert by["n3"] == {"name": "n3", "addr": "h", "port": 9, "tags": {}, "status": "alive", "incarnation": 7}
    assert body["total"] == 4 and body["alive"] == 3 and set(body["clocks"]) == {"member", "event", "query"}
    body = node.members_view(view(live={"n0"}))
    assert {m["name"]: m["status"] for m in body["members"]} == {"n0": "alive", "n1": "failed", "n2": "left"}
