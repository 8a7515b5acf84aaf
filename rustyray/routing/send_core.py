"""The send side of routing as a sans-I/O core: outbox admission, retransmission and settlement, fan-outs.

Theory of operation. Every routed message is an envelope with a fresh id that stays unique across
restarts (the incarnation fills the high bits, so a late ack from an earlier incarnation cannot
settle a new message). A message to another node is tracked by ``DeliveryTracker`` (capped
exponential backoff with jitter, the AWS "exponential backoff and jitter" scheme) and queued in its
peer's bounded ``PriorityOutbox`` (strict priority, RFC 2475 style): a full outbox refuses it at once
(local back-pressure, checked before the load balancer admits the send, so a refusal is never
counted against the target). The peer's sender takes the most urgent live message
(``take``); with no connection a retrying message keeps its place while the adapter redials, an
AtMostOnce one fails; a write that fails is retried by the timer, unless it can never succeed (a
``LocalProtocolError``, e.g. over the frame limit). Timer events (``on_timer``) re-queue due
retransmissions and settle messages whose deadline passed; an ack settles a message only when it
comes from the message's target. Each settlement is a ``Settle`` action that the adapter turns into
the waiting caller's result; ``finish`` turns it into the caller's ``Outcome``.

Fan-outs (``BroadcastRun``, ``GatherRun``, ``QuorumRun``) turn one request into sends to many nodes
and feed the outcomes to the collectors of ``dispatch_core``, which decide completion. Scatter-gather
and quorum sends are fail-fast AtLeastOnce sends that may outlive the fan-out deadline by
``FAN_OUT_GRACE_S``, so a slow node is reported timed out by the collector, not as a failed send.

Time comes in as ``now`` (monotonic seconds, read once per event by the adapter) and ``wall``
(only to stamp ``sent_at``); randomness from the injected ``random.Random``.
"""

from __future__ import annotations

import abc
import itertools
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec

from rustyray.routing.config import RoutingConfig
from rustyray.routing.delivery import DeliveryGuarantee, DeliveryTracker
from rustyray.routing.dispatch_core import Broadcast, QuorumCollector, ScatterGather
from rustyray.routing.errors import OutboxFullError
from rustyray.routing.messages import RouteAck, RouteEnvelope, parse_ack_error
from rustyray.routing.priority import PeerOutboxes, Priority

FAN_OUT_GRACE_S = 0.5
"""Seconds a fan-out send may outlive the fan-out deadline (then it is already counted as timed out)."""


@dataclass(frozen=True)
class SendRequest:
    """One routed send as the API asked for it (already validated)."""

    target: str
    message_type: str
    data: bytes
    """The handler payload, JSON bytes."""
    priority: Priority
    guarantee: DeliveryGuarantee
    idempotency_key: str | None
    timeout_s: float
    fail_fast: bool = False
    """Fail at once when the target cannot be dialled (fan-outs) instead of waiting for a retry."""


@dataclass
class Outcome:
    """What one routed send came to (never raised: fan-outs count failures)."""

    target: str
    message_id: str
    acknowledged: bool = False
    duplicate: bool = False
    response: dict[str, Any] | None = None
    error: str | None = None
    error_code: str | None = None
    error_field: str | None = None
    latency_ms: float = 0.0
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.acknowledged and self.error is None


@dataclass(frozen=True)
class Settle:
    """Message ``message_id`` is settled: acknowledged with ``ack``, or failed with ``error``."""

    message_id: int
    ack: RouteAck | None
    error: str | None
    attempts: int


@dataclass(frozen=True)
class Wake:
    """``peer``'s outbox has something new: make sure its sender runs."""

    peer: str


Action = Settle | Wake


@dataclass
class PeerTraffic:
    sent: int = 0
    failed: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=256))


@dataclass
class _Pending:
    envelope: RouteEnvelope
    priority: Priority
    guarantee: DeliveryGuarantee
    last_error: str | None = None


