"""The memberlist member's rules on a fake clock: answers, incarnations, refutation, probing, suspicion, leave."""

from __future__ import annotations

import random

import pytest

from rustyray.autodiscovery.memberlist_core import MemberlistConfig, MemberlistCore, MemberStatus, Reply, Send
from rustyray.autodiscovery.memberlist_wire import MessageType, NodeState, PushNodeState, PushPull, decode_tags

CFG = MemberlistConfig(probe_interval=1.0, probe_timeout=0.5, suspicion_timeout=4.0)
LOCAL = bytes([127, 0, 0, 1])


def _core() -> MemberlistCore:
    return MemberlistCore("rr", LOCAL, 7000, {"role": "rustyray"}, CFG, random.Random(1))


def _alive(core: MemberlistCore, name: str, inc: int = 1, port: int = 7001, now: float = 0.0) -> None:
    core.on_packet(MessageType.ALIVE, {"Node": name.encode(), "Incarnation": inc, "Addr": LOCAL, "Port": port,
                                       "Meta": b"\xff\x80", "Vsn": bytes([1, 5, 2, 2, 5, 5])}, now)


def _status(core: MemberlistCore, name: str) -> str:
    return next(m["status"] for m in core.view() if m["name"] == name)


def _first_ping(core: MemberlistCore, start: float = 0.0, step: float = 0.01) -> tuple[float, Send]:
    """Tick until the next probe goes out (the SWIM core starts probing at a random point of its first
    interval, then every interval): its time and its ping."""
    for i in range(int(CFG.probe_interval * 2 / step) + 1):
        now = start + i * step
        pings = [s for s in core.tick(now) if isinstance(s, Send) and s.kind is MessageType.PING]
        if pings:
            return now, pings[0]
    raise AssertionError("no probe within two intervals")


def _run(core: MemberlistCore, start: float, end: float, step: float = 0.05) -> list[Send]:
    """Tick from ``start`` to ``end`` as the adapter does (often), so no timer fires late."""
    out: list[Send] = []
    now = start
    while now < end:
        now = min(end, now + step)
        out += core.tick(now)
    return out


def test_a_ping_for_us_or_nobody_is_acked_and_one_for_another_name_is_ignored() -> None:
    core = _core()
    assert core.on_packet(MessageType.PING, {"SeqNo": 5, "Node": b"rr"}, 0) == [
        Reply(MessageType.ACK, {"SeqNo": 5, "Payload": b""})]
    assert core.on_packet(MessageType.PING, {"SeqNo": 6}, 0)[0].body["SeqNo"] == 6
    assert core.on_packet(MessageType.PING, {"SeqNo": 7, "Node": b"old-name"}, 0) == []


def test_incarnation_rules() -> None:
    core = _core()
    _alive(core, "a", inc=3)
    core.on_packet(MessageType.SUSPECT, {"Node": b"a", "Incarnation": 2, "From": b"b"}, 1)
    assert _status(core, "a") == "alive"  # older news loses
    core.on_packet(MessageType.SUSPECT, {"Node": b"a", "Incarnation": 3, "From": b"b"}, 1)
    assert _status(core, "a") == "suspect"
    _alive(core, "a", inc=3)
    assert _status(core, "a") == "suspect"  # alive at the same incarnation does not clear suspicion
    _alive(core, "a", inc=4)
    assert _status(core, "a") == "alive"
    core.on_packet(MessageType.DEAD, {"Node": b"a", "Incarnation": 4, "From": b"b"}, 2)
    assert _status(core, "a") == "failed"
    core.on_packet(MessageType.DEAD, {"Node": b"c", "Incarnation": 1, "From": b"c"}, 2)
    assert "c" not in {m["name"] for m in core.view()}  # news about a stranger we cannot reach
    _alive(core, "d")
    core.on_packet(MessageType.DEAD, {"Node": b"d", "Incarnation": 1, "From": b"d"}, 2)
    assert _status(core, "d") == "left"  # a dead from the member itself is a leave


