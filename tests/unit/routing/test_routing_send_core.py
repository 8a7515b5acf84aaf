"""SendCore and the fan-out runs: the send path of routing, driven by hand with a fake clock (no event loop)."""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.routing import DeliveryGuarantee, Priority, RouteAck, RoutingConfig
from rustyray.routing.messages import ack_error
from rustyray.routing.priority import PeerOutboxes
from rustyray.routing.send_core import (
    FAN_OUT_GRACE_S,
    BroadcastRun,
    GatherRun,
    Outcome,
    QuorumRun,
    SendCore,
    SendRequest,
    Settle,
    Wake,
)

CFG = RoutingConfig(retry_initial_s=0.1, retry_max_s=0.4, retry_jitter=0.0, outbox_max_size=8)
ALO, AMO, EO = DeliveryGuarantee.AT_LEAST_ONCE, DeliveryGuarantee.AT_MOST_ONCE, DeliveryGuarantee.EXACTLY_ONCE


def core(incarnation: int = 3) -> SendCore:
    return SendCore("node1", incarnation, CFG, random.Random(1))


def req(target: str = "node2", guarantee: DeliveryGuarantee = ALO, timeout_s: float = 1.0,
        priority: Priority = Priority.NORMAL) -> SendRequest:
    return SendRequest(target, "Count", b'{"seq":1}', priority, guarantee, None, timeout_s)


def submitted(c: SendCore, r: SendRequest, now: float = 0.0):
    env = c.open(r, wall=1000.0 + now)
    assert c.submit(env, r, now) == Wake(r.target)
    return env


def test_ids_are_unique_across_incarnations_and_the_envelope_carries_the_request():
    a, b = core(incarnation=1), core(incarnation=2)
    ea, eb = a.open(req(), 1.0), b.open(req(), 1.0)
    assert ea.message_id == (1 << 40) + 1 and eb.message_id == (2 << 40) + 1
    assert (ea.source, ea.target, ea.message_type, ea.priority, ea.delivery, ea.attempt, ea.sent_at) == (
        "node1", "node2", "Count", "Normal", "AtLeastOnce", 1, 1.0)
    assert a.broadcast_key() == f"bcast-node1-1-{(1 << 40) + 2}" and a.next_id() == (1 << 40) + 3
    assert a.traffic["node2"].sent == 1


def test_a_full_outbox_refuses_before_the_balancer_and_never_for_this_node():
    c = core()
    c.outboxes = PeerOutboxes(2)
    for _ in range(2):
        submitted(c, req())
    assert c.admit(req(target="node1")) is None
    refused = c.admit(req())
    assert isinstance(refused, Outcome) and refused.error_code == "outbox_full" and "(2 messages)" in refused.error
    assert c.outbox_rejected == 1 and c.traffic["node2"].failed == 1
    # raced past admit: submit refuses it and tracks nothing
    env = c.open(req(), 0.0)
    late = c.submit(env, req(), 0.0)
    assert isinstance(late, Outcome) and late.error_code == "outbox_full" and late.message_id == f"msg-{env.message_id}"
    assert c.tracker.in_flight == 2 and c.outbox_rejected == 2


def test_an_ack_settles_only_from_the_target_and_finish_parses_it():
    c = core()
    env = submitted(c, req())
    assert c.take("node2") == env.message_id and c.frame(env.message_id) is env
    ack = RouteAck(message_id=env.message_id, result=msgspec.json.encode({"rows": 3}),
                   error=ack_error("handler_error", "slow", "data"))
    assert c.on_ack(ack, "node3", 0.2) is None and c.stray_acks == 1  # from the wrong peer
    settle = c.on_ack(ack, "node2", 0.2)
    assert settle == Settle(env.message_id, ack, None, 1)
    assert c.on_ack(ack, "node2", 0.3) is None and c.stray_acks == 2  # settled already
    o = c.finish(req(), env, settle, started=0.0, now=0.25)
    assert o.acknowledged and o.response == {"rows": 3} and o.latency_ms == 250.0 and o.attempts == 1
    assert (o.error_code, o.error_field, o.error) == ("handler_error", "data", "slow") and not o.ok
    assert c.peer_signals("node2") == (0.0, 250.0) and c.peer_signals("node9") == (None, None)