class SendCore:
    """One node's outgoing messages: ids, outboxes, the tracker, per-peer traffic numbers."""

    def __init__(self, source: str, incarnation: int, config: RoutingConfig, rng: random.Random) -> None:
        self.source = source
        self.incarnation = incarnation
        self.tracker = DeliveryTracker(config, rng)
        self.outboxes: PeerOutboxes[int] = PeerOutboxes(config.outbox_max_size)
        self.traffic: dict[str, PeerTraffic] = {}
        self.stray_acks = 0
        """Acks the adapter received for no message of ours (on top of the tracker's own)."""
        self.outbox_rejected = 0
        self._pending: dict[int, _Pending] = {}
        self._queued: set[int] = set()
        self._ids = itertools.count((incarnation << 40) + 1)

    def next_id(self) -> int:
        return next(self._ids)

    def broadcast_key(self) -> str:
        """A fresh idempotency key for one ExactlyOnce broadcast (the same on every target)."""
        return f"bcast-{self.source}-{self.incarnation}-{self.next_id()}"

    def _traffic(self, peer: str) -> PeerTraffic:
        return self.traffic.setdefault(peer, PeerTraffic())

    # -- one send, in the adapter's order ---------------------------------------------------------

    def admit(self, req: SendRequest) -> Outcome | None:
        """The refusal when the target's outbox is already full (checked before the load balancer), else None."""
        target = req.target
        if target == self.source or len(self.outboxes.for_peer(target)) < self.outboxes.max_size:
            return None
        self.outbox_rejected += 1
        self._traffic(target).failed += 1
        return Outcome(target, "", error=f"outbox to {target} is full ({self.outboxes.max_size} messages)",
                       error_code="outbox_full")

    def open(self, req: SendRequest, wall: float) -> RouteEnvelope:
        """The envelope of a new send, under a fresh id."""
        self._traffic(req.target).sent += 1
        return RouteEnvelope(
            message_id=self.next_id(),
            source=self.source,
            target=req.target,
            message_type=req.message_type,
            priority=req.priority.value,
            delivery=req.guarantee.value,
            idempotency_key=req.idempotency_key,
            data=req.data,
            attempt=1,
            sent_at=wall,
        )

    def track_local(self, env: RouteEnvelope, req: SendRequest, now: float) -> None:
        """A message to this node itself: tracked (for the counters), processed without the network."""
        self.tracker.track(env.message_id, req.guarantee, now, deadline=now + req.timeout_s)

    def local_done(self, env: RouteEnvelope, ack: RouteAck, now: float) -> Settle:
        self.tracker.on_ack(env.message_id, now, ack.duplicate)
        return Settle(env.message_id, ack, None, 1)

    def unreachable(self, req: SendRequest, env: RouteEnvelope, why: str, started: float, now: float) -> Outcome:
        """A fail-fast send whose target could not be dialled."""
        self._traffic(req.target).failed += 1
        return Outcome(req.target, f"msg-{env.message_id}", error=why, error_code="unreachable",
                       latency_ms=round((now - started) * 1000, 3))

    def submit(self, env: RouteEnvelope, req: SendRequest, now: float) -> Outcome | Wake:
        """Track ``env`` and queue it for its peer's sender; the refusal when the outbox is full (then untracked)."""
        mid = env.message_id
        pending = _Pending(env, req.priority, req.guarantee)
        self.tracker.track(mid, req.guarantee, now, deadline=now + req.timeout_s)
        self._pending[mid] = pending
        try:
            self._enqueue(mid, pending)
        except OutboxFullError as exc:
            self.tracker.cancel(mid)
            del self._pending[mid]
            self.outbox_rejected += 1
            self._traffic(req.target).failed += 1
            return Outcome(req.target, f"msg-{mid}", error=f"outbox to {req.target} is full: {exc}",
                           error_code="outbox_full")
        return Wake(req.target)

    def give_up(self, message_id: int, timeout_s: float) -> Settle:
        """The caller stopped waiting (the tracker's deadline should have fired first)."""
        self.tracker.cancel(message_id)
        self._pending.pop(message_id, None)
        return Settle(message_id, None, f"no acknowledgement within {timeout_s * 1000:g} ms", 0)

    def finish(self, req: SendRequest, env: RouteEnvelope, settle: Settle, started: float, now: float) -> Outcome:
        """The caller's ``Outcome`` of a settled send started at ``started``."""
        outcome = Outcome(req.target, f"msg-{env.message_id}", latency_ms=round((now - started) * 1000, 3),
                          attempts=settle.attempts)
        traffic = self._traffic(req.target)
        ack = settle.ack
        if ack is None:
            traffic.failed += 1
            outcome.error, outcome.error_code = settle.error or "not acknowledged", "not_acknowledged"
            return outcome
        traffic.latencies_ms.append(outcome.latency_ms)
        outcome.acknowledged = True
        outcome.duplicate = ack.duplicate
        if ack.result is not None:
            outcome.response = msgspec.json.decode(ack.result)
        if ack.error is not None:
            outcome.error_code, outcome.error_field, outcome.error = parse_ack_error(ack.error)
        return outcome

    # -- the peer's sender ------------------------------------------------------------------------

    def take(self, peer: str) -> int | None:
        """The most urgent message to write to ``peer`` now (settled ones are dropped); None when none is left."""
        box = self.outboxes.for_peer(peer)
        while box:
            _, mid = box.pop()
            self._queued.discard(mid)
            if mid in self._pending and self.tracker.is_in_flight(mid):
                return mid
        return None

    def on_no_connection(self, message_id: int, peer: str) -> Settle | None:
        """``take`` found no connection: a retrying message keeps its place (None: redial), others fail."""
        pending = self._pending[message_id]
        if not pending.guarantee.retries:
            return self.not_sent(message_id, f"{peer} is not connected")
        self.outboxes.push(peer, message_id, pending.priority)
        self._queued.add(message_id)
        return None

    def frame(self, message_id: int) -> RouteEnvelope:
        """The envelope to write for ``message_id``, stamped with its current attempt."""
        env = self._pending[message_id].envelope
        attempt = self.tracker.attempt(message_id)
        return env if attempt == env.attempt else msgspec.structs.replace(env, attempt=attempt)

    def not_sent(self, message_id: int, reason: str, *, final: bool = False) -> Settle | None:
        """A write failed: retried by the timer unless ``final`` or not retrying; the settlement when it fails."""
        pending = self._pending.get(message_id)
        if pending is None:  # settled while the write was under way
            return None
        pending.last_error = reason
        if pending.guarantee.retries and not final:
            return None  # the next retry goes out on whatever connection exists then
        if self.tracker.cancel(message_id):
            self.tracker.counters(pending.guarantee).failed += 1
        del self._pending[message_id]
        return Settle(message_id, None, reason, 1)

    # -- acks and timers --------------------------------------------------------------------------

    def on_ack(self, ack: RouteAck, peer_id: str | None, now: float) -> Settle | None:
        """Settle the message ``ack`` answers, if it came from that message's target; None for a stray ack."""
        pending = self._pending.get(ack.message_id)
        if pending is None or (peer_id is not None and peer_id != pending.envelope.target):
            self.stray_acks += 1
            return None
        settled = self.tracker.on_ack(ack.message_id, now, ack.duplicate)
        if settled is None:
            self.stray_acks += 1
            return None
        del self._pending[ack.message_id]
        return Settle(ack.message_id, ack, None, settled.attempts)

    def on_timer(self, now: float) -> list[Action]:
        """Re-queue due retransmissions (``Wake`` their peers) and settle messages past their deadline."""
        actions: list[Action] = []
        for mid in self.tracker.due(now):
            pending = self._pending.get(mid)
            if pending is None:
                continue
            try:
                if self._enqueue(mid, pending):
                    actions.append(Wake(pending.envelope.target))
            except OutboxFullError:
                pending.last_error = "outbox full at retry"
        for mid in self.tracker.expired(now):
            pending = self._pending.pop(mid, None)
            if pending is not None:
                why = "no acknowledgement before the deadline"
                if pending.last_error:
                    why += f" (last error: {pending.last_error})"
                actions.append(Settle(mid, None, why, 0))
        return actions

    def next_deadline(self) -> float | None:
        """When ``on_timer`` has something to do next (None: nothing in flight)."""
        return self.tracker.next_deadline()

    def _enqueue(self, mid: int, pending: _Pending) -> bool:
        if mid in self._queued:
            return False
        self.outboxes.push(pending.envelope.target, mid, pending.priority)
        self._queued.add(mid)
        return True

    # -- views ------------------------------------------------------------------------------------

    def pending_ids(self) -> list[int]:
        return list(self._pending)

    def peer_signals(self, peer_id: str) -> tuple[float | None, float | None]:
        """(error rate 0..1, mean latency ms) of routed sends to a peer; None where nothing was sent."""
        t = self.traffic.get(peer_id)
        if t is None or t.sent == 0:
            return None, None
        lat = list(t.latencies_ms)
        return min(1.0, t.failed / t.sent), (sum(lat) / len(lat) if lat else None)

    def stats(self) -> dict[str, Any]:
        """The sender's part of the delivery stats."""
        return {
            **self.tracker.stats(),
            "in_flight": self.tracker.in_flight,
            "stray_acks": self.tracker.stray_acks + self.stray_acks,
            "outbox_backlog": {p: len(self.outboxes.for_peer(p)) for p in self.outboxes.peers_with_backlog()},
            "outbox_rejected": self.outbox_rejected,
        }