def test_suspicion_of_ourselves_is_refuted_to_everyone() -> None:
    core = _core()
    _alive(core, "a", port=7001)
    _alive(core, "b", port=7002)
    out = core.on_packet(MessageType.SUSPECT, {"Node": b"rr", "Incarnation": 5, "From": b"a"}, 0)
    assert core.incarnation == 6
    assert sorted(s.port for s in out) == [7001, 7002] and all(s.kind is MessageType.ALIVE for s in out)
    assert out[0].body["Incarnation"] == 6 and decode_tags(out[0].body["Meta"]) == {"role": "rustyray"}


def test_an_unanswered_probe_suspects_then_kills_and_an_ack_clears_it() -> None:
    core = _core()
    _alive(core, "a")
    t0, ping = _first_ping(core)
    assert ping == Send("127.0.0.1", 7001, MessageType.PING, {"SeqNo": 1, "Node": "a"})
    core.on_packet(MessageType.ACK, {"SeqNo": 1, "Payload": b""}, t0 + 0.2)
    core.tick(t0 + 0.55)  # (ticks run on time: a late one would read as a stall of our own, Lifeguard)
    assert _status(core, "a") == "alive"
    core.tick(t0 + 1.0)  # next probe, never answered (no other member to ask)
    core.tick(t0 + 1.55)
    assert _status(core, "a") == "alive"  # suspected only at the end of its probe interval
    core.tick(t0 + 2.0)
    assert _status(core, "a") == "suspect"
    # two members: too few for Lifeguard's confirmations, so the suspicion runs the min timeout
    _run(core, t0 + 2.0, t0 + 2.0 + CFG.suspicion_timeout - 0.1)
    assert _status(core, "a") == "suspect"
    _run(core, t0 + 2.0 + CFG.suspicion_timeout - 0.1, t0 + 2.0 + CFG.suspicion_timeout + 0.01)
    assert _status(core, "a") == "failed"


def test_push_pull_merges_and_answers_with_our_list() -> None:
    core = _core()
    remote = PushPull([PushNodeState("serf1", LOCAL, 7946, b"\xff\x81\xa4role\xa2db", 2, NodeState.ALIVE),
                       PushNodeState("serf2", LOCAL, 7947, b"", 1, NodeState.DEAD),
                       PushNodeState("rr", LOCAL, 7000, b"", 1, NodeState.ALIVE)], b"", True)
    core.merge(remote, 0)
    # as memberlist's mergeState: a remote dead is only grounds for suspicion, and news of a stranger that
    # is not alive is ignored
    assert {m["name"]: m["status"] for m in core.view()} == {"rr": "alive", "serf1": "alive"}
    assert next(m for m in core.view() if m["name"] == "serf1")["tags"] == {"role": "db"}
    core.merge(PushPull([PushNodeState("serf1", LOCAL, 7946, b"", 2, NodeState.DEAD)], b""), 0)
    assert _status(core, "serf1") == "suspect"
    ours = core.local_state()
    assert [n.name for n in ours.nodes] == ["rr", "serf1"] and ours.nodes[0].state is NodeState.ALIVE
    assert ours.nodes[1].state is NodeState.SUSPECT and ours.nodes[1].meta == b"\xff\x81\xa4role\xa2db"


def test_leave_sends_the_serf_intent_before_our_dead() -> None:
    core = _core()
    _alive(core, "a")
    intent, dead = core.leave()
    assert intent.kind is MessageType.USER and intent.body["payload"][0] == 0
    assert dead.kind is MessageType.DEAD and dead.body["Node"] == dead.body["From"] == "rr"
    assert core.view()[0]["status"] == MemberStatus.LEFT.value
    assert [s for s in core.tick(10.0) if s.kind is MessageType.PING] == []  # a member that left probes nobody