def test_retransmissions_carry_the_attempt_and_the_deadline_reports_the_last_error():
    c = core()
    env = submitted(c, req(timeout_s=1.0))
    mid = env.message_id
    assert c.take("node2") == mid
    assert c.not_sent(mid, "write failed", final=False) is None  # left to the retry timer
    assert c.next_deadline() == 0.1
    assert c.on_timer(0.1) == [Wake("node2")]
    assert c.take("node2") == mid and c.frame(mid).attempt == 2
    assert c.take("node2") is None
    actions = c.on_timer(1.0)
    assert actions == [Settle(mid, None, "no acknowledgement before the deadline (last error: write failed)", 0)]
    assert c.stats()["AtLeastOnce"]["failed"] == 1 and c.stats()["in_flight"] == 0
    o = c.finish(req(), env, actions[0], 0.0, 1.0)
    assert o.error_code == "not_acknowledged" and not o.acknowledged and c.traffic["node2"].failed == 1


def test_without_a_connection_a_retrying_message_keeps_its_place_and_at_most_once_fails():
    c = core()
    low = submitted(c, req(priority=Priority.LOW))
    high = submitted(c, req(priority=Priority.HIGH))
    assert c.take("node2") == high.message_id
    assert c.on_no_connection(high.message_id, "node2") is None
    assert c.take("node2") == high.message_id  # still ahead of the Low one
    amo = submitted(c, req(guarantee=AMO, priority=Priority.CRITICAL))
    assert c.take("node2") == amo.message_id
    assert c.on_no_connection(amo.message_id, "node2") == Settle(amo.message_id, None, "node2 is not connected", 1)
    assert c.stats()["AtMostOnce"]["failed"] == 1
    assert c.not_sent(low.message_id, "frame too large", final=True) == Settle(low.message_id, None,
                                                                               "frame too large", 1)
    assert c.take("node2") is None  # the settled Low message is dropped from the outbox


def test_local_sends_give_up_and_unreachable():
    c = core()
    env = c.open(req(target="node1"), 0.0)
    c.track_local(env, req(target="node1"), 0.0)
    ack = RouteAck(message_id=env.message_id, duplicate=True)
    assert c.local_done(env, ack, 0.1) == Settle(env.message_id, ack, None, 1)
    assert c.stats()["AtLeastOnce"]["deduplicated"] == 1
    env = submitted(c, req())
    assert c.give_up(env.message_id, 1.0) == Settle(env.message_id, None, "no acknowledgement within 1000 ms", 0)
    assert c.take("node2") is None and c.tracker.in_flight == 0
    o = c.unreachable(req(), c.open(req(), 0.0), "node2 is unreachable: refused", 0.0, 0.002)
    assert (o.error_code, o.latency_ms, o.attempts) == ("unreachable", 2.0, 0)


# -- fan-outs -------------------------------------------------------------------------------------


def ok(target: str, response: dict | None = None) -> Outcome:
    return Outcome(target, "msg-1", acknowledged=True, response=response)


def failed(target: str) -> Outcome:
    return Outcome(target, "", error="unreachable", error_code="unreachable")


def test_gather_run_sends_with_grace_and_times_out_late_nodes():
    run = GatherRun(["a", "b", "c"], "ShardQuery", b"{}", Priority.HIGH, 0.4)
    sends = run.begin(10.0)
    assert [s.target for s in sends] == ["a", "b", "c"] and run.deadline == 10.4
    assert all(s.fail_fast and s.guarantee is ALO and s.timeout_s == 0.4 + FAN_OUT_GRACE_S for s in sends)
    run.on_outcome(ok("a", {"rows": 1}), 10.1)
    run.on_outcome(ok("b", {"rows": 2}), 10.4)  # finished with the wait that hit the deadline: still counted
    assert not run.done
    res = run.finish(10.4)
    assert res["responses_received"] == 2 and res["timed_out"] == ["c"] and res["response_time_ms"] == 400.0
    assert [r["status"] for r in res["responses"]] == ["success", "success", "timeout"]