# -- fan-outs -------------------------------------------------------------------------------------


def _results(outcomes: Iterable[Outcome]) -> list[dict[str, Any]]:
    return [
        {
            "node": o.target,
            "success": o.ok,
            "message_id": o.message_id,
            "latency_ms": o.latency_ms,
            "response": o.response,
            **({"error": o.error} if o.error else {}),
        }
        for o in outcomes
    ]


class BroadcastRun:
    """NETWORKING-008: the message to every target (fail-fast); every send's outcome is awaited."""

    def __init__(self, targets: Iterable[str], template: SendRequest) -> None:
        self.targets = list(targets)
        self.template = replace(template, fail_fast=True)
        self.started = 0.0

    def begin(self, now: float) -> list[SendRequest]:
        self.started = now
        return [replace(self.template, target=t) for t in self.targets]

    def finish(self, outcomes: list[Outcome], now: float) -> dict[str, Any]:
        """The response, from the outcomes in target order."""
        collector = Broadcast(self.targets)
        for o in outcomes:
            if o.ok:
                collector.on_success(o.target, o.response)
            else:
                collector.on_failure(o.target, o.error or "failed")
        res = collector.result().to_dict((now - self.started) * 1000)
        res.update(message_type=self.template.message_type, priority=self.template.priority.value,
                   delivery=self.template.guarantee.value, results=_results(outcomes))
        return res