def test_serf_user_events_are_delivered_and_ours_are_never_older_than_seen() -> None:
    from rustyray.autodiscovery.memberlist_core import Deliver
    from rustyray.autodiscovery.memberlist_wire import decode_serf_message, serf_push_pull_state, serf_user_event

    core = _core()
    _alive(core, "a")
    got = core.on_packet(MessageType.USER, {"payload": serf_user_event(41, "deploy", b"v1", True)}, 0)
    assert got == [Deliver(41, "deploy", b"v1", True)]
    (send,) = core.user_event(3, "hello", b"x", False)  # our Serf clock says 3, the agents have seen 41
    serf_type, body = decode_serf_message(send.body["payload"])
    assert (serf_type, body["LTime"], body["Name"], body["CC"]) == (3, 42, b"hello", False)
    core.merge(PushPull([], serf_push_pull_state(ltime=9, event_ltime=100)), 0)
    assert core.event_ltime == 100 and core.ltime == 9
    _, state = decode_serf_message(core.local_state().user_state)
    assert state["EventLTime"] == 100  # agents witness our clocks in our push-pull
    assert core.on_packet(MessageType.USER, {"payload": bytes([4]) + b"\x80"}, 0) == []  # a query: not yet


def test_an_indirect_ping_is_run_for_the_requester_and_answered_with_ack_or_nack() -> None:
    core = _core()
    req = {"SeqNo": 77, "Target": bytes([127, 0, 0, 9]), "Port": 7009, "Node": b"far", "Nack": True}
    (ping,) = core.on_packet(MessageType.INDIRECT_PING, req, 0.0, ("127.0.0.5", 7005))
    assert (ping.host, ping.port, ping.kind, ping.body["Node"]) == ("127.0.0.9", 7009, MessageType.PING, "far")
    relayed = core.on_packet(MessageType.ACK, {"SeqNo": ping.body["SeqNo"], "Payload": b""}, 0.1)
    assert relayed == [Send("127.0.0.5", 7005, MessageType.ACK, {"SeqNo": 77, "Payload": b""})]
    # newer memberlist names where to answer; a target that stays silent gets a nack there
    req2 = {**req, "SeqNo": 78, "SourceAddr": bytes([127, 0, 0, 6]), "SourcePort": 7006}
    core.on_packet(MessageType.INDIRECT_PING, req2, 1.0, ("127.0.0.5", 7005))
    nacks = [s for s in core.tick(1.0 + CFG.probe_timeout) if s.kind is MessageType.NACK]
    assert nacks == [Send("127.0.0.6", 7006, MessageType.NACK, {"SeqNo": 78})]


def test_an_unanswered_direct_probe_asks_others_before_suspecting() -> None:
    core = _core()
    _alive(core, "a", port=7001)
    _alive(core, "b", port=7002)
    t0, ping = _first_ping(core)
    target, helper = ping.body["Node"], ("b" if ping.body["Node"] == "a" else "a")
    asks = [s for s in core.tick(t0 + CFG.probe_timeout) if s.kind is MessageType.INDIRECT_PING]
    assert [(s.body["Node"], s.body["SeqNo"]) for s in asks] == [(target, ping.body["SeqNo"])]
    assert asks[0].port == (7002 if helper == "b" else 7001)
    assert asks[0].body["Nack"] is True  # Lifeguard: the helper says so if the target stays silent
    assert _status(core, target) == "alive"  # not suspected while the indirect probe runs
    core.on_packet(MessageType.ACK, {"SeqNo": ping.body["SeqNo"], "Payload": b""}, t0 + 0.8)  # relayed by the helper
    # the next probe (due at the interval) goes unanswered directly and indirectly: suspect at its end
    (ping2,) = [s for s in core.tick(t0 + CFG.probe_interval) if s.kind is MessageType.PING]
    assert _status(core, target) == "alive"
    core.tick(t0 + CFG.probe_interval + CFG.probe_timeout)
    assert _status(core, ping2.body["Node"]) == "alive"
    core.tick(t0 + 2 * CFG.probe_interval)
    assert _status(core, ping2.body["Node"]) == "suspect"


QUIET = MemberlistConfig(probe_interval=1000.0, probe_timeout=500.0, suspicion_timeout=4000.0)
"""Probes too rare to suspect anyone within a test: gossip alone."""