def test_quorum_run_is_done_once_quorum_and_consensus_are_decided():
    run = QuorumRun(["a", "b", "c"], 2, "ConsensusProposal", b"{}", Priority.NORMAL, 3.0)
    run.begin(0.0)
    run.on_outcome(ok("a", {"vote": "ACCEPT"}), 0.1)
    assert not run.done
    run.on_outcome(ok("b", None), 0.2)  # an answer without a vote accepts
    assert run.done
    res = run.finish(0.2)
    assert res["quorum_reached"] and res["consensus"] == "ACCEPT" and res["votes"] == {"ACCEPT": 2}
    assert [o["node"] for o in res["outcomes"]] == ["a", "b"]
    late = QuorumRun(["a", "b"], 2, "X", b"{}", Priority.NORMAL, 1.0)
    late.begin(0.0)
    late.on_outcome(failed("a"), 0.1)
    assert late.done and late.finish(0.1)["failed_nodes"] == ["a"]
    slow = QuorumRun(["a", "b"], 2, "X", b"{}", Priority.NORMAL, 1.0)
    slow.begin(0.0)
    assert slow.finish(1.0)["timed_out_nodes"] == ["a", "b"]


def test_broadcast_run_fails_fast_and_lists_every_result():
    template = SendRequest("", "ConfigUpdate", b"{}", Priority.CRITICAL, EO, "bcast-k", 5.0)
    run = BroadcastRun(["a", "b"], template)
    sends = run.begin(1.0)
    assert [(s.target, s.fail_fast, s.idempotency_key) for s in sends] == [("a", True, "bcast-k"),
                                                                           ("b", True, "bcast-k")]
    res = run.finish([ok("a", {"applied": True}), failed("b")], 1.5)
    assert (res["total_nodes"], res["successful_sends"], res["failed_sends"]) == (2, 1, 1)
    assert res["nodes_reached"] == ["a"] and res["failures"] == {"b": "unreachable"}
    assert res["broadcast_latency_ms"] == 500.0 and res["priority"] == "Critical" and res["delivery"] == "ExactlyOnce"
    assert [r["node"] for r in res["results"]] == ["a", "b"] and res["results"][1]["error"] == "unreachable"


# -- property: over a lossy link, every message is settled exactly once -----------------------------


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, CFG.outbox_max_size),
    loss=st.floats(0.0, 0.9),
    guarantee=st.sampled_from([ALO, AMO, EO]),
)
def test_every_message_settles_exactly_once_and_the_counters_add_up(seed, n, loss, guarantee):
    rng = random.Random(seed)
    c = core()
    envs = {}
    for i in range(n):
        e = submitted(c, req(guarantee=guarantee, timeout_s=2.0), now=i * 0.01)
        envs[e.message_id] = e
    settled: dict[int, Settle] = {}

    def apply(actions):
        for a in actions:
            if isinstance(a, Settle):
                assert a.message_id not in settled, "settled twice"
                settled[a.message_id] = a

    now = 0.0
    for _ in range(10_000):
        while (mid := c.take("node2")) is not None:  # the sender drains the outbox over the lossy link
            frame = c.frame(mid)
            assert frame.attempt == c.tracker.attempt(mid) >= 1
            if rng.random() >= loss and rng.random() >= loss:  # envelope and ack both arrive
                s = c.on_ack(RouteAck(message_id=mid), "node2", now)
                assert s is not None and s.ack is not None
                apply([s])
        deadline = c.next_deadline()
        if deadline is None:
            break
        now = max(now, deadline)
        apply(c.on_timer(now))
    assert set(settled) == set(envs) and c.tracker.in_flight == 0
    counts = c.stats()[guarantee.value]
    acked = sum(1 for s in settled.values() if s.ack is not None)
    assert counts["sent"] == n and counts["acknowledged"] == acked and counts["failed"] == n - acked
    if guarantee is AMO:
        assert counts["retried"] == 0 and all(s.attempts <= 1 for s in settled.values())
    assert all(s.ack is not None or s.error for s in settled.values())