class _FanOutRun(abc.ABC):
    """Fail-fast AtLeastOnce sends to every target, fed back until ``done`` or ``deadline``."""

    def __init__(self, targets: Iterable[str], message_type: str, data: bytes, priority: Priority,
                 timeout_s: float) -> None:
        self.targets = list(targets)
        self.message_type, self.data, self.priority, self.timeout_s = message_type, data, priority, timeout_s
        self.started = self.deadline = 0.0

    def begin(self, now: float) -> list[SendRequest]:
        self.started, self.deadline = now, now + self.timeout_s
        return [SendRequest(t, self.message_type, self.data, self.priority, DeliveryGuarantee.AT_LEAST_ONCE, None,
                            self.timeout_s + FAN_OUT_GRACE_S, fail_fast=True) for t in self.targets]

    @property
    @abc.abstractmethod
    def done(self) -> bool:
        """The collector decided; the adapter may stop waiting for the other sends."""

    @abc.abstractmethod
    def on_outcome(self, outcome: Outcome, now: float) -> None:
        """One send finished at ``now``."""

    @abc.abstractmethod
    def finish(self, now: float) -> dict[str, Any]:
        """The response once done or past the deadline; outstanding targets count as timed out."""


class GatherRun(_FanOutRun):
    """NETWORKING-009: every target's answer until all answered or the deadline; late nodes time out."""

    def begin(self, now: float) -> list[SendRequest]:
        requests = super().begin(now)
        self._sg = ScatterGather(self.targets, self.deadline)
        return requests

    @property
    def done(self) -> bool:
        return self._sg.done

    def on_outcome(self, outcome: Outcome, now: float) -> None:
        if outcome.ok:  # it finished before the wait for it ended: never later than the deadline
            self._sg.on_response(outcome.target, min(now, self.deadline - 1e-9), outcome.response)
        else:
            self._sg.on_failure(outcome.target, outcome.error or "failed")

    def finish(self, now: float) -> dict[str, Any]:
        self._sg.check_timeout(max(now, self.deadline))
        res = self._sg.result().to_dict((now - self.started) * 1000)
        res["timed_out"] = [o["node"] for o in res["responses"] if o["status"] == "timeout"]
        return res


def vote_of(response: Any) -> str:
    """The vote an answer carries (``response["vote"]``); an answer without one accepts."""
    return response.get("vote", "ACCEPT") if isinstance(response, dict) else "ACCEPT"


class QuorumRun(_FanOutRun):
    """NETWORKING-010: done as soon as both the quorum and the consensus are decided (or impossible)."""

    def __init__(self, targets: Iterable[str], quorum_size: int, message_type: str, data: bytes,
                 priority: Priority, timeout_s: float) -> None:
        super().__init__(targets, message_type, data, priority, timeout_s)
        self._qc = QuorumCollector(self.targets, quorum_size)

    @property
    def done(self) -> bool:
        return self._qc.done

    def on_outcome(self, outcome: Outcome, now: float) -> None:
        if outcome.ok:
            self._qc.on_vote(outcome.target, vote_of(outcome.response), outcome.response)
        else:
            self._qc.on_failure(outcome.target, outcome.error or "failed")

    def finish(self, now: float) -> dict[str, Any]:
        if not self._qc.done:
            self._qc.timeout_all()
        res = self._qc.result().to_dict((now - self.started) * 1000)
        res["outcomes"] = [o.to_dict() for o in self._qc.outcomes()]
        return res