def _gossip_rounds(core: MemberlistCore, start: float, rounds: int) -> list[Send]:
    """Sends of ``rounds`` gossip rounds (ticks one gossip interval apart), probes left out."""
    out: list[Send] = []
    for i in range(rounds):
        out += [s for s in core.tick(start + i * QUIET.gossip_interval)
                if isinstance(s, Send) and s.kind is not MessageType.PING]
    return out


def test_news_is_relayed_to_a_few_random_members_a_bounded_number_of_times() -> None:
    core = MemberlistCore("rr", LOCAL, 7000, {}, QUIET, random.Random(1))
    for i, name in enumerate("bcdef"):
        _alive(core, name, port=7002 + i)
    _gossip_rounds(core, 0.0, 20)  # what we learned so far, and our own alive, go out and run dry
    assert _gossip_rounds(core, 10.0, 5) == []
    _alive(core, "a", inc=1, port=7001, now=11.0)  # news from one member
    relayed = [s for s in _gossip_rounds(core, 11.0, 20) if s.body["Node"] == "a"]
    limit = QUIET.retransmit_mult * 1  # ceil(log10(6 members + 1 + 1)) == 1
    assert len(relayed) == limit and all(s.kind is MessageType.ALIVE and s.body["Port"] == 7001 for s in relayed)
    ports = {s.port for s in relayed}
    assert len(ports) >= 2  # to random members (as memberlist, "a" itself may be one of them)
    _alive(core, "a", inc=1, port=7001, now=20.0)  # the same news again is no news
    assert _gossip_rounds(core, 20.0, 5) == []
    core.on_packet(MessageType.DEAD, {"Node": b"a", "Incarnation": 1, "From": b"a"}, 21.0)  # a leave
    dead = _gossip_rounds(core, 21.0, 2)  # (rounds keep their phase: the next one is within an interval)
    assert dead and all((s.kind, s.body["From"]) == (MessageType.DEAD, "a") for s in dead)


def test_our_own_alive_is_gossiped_once_our_port_is_known() -> None:
    core = MemberlistCore("rr", LOCAL, 7000, {}, QUIET, random.Random(1))
    _alive(core, "b", port=7002)
    first = _gossip_rounds(core, 0.0, 2)  # the first round, within one interval
    assert (MessageType.ALIVE, "rr", 7000) in [(s.kind, s.body["Node"], s.body["Port"]) for s in first]
    assert core.incarnation == 1


def test_a_periodic_push_pull_goes_to_one_live_member_every_interval() -> None:
    from rustyray.autodiscovery.memberlist_core import PushPullWith

    core = _core()
    _alive(core, "b", port=7002)
    syncs = []
    now = 0.0
    while now < 2 * CFG.push_pull_interval:  # b answers every probe, so it stays alive
        now += 0.05
        for a in core.tick(now):
            if isinstance(a, PushPullWith):
                syncs.append((now, a))
            elif a.kind is MessageType.PING:
                core.on_packet(MessageType.ACK, {"SeqNo": a.body["SeqNo"], "Payload": b""}, now)
    assert [a for _, a in syncs] == [PushPullWith("127.0.0.1", 7002)] * 2
    assert syncs[1][0] - syncs[0][0] == pytest.approx(CFG.push_pull_interval, abs=0.06)


def test_a_join_intent_goes_to_everyone_after_the_clocks_we_have_seen() -> None:
    from rustyray.autodiscovery.memberlist_wire import decode_serf_message, serf_leave_intent

    core = _core()
    _alive(core, "a", port=7001)
    _alive(core, "b", port=7002)
    core.on_packet(MessageType.USER, {"payload": serf_leave_intent("a", 40)}, 0)  # an agent's intent: witnessed
    sends = core.join_intent()
    assert sorted(s.port for s in sends) == [7001, 7002]
    serf_type, body = decode_serf_message(sends[0].body["payload"])
    assert (serf_type, body["Node"], body["LTime"]) == (1, b"rr", 41)
