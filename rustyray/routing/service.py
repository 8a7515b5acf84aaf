"""Routing service: routed messages between live nodes (NETWORKING-007 to 013, 056, 057).

The asyncio adapter over the routing cores. A routed message is a ``RouteEnvelope``
written on this node's connection to the target; the target runs the handler for
its ``message_type`` (``HandlerRegistry``, per-node ``NodeContext``) and answers a
``RouteAck`` carrying the handler's result, correlated by ``message_id``.

Sending. Every envelope goes through a bounded ``PriorityOutbox`` per peer,
drained by one sender task per peer, so a Critical message overtakes a backlog of
Low ones and a slow peer can never grow an unbounded queue (a full outbox refuses
the message: 503). ``DeliveryTracker`` remembers each message until its ack or
deadline; for AtLeastOnce/ExactlyOnce one timer task re-queues due retransmissions,
always on the *current* connection to the peer (the node redials dropped peers by
itself; a message for a peer without a live connection waits for its next retry).
AtMostOnce is written once; if it cannot be written it fails at once.

Receiving. ExactlyOnce messages are deduplicated by idempotency key with a
``DedupWindow``: a redelivery is answered with the first result and
``duplicate=True`` without running the handler again; the window is saved to
``node_dir/dedup.bin`` every ``dedup_persist_interval_s`` and on stop, and restored
on start, so it survives an actor restart. AtMostOnce frames that arrive twice are
suppressed the same way (by source and message id); AtLeastOnce runs the handler
for every copy that arrives, as its name allows. The receive log (counts per type, last
N message ids) lets tests and the chaos soak check what was really processed.

A message to this node itself takes the same handler path without the network.
Load-balancer hooks: ``before_send(target)`` (may raise ``ApiError(429)``) and
``after_send(target, ok, latency_ms)`` around every routed send, if present.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from rustyray.errors import ApiError
from rustyray.protocol.errors import LocalProtocolError, ProtocolError
from rustyray.protocol.frame import MAX_FRAME_SIZE
from rustyray.routing.config import RoutingConfig
from rustyray.routing.dedup_journal import DedupJournal
from rustyray.routing.delivery import DedupWindow, DeliveryGuarantee, DeliveryTracker
from rustyray.routing.dispatch_core import Broadcast, QuorumCollector, ScatterGather, validate_quorum
from rustyray.routing.errors import (
    HandlerError,
    InvalidPayloadError,
    InvalidQuorumError,
    OutboxFullError,
    UnknownMessageTypeError,
)
from rustyray.routing.handlers import HandlerRegistry, NodeContext, default_registry
from rustyray.routing.messages import RouteAck, RouteEnvelope
from rustyray.routing.priority import PeerOutboxes, Priority
from rustyray.routing.record_log import RecordLog

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext
    from rustyray.transport.connection import Connection

MAX_PAYLOAD_BYTES = MAX_FRAME_SIZE - 64 * 1024
"""Largest routed ``data`` (JSON bytes): a frame also carries the envelope (type, ids, key) around it."""
log = logging.getLogger(__name__)

DEDUP_FILE = "dedup.bin"
DEDUP_JOURNAL = "dedup.journal"
RECORDS_FILE = "records.jsonl"
FAN_OUT_GRACE_S = 0.5
"""Seconds a fan-out send may outlive the fan-out deadline (then it is already counted as timed out)."""


@dataclass(frozen=True)
class RoutingServiceSettings:
    """Adapter knobs read from the ``[routing]`` table next to ``RoutingConfig``'s fields."""

    dedup_persist_interval_s: float = 1.0
    """Seconds between saves of the dedup window to ``node_dir/dedup.bin`` (only when it changed)."""

    receive_log_size: int = 256
    """Message ids kept in the receive log (the newest ones)."""

    record_log_size: int = 100_000
    """Records kept by the durable record log ``node_dir/records.jsonl`` (ChaosRecord); the file holds at most
    twice as many lines before it is compacted to the newest ``record_log_size``."""

    def validate(self) -> RoutingServiceSettings:
        if self.dedup_persist_interval_s <= 0:
            raise ValueError("dedup_persist_interval_s must be > 0")
        if self.receive_log_size < 1:
            raise ValueError("receive_log_size must be >= 1")
        if self.record_log_size < 1:
            raise ValueError("record_log_size must be >= 1")
        return self


def load_settings(section: dict[str, Any]) -> tuple[RoutingConfig, RoutingServiceSettings]:
    """Split the raw ``[routing]`` table; an unknown key is a ValueError naming it."""
    core_names = {f.name for f in dataclasses.fields(RoutingConfig)}
    svc_names = {f.name for f in dataclasses.fields(RoutingServiceSettings)}
    unknown = sorted(set(section) - core_names - svc_names)
    if unknown:
        raise ValueError(
            f"[routing] has no setting {unknown[0]!r}; known: {', '.join(sorted(core_names | svc_names))}"
        )
    core = RoutingConfig(**{k: v for k, v in section.items() if k in core_names}).validate()
    svc = RoutingServiceSettings(**{k: v for k, v in section.items() if k in svc_names}).validate()
    return core, svc


# -- error codes carried in RouteAck.error as "code|field|message" -------------------------------


def _err(code: str, message: str, field_name: str = "") -> str:
    return f"{code}|{field_name}|{message}"


def _rank(priority: str) -> int:
    try:
        return Priority.parse(priority).rank
    except ValueError:
        return Priority.NORMAL.rank


def _parse_err(text: str) -> tuple[str, str | None, str]:
    parts = text.split("|", 2)
    if len(parts) != 3:
        return "error", None, text
    return parts[0], parts[1] or None, parts[2]


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


@dataclass
class _Out:
    envelope: RouteEnvelope
    priority: Priority
    guarantee: DeliveryGuarantee
    future: asyncio.Future[tuple[RouteAck | None, str | None, int]]
    last_error: str | None = None


@dataclass
class _PeerTraffic:
    sent: int = 0
    failed: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=256))


class RoutingService:
    def __init__(self, node: Host, *, balancer: Any | None = None) -> None:
        self.node = node
        self.balancer = balancer
        """The load balancer that gates and picks targets (None: route without one)."""
        self.config, self.settings = load_settings(node.config.section("routing"))
        self.registry: HandlerRegistry = default_registry()
        self.records = RecordLog(node.config.node_dir / RECORDS_FILE, self.settings.record_log_size)
        self.context = NodeContext(node.node_id, records=self.records)
        self.tracker = DeliveryTracker(self.config, node.rng)
        self.dedup = DedupWindow.from_config(self.config)
        self.outboxes: PeerOutboxes[int] = PeerOutboxes(self.config.outbox_max_size)
        self._outgoing: dict[int, _Out] = {}
        self._queued: set[int] = set()
        self._senders: dict[str, asyncio.Task[Any]] = {}
        self._peer_wake: dict[str, asyncio.Event] = {}
        self._timer_wake = asyncio.Event()
        self._processing: dict[str, asyncio.Future[bytes]] = {}
        # ids stay unique across restarts, so a late ack from an earlier incarnation cannot settle a new message
        self._ids = itertools.count((node.incarnation << 40) + 1)
        self.journal = DedupJournal(node.config.node_dir / DEDUP_JOURNAL)
        self._dedup_dirty = False
        self.traffic: dict[str, _PeerTraffic] = {}
        self.stray_acks = 0
        self.outbox_rejected = 0
        # receive log
        self.received = 0
        self.processed_by_type: Counter[str] = Counter()
        self.duplicates_suppressed = 0
        self.handler_errors = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=self.settings.receive_log_size)
        node.on(RouteEnvelope, self._on_envelope)
        node.on(RouteAck, self._on_ack)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._restore_dedup()
        self._replay_journal()
        self.records.load()
        self.node.spawn(self._timer_loop(), name="routing timers")
        self.node.spawn(self._persist_loop(), name="routing dedup persist")

    async def stop(self) -> None:
        for out in list(self._outgoing.values()):
            if not out.future.done():
                out.future.set_result((None, "node stopping", 0))
        self._save_dedup()
        self.journal.close()
        self.records.close()

    def health(self) -> tuple[str, str]:
        backlog = len(self.outboxes)
        if backlog >= self.config.outbox_max_size:
            return "degraded", f"outbox backlog {backlog}"
        return "healthy", f"{self.tracker.in_flight} in flight, {len(self.dedup)} dedup keys"

    def _restore_dedup(self) -> None:
        path = self.node.config.node_dir / DEDUP_FILE
        try:
            raw = path.read_bytes()
        except OSError:
            return
        try:
            window = DedupWindow.from_bytes(raw, time.time())
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
            log.warning("%s ignores a corrupt %s: %s", self.node.node_id, path, exc)
            return
        # keep this node's bounds even if the file was written with others
        window.max_entries = self.config.dedup_max_entries
        window.max_age_s = self.config.dedup_max_age_s
        self.dedup = window

    def _replay_journal(self) -> None:
        """Keys processed after the last snapshot (written ahead of their acks) rejoin the window."""
        replayed = 0
        for key, wall, result in self.journal.replay():
            if key not in self.dedup:
                self.dedup.seen(key, wall)
                self.dedup.remember_result(key, result)
                replayed += 1
        if replayed:
            log.info("%s restored %d dedup keys from the journal", self.node.node_id, replayed)
            self._dedup_dirty = True

    def _save_dedup(self) -> None:
        # wall-clock ages survive a process restart (monotonic clocks do not)
        path = self.node.config.node_dir / DEDUP_FILE
        data = self.dedup.to_bytes(time.time())
        tmp = path.with_suffix(".tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            os.replace(tmp, path)
            self.journal.reset()
        except OSError as exc:
            log.warning("%s cannot save %s: %s", self.node.node_id, path, exc)
        self._dedup_dirty = False

    async def _persist_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.dedup_persist_interval_s)
            if self._dedup_dirty:
                self._save_dedup()

    # ------------------------------------------------------------------ validation
    def _known(self, node_id: str) -> bool:
        return node_id == self.node.node_id or node_id in self.node.peers

    def _request(self, message_type: str, priority: str, timeout_ms: float,
                 data: dict[str, Any] | None) -> tuple[Priority, float, bytes]:
        """Validate what every routing operation takes (422 naming the field)."""
        if not message_type:
            raise ApiError(422, "message_type must not be empty", "message_type")
        return self._priority(priority), self._timeout(timeout_ms), self._encode(data)

    @staticmethod
    def _priority(value: str) -> Priority:
        try:
            return Priority.parse(value)
        except ValueError as exc:
            raise ApiError(422, str(exc), "priority") from None

    @staticmethod
    def _guarantee(value: str) -> DeliveryGuarantee:
        try:
            return DeliveryGuarantee.parse(value)
        except ValueError as exc:
            raise ApiError(422, str(exc), "delivery") from None

    @staticmethod
    def _timeout(timeout_ms: float) -> float:
        if not isinstance(timeout_ms, int | float) or timeout_ms <= 0:
            raise ApiError(422, "timeout_ms must be a positive number of milliseconds", "timeout_ms")
        return float(timeout_ms) / 1000.0

    @staticmethod
    def _encode(data: Any) -> bytes:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ApiError(422, "data must be a JSON object", "data")
        try:
            payload = msgspec.json.encode(data)
        except (TypeError, msgspec.EncodeError) as exc:
            raise ApiError(422, f"data cannot be encoded: {exc}", "data") from None
        if len(payload) > MAX_PAYLOAD_BYTES:  # it could never be written: refuse now, not after the timeout
            raise ApiError(413, f"data of {len(payload)} bytes exceeds the {MAX_PAYLOAD_BYTES} byte limit "
                                f"of one message", "data")
        return payload

    def _targets(self, nodes: Any, field_name: str) -> list[str]:
        if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) and n for n in nodes):
            raise ApiError(422, f"{field_name} must be a non-empty list of node ids", field_name)
        if len(set(nodes)) != len(nodes):
            raise ApiError(422, f"{field_name} must not contain duplicates", field_name)
        unknown = [n for n in nodes if not self._known(n)]
        if unknown:
            raise ApiError(404, f"unknown node(s) {', '.join(unknown)} in {field_name}", field_name)
        return list(nodes)

    # ------------------------------------------------------------------ the send path
    def _lb(self) -> Any:
        return self.balancer

    async def _routed(
        self,
        target: str,
        message_type: str,
        data: bytes,
        priority: Priority,
        guarantee: DeliveryGuarantee,
        idempotency_key: str | None,
        timeout_s: float,
        *,
        fail_fast: bool = False,
    ) -> Outcome:
        """One routed send with the load-balancer hooks; ``before_send`` may raise ApiError."""
        if target != self.node.node_id and len(self.outboxes.for_peer(target)) >= self.outboxes.max_size:
            # local back-pressure, not the target's fault: refused before the load balancer admits it
            self.outbox_rejected += 1
            self.traffic.setdefault(target, _PeerTraffic()).failed += 1
            return Outcome(
                target,
                "",
                error=f"outbox to {target} is full ({self.outboxes.max_size} messages)",
                error_code="outbox_full",
            )
        lb = self._lb()
        if lb is not None and hasattr(lb, "before_send"):
            lb.before_send(target)
        outcome: Outcome | None = None
        try:
            outcome = await self._deliver(
                target,
                message_type,
                data,
                priority,
                guarantee,
                idempotency_key,
                timeout_s,
                fail_fast=fail_fast,
            )
            return outcome
        finally:  # exactly one after_send per admitted send, even when cancelled
            if lb is not None and hasattr(lb, "after_send"):
                ok = outcome is not None and outcome.acknowledged
                lb.after_send(target, ok, outcome.latency_ms if outcome is not None else 0.0)

    async def _routed_safe(self, target: str, *args: Any, **kw: Any) -> Outcome:
        """``_routed`` for fan-outs: a refusal by the load balancer is a failed send."""
        try:
            return await self._routed(target, *args, **kw)
        except ApiError as exc:
            return Outcome(target, "", error=exc.message, error_code=f"refused_{exc.status}")

    async def _deliver(
        self,
        target: str,
        message_type: str,
        data: bytes,
        priority: Priority,
        guarantee: DeliveryGuarantee,
        idempotency_key: str | None,
        timeout_s: float,
        *,
        fail_fast: bool = False,
    ) -> Outcome:
        mid = next(self._ids)
        start = time.perf_counter()
        now = time.monotonic()
        env = RouteEnvelope(
            message_id=mid,
            source=self.node.node_id,
            target=target,
            message_type=message_type,
            priority=priority.value,
            delivery=guarantee.value,
            idempotency_key=idempotency_key,
            data=data,
            attempt=1,
            sent_at=time.time(),
        )
        outcome = Outcome(target, f"msg-{mid}")
        traffic = self.traffic.setdefault(target, _PeerTraffic())
        traffic.sent += 1
        if target == self.node.node_id:
            self.tracker.track(mid, guarantee, now, deadline=now + timeout_s)
            ack = await self._process(env)
            self.tracker.on_ack(mid, time.monotonic(), ack.duplicate)
            result: tuple[RouteAck | None, str | None, int] = (ack, None, 1)
        elif fail_fast and self._conn(target) is None and (why := await self._dial(target, timeout_s)):
            traffic.failed += 1
            outcome.error, outcome.error_code = why, "unreachable"
            outcome.latency_ms = round((time.perf_counter() - start) * 1000, 3)
            return outcome
        else:
            fut: asyncio.Future[tuple[RouteAck | None, str | None, int]] = (
                asyncio.get_running_loop().create_future()
            )
            out = _Out(env, priority, guarantee, fut)
            self.tracker.track(mid, guarantee, now, deadline=now + timeout_s)
            self._outgoing[mid] = out
            try:
                self._enqueue(out)
            except OutboxFullError as exc:
                self.tracker.cancel(mid)
                self._outgoing.pop(mid, None)
                self.outbox_rejected += 1
                traffic.failed += 1
                outcome.error, outcome.error_code = f"outbox to {target} is full: {exc}", "outbox_full"
                return outcome
            self._timer_wake.set()
            try:
                result = await asyncio.wait_for(asyncio.shield(fut), timeout_s + 1.0)
            except TimeoutError:  # the tracker's deadline should have fired first
                self.tracker.cancel(mid)
                self._outgoing.pop(mid, None)
                result = (None, f"no acknowledgement within {timeout_s * 1000:g} ms", 0)
        ack, error, attempts = result
        outcome.latency_ms = round((time.perf_counter() - start) * 1000, 3)
        outcome.attempts = attempts
        if ack is None:
            traffic.failed += 1
            outcome.error, outcome.error_code = error or "not acknowledged", "not_acknowledged"
            return outcome
        traffic.latencies_ms.append(outcome.latency_ms)
        outcome.acknowledged = True
        outcome.duplicate = ack.duplicate
        if ack.result is not None:
            outcome.response = msgspec.json.decode(ack.result)
        if ack.error is not None:
            outcome.error_code, outcome.error_field, outcome.error = _parse_err(ack.error)
        return outcome

    async def _dial(self, peer_id: str, timeout_s: float) -> str | None:
        """Reach a peer without a live connection now; the reason when it cannot be reached."""
        try:
            await self.node.connection_to(
                peer_id, timeout=min(timeout_s, self.node.config.transport.connect_timeout_s)
            )
        except (ConnectionError, OSError, TimeoutError, KeyError) as exc:
            return f"{peer_id} is unreachable: {exc}"
        return None

    def _conn(self, peer_id: str) -> Connection | None:
        """The live connection to a peer: our outbound one, else any attached one it dialled."""
        peer = self.node.peers.get(peer_id)
        if peer is not None and peer.connected:
            return peer.conn
        for conn in list(self.node.connections.values()):
            if conn.peer_node_id == peer_id and not conn.is_closed and conn.handler is not None:
                return conn
        return None

    def _enqueue(self, out: _Out) -> None:
        mid = out.envelope.message_id
        if mid in self._queued:
            return
        target = out.envelope.target
        self.outboxes.push(target, mid, out.priority)
        self._queued.add(mid)
        wake = self._peer_wake.get(target)
        if wake is None:
            wake = self._peer_wake[target] = asyncio.Event()
        task = self._senders.get(target)
        if task is None or task.done():
            self._senders[target] = self.node.spawn(self._sender(target), name=f"routing sender {target}")
        wake.set()

    async def _sender(self, peer_id: str) -> None:
        wake = self._peer_wake[peer_id]
        while True:
            box = self.outboxes.for_peer(peer_id)
            if not box:
                wake.clear()
                await wake.wait()
                continue
            _, mid = box.pop()
            self._queued.discard(mid)
            out = self._outgoing.get(mid)
            if out is None or not self.tracker.is_in_flight(mid):
                continue
            conn = self._conn(peer_id)
            if conn is None and out.guarantee.retries:
                # keep its place by priority rather than falling back to the retry timer, and (re)dial
                box.push(mid, out.priority)
                self._queued.add(mid)
                with contextlib.suppress(ConnectionError, OSError, TimeoutError, KeyError):
                    await self.node.connection_to(peer_id, timeout=0.5)
                if self._conn(peer_id) is None:
                    await asyncio.sleep(0.05)
                continue
            if conn is None:
                self._not_sent(out, f"{peer_id} is not connected")
                continue
            env = out.envelope
            attempt = self.tracker.attempt(mid)
            if attempt != env.attempt:
                env = msgspec.structs.replace(env, attempt=attempt)
            try:
                self.node.send_on(conn, env, flags=out.priority.rank << 6)
                await conn.drain()
            except (ConnectionError, ProtocolError) as exc:
                # a message we may not encode (over the frame limit) fails the same way on every retry
                self._not_sent(out, f"write to {peer_id} failed: {exc}", final=isinstance(exc, LocalProtocolError))

    def _not_sent(self, out: _Out, reason: str, *, final: bool = False) -> None:
        out.last_error = reason
        if out.guarantee.retries and not final:
            return  # the next retry goes out on whatever connection exists then
        mid = out.envelope.message_id
        if self.tracker.cancel(mid):
            self.tracker.counters(out.guarantee).failed += 1
        self._outgoing.pop(mid, None)
        if not out.future.done():
            out.future.set_result((None, reason, 1))

    async def _timer_loop(self) -> None:
        while True:
            nd = self.tracker.next_deadline()
            self._timer_wake.clear()
            delay = None if nd is None else nd - time.monotonic()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._timer_wake.wait(), delay)
            now = time.monotonic()
            for mid in self.tracker.due(now):
                out = self._outgoing.get(mid)
                if out is None:
                    continue
                try:
                    self._enqueue(out)
                except OutboxFullError:
                    out.last_error = "outbox full at retry"
            for mid in self.tracker.expired(now):
                out = self._outgoing.pop(mid, None)
                if out is not None and not out.future.done():
                    why = "no acknowledgement before the deadline"
                    if out.last_error:
                        why += f" (last error: {out.last_error})"
                    out.future.set_result((None, why, 0))

    def _on_ack(self, ctx: RequestContext, ack: RouteAck) -> None:
        out = self._outgoing.get(ack.message_id)
        if out is None or (ctx.peer_id is not None and ctx.peer_id != out.envelope.target):
            self.stray_acks += 1
            return
        settled = self.tracker.on_ack(ack.message_id, time.monotonic(), ack.duplicate)
        if settled is None:
            self.stray_acks += 1
            return
        self._outgoing.pop(ack.message_id, None)
        if not out.future.done():
            out.future.set_result((ack, None, settled.attempts))

    # ------------------------------------------------------------------ the receive path
    def _on_envelope(self, ctx: RequestContext, env: RouteEnvelope) -> Any:
        return self._receive(ctx.conn, env)

    async def _receive(self, conn: Connection, env: RouteEnvelope) -> None:
        ack = await self._process(env)
        for candidate in (conn, self._conn(env.source)):
            if candidate is None or candidate.is_closed:
                continue
            try:
                self.node.send_on(candidate, ack, flags=_rank(env.priority) << 6)
                return
            except (ConnectionError, ProtocolError):
                continue

    async def _process(self, env: RouteEnvelope) -> RouteAck:
        """Run the handler (once per key for ExactlyOnce) and build the acknowledgement."""
        self.received += 1
        if env.target != self.node.node_id:
            return RouteAck(
                message_id=env.message_id, error=_err("misrouted", f"this is {self.node.node_id}")
            )
        try:
            guarantee = DeliveryGuarantee.parse(env.delivery)
        except ValueError as exc:
            return RouteAck(message_id=env.message_id, error=_err("invalid_delivery", str(exc), "delivery"))
        if guarantee is DeliveryGuarantee.AT_LEAST_ONCE:
            return self._ack(env, await self._run(env), duplicate=False)
        if guarantee is DeliveryGuarantee.AT_MOST_ONCE:
            # never retried, but the transport may still deliver a frame twice: suppress it by
            # message id (qualified by the first send time, since ids restart with the sender)
            key = f"amo:{env.source}/{env.message_id}/{env.sent_at!r}"
        else:
            key = DedupWindow.key_for(env.source, env.message_id, env.idempotency_key)
        waiter = self._processing.get(key)
        if waiter is not None:
            self.duplicates_suppressed += 1
            return self._ack(env, await asyncio.shield(waiter), duplicate=True)
        if self.dedup.seen(key, time.time()):
            self.duplicates_suppressed += 1
            return self._ack(env, self.dedup.result(key), duplicate=True)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._processing[key] = fut
        try:
            stored = await self._run(env)
        finally:
            self._processing.pop(key, None)
        self.dedup.remember_result(key, stored)
        self.journal.append(key, time.time(), stored)  # before the ack leaves: survives a kill
        self._dedup_dirty = True
        fut.set_result(stored)
        return self._ack(env, stored, duplicate=False)

    @staticmethod
    def _ack(env: RouteEnvelope, stored: bytes | None, duplicate: bool) -> RouteAck:
        if stored is None:
            return RouteAck(message_id=env.message_id, duplicate=duplicate)
        body = msgspec.json.decode(stored)
        result = None if body.get("result") is None else msgspec.json.encode(body["result"])
        return RouteAck(
            message_id=env.message_id, duplicate=duplicate, result=result, error=body.get("error")
        )

    async def _run(self, env: RouteEnvelope) -> bytes:
        """Dispatch to the handler; returns the stored form ``{"result", "error"}`` (JSON)."""
        result: dict[str, Any] | None = None
        error: str | None = None
        try:
            data = msgspec.json.decode(env.data) if env.data else {}
        except msgspec.DecodeError as exc:
            error = _err("invalid_payload", f"data is not JSON: {exc}", "data")
        else:
            try:
                result = await self.registry.dispatch(self.context, env.message_type, data)
            except InvalidPayloadError as exc:
                error = _err("invalid_payload", str(exc), f"data.{exc.field}" if exc.field else "data")
            except HandlerError as exc:
                if isinstance(exc, UnknownMessageTypeError):
                    error = _err("unknown_message_type", str(exc), "message_type")
                else:
                    error = _err("handler_error", str(exc))
            except Exception as exc:
                log.exception("routing handler %s failed on %s", env.message_type, self.node.node_id)
                error = _err("handler_error", f"{type(exc).__name__}: {exc}")
        if error is None or not error.startswith("unknown_message_type"):
            self.processed_by_type[env.message_type] += 1
            self.recent.append(
                {
                    "message_id": f"{env.source}/msg-{env.message_id}",
                    "type": env.message_type,
                    "priority": env.priority,
                    "delivery": env.delivery,
                    "attempt": env.attempt,
                }
            )
        if error is not None:
            self.handler_errors += 1
        return msgspec.json.encode({"result": result, "error": error})

    # ------------------------------------------------------------------ API
    async def api_send(
        self,
        target_node: str,
        message_type: str,
        data: dict[str, Any] | None = None,
        priority: str = "Normal",
        delivery: str = "AtLeastOnce",
        idempotency_key: str | None = None,
        timeout_ms: float = 5000,
    ) -> dict[str, Any]:
        """NETWORKING-007: route one message to ``target_node`` and report its acknowledgement."""
        prio, timeout_s, payload = self._request(message_type, priority, timeout_ms, data)
        guarantee = self._guarantee(delivery)
        if guarantee is DeliveryGuarantee.EXACTLY_ONCE and not idempotency_key:
            raise ApiError(422, "ExactlyOnce delivery needs an idempotency_key", "idempotency_key")
        if not self._known(target_node):
            raise ApiError(404, f"unknown node {target_node!r}", "target_node")
        outcome = await self._routed(
            target_node, message_type, payload, prio, guarantee, idempotency_key, timeout_s
        )
        if outcome.error_code == "outbox_full":
            raise ApiError(503, outcome.error or "outbox full", "target_node")
        if outcome.error_code in ("unknown_message_type", "invalid_payload"):
            raise ApiError(422, outcome.error or "rejected", outcome.error_field or "data")
        out: dict[str, Any] = {
            "success": outcome.ok,
            "message_id": outcome.message_id,
            "routed_to": target_node,
            "latency_ms": outcome.latency_ms,
            "priority": prio.value,
            "delivery": guarantee.value,
            "acknowledged": outcome.acknowledged,
            "duplicate": outcome.duplicate,
            "attempts": outcome.attempts,
            "response": outcome.response,
        }
        if outcome.error is not None:
            out["error"] = outcome.error
        return out

    async def api_broadcast(
        self,
        message_type: str,
        data: dict[str, Any] | None = None,
        priority: str = "Normal",
        timeout_ms: float = 5000,
        delivery: str = "AtLeastOnce",
    ) -> dict[str, Any]:
        """NETWORKING-008: the message to every live member, this node included."""
        prio, timeout_s, payload = self._request(message_type, priority, timeout_ms, data)
        guarantee = self._guarantee(delivery)
        targets = list(dict.fromkeys(self.node.live_members()))
        key = (
            f"bcast-{self.node.node_id}-{self.node.incarnation}-{next(self._ids)}"
            if guarantee is DeliveryGuarantee.EXACTLY_ONCE
            else None
        )
        start = time.perf_counter()
        outcomes = await asyncio.gather(
            *(
                self._routed_safe(t, message_type, payload, prio, guarantee, key, timeout_s, fail_fast=True)
                for t in targets
            )
        )
        collector = Broadcast(targets)
        for o in outcomes:
            if o.ok:
                collector.on_success(o.target, o.response)
            else:
                collector.on_failure(o.target, o.error or "failed")
        res = collector.result().to_dict((time.perf_counter() - start) * 1000)
        res.update(
            message_type=message_type,
            priority=prio.value,
            delivery=guarantee.value,
            results=[
                {
                    "node": o.target,
                    "success": o.ok,
                    "message_id": o.message_id,
                    "latency_ms": o.latency_ms,
                    "response": o.response,
                    **({"error": o.error} if o.error else {}),
                }
                for o in outcomes
            ],
        )
        return res

    async def _fan_out(
        self,
        targets: list[str],
        message_type: str,
        payload: bytes,
        prio: Priority,
        timeout_s: float,
        on_done: Any,
        done: Any,
    ) -> None:
        """Send to all targets at once; feed outcomes to ``on_done`` until ``done()`` or the deadline."""
        # each send may outlive the fan-out's deadline a little, so a slow node is reported
        # timed out by the collector rather than as a failed send
        deadline = time.monotonic() + timeout_s
        pending = {
            self.node.spawn(
                self._routed_safe(
                    t,
                    message_type,
                    payload,
                    prio,
                    DeliveryGuarantee.AT_LEAST_ONCE,
                    None,
                    timeout_s + FAN_OUT_GRACE_S,
                    fail_fast=True,
                ),
                name=f"fan-out {t}",
            )
            for t in targets
        }
        while pending and not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            finished, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for task in finished:
                on_done(task.result())

    async def api_scatter_gather(
        self,
        target_nodes: list[str],
        message_type: str,
        data: dict[str, Any] | None = None,
        timeout_ms: float = 5000,
        priority: str = "Normal",
    ) -> dict[str, Any]:
        """NETWORKING-009: ask every target, gather the answers; late nodes are marked timed out."""
        prio, timeout_s, payload = self._request(message_type, priority, timeout_ms, data)
        targets = self._targets(target_nodes, "target_nodes")
        start = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        sg = ScatterGather(targets, deadline)

        def record(o: Outcome) -> None:
            if o.ok:
                sg.on_response(o.target, min(time.monotonic(), deadline - 1e-9), o.response)
            else:
                sg.on_failure(o.target, o.error or "failed")

        await self._fan_out(targets, message_type, payload, prio, timeout_s, record, lambda: sg.done)
        sg.check_timeout(max(time.monotonic(), deadline))
        res = sg.result().to_dict((time.perf_counter() - start) * 1000)
        res["timed_out"] = [o["node"] for o in res["responses"] if o["status"] == "timeout"]
        return res

    async def api_quorum(
        self,
        nodes: list[str],
        quorum_size: int,
        message_type: str,
        data: dict[str, Any] | None = None,
        timeout_ms: float = 3000,
        priority: str = "Normal",
    ) -> dict[str, Any]:
        """NETWORKING-010: stop as soon as the quorum and the consensus are decided (or impossible)."""
        prio, timeout_s, payload = self._request(message_type, priority, timeout_ms, data)
        targets = self._targets(nodes, "nodes")
        try:
            validate_quorum(len(targets), quorum_size)
        except InvalidQuorumError as exc:
            raise ApiError(422, str(exc), "quorum_size") from None
        start = time.perf_counter()
        qc = QuorumCollector(targets, quorum_size)

        def record(o: Outcome) -> None:
            if o.ok:
                vote = o.response.get("vote", "ACCEPT") if isinstance(o.response, dict) else "ACCEPT"
                qc.on_vote(o.target, vote, o.response)
            else:
                qc.on_failure(o.target, o.error or "failed")

        await self._fan_out(targets, message_type, payload, prio, timeout_s, record, lambda: qc.done)
        if not qc.done:
            qc.timeout_all()
        res = qc.result().to_dict((time.perf_counter() - start) * 1000)
        res["outcomes"] = [o.to_dict() for o in qc.outcomes()]
        return res

    def api_delivery_stats(self) -> dict[str, Any]:
        """Per guarantee: sent, acknowledged, retried, deduplicated, failed; plus receiver-side numbers."""
        return {
            "node": self.node.node_id,
            **self.tracker.stats(),
            "in_flight": self.tracker.in_flight,
            "stray_acks": self.tracker.stray_acks + self.stray_acks,
            "outbox_backlog": {p: len(self.outboxes.for_peer(p)) for p in self.outboxes.peers_with_backlog()},
            "outbox_rejected": self.outbox_rejected,
            "receiver": {
                "received": self.received,
                "processed": sum(self.processed_by_type.values()),
                "duplicates_suppressed": self.duplicates_suppressed,
                "handler_errors": self.handler_errors,
                "dedup": self.dedup.stats(),
            },
        }

    def api_receive_log(self, after: int | None = None, limit: int = 1000) -> dict[str, Any]:
        """What this node's handlers processed: counts per type, recent ids, the handler state, and a page
        of the durable record log (``after``: records with a higher index; default the newest ``limit``)."""
        if after is not None and (not isinstance(after, int) or after < -1):
            raise ApiError(422, "after must be an integer >= -1", "after")
        if not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ApiError(422, "limit must be 1..10000", "limit")
        return {
            "node": self.node.node_id,
            "received": self.received,
            "processed": sum(self.processed_by_type.values()),
            "processed_by_type": dict(self.processed_by_type),
            "duplicates_suppressed": self.duplicates_suppressed,
            "handler_errors": self.handler_errors,
            "recent": list(self.recent),
            "config": dict(self.context.config),
            "counters": dict(self.context.counters),
            "message_types": self.registry.message_types(),
            "records": self.records.read(after, limit),
        }

    # ------------------------------------------------------------------ for other services
    def peer_signals(self, peer_id: str) -> tuple[float | None, float | None]:
        """(error rate 0..1, mean latency ms) of routed sends to a peer; None where nothing was sent."""
        t = self.traffic.get(peer_id)
        if t is None or t.sent == 0:
            return None, None
        lat = list(t.latencies_ms)
        return min(1.0, t.failed / t.sent), (sum(lat) / len(lat) if lat else None)

    # ------------------------------------------------------------------ fault injection (benchmarks, chaos)
    def api_fault_injection(
        self,
        drop: float = 0.0,
        duplicate: float = 0.0,
        delay: float = 0.0,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Drop / duplicate / delay this node's outbound routed frames (envelopes and acks) with the given
        probabilities, so loss can be injected into a live cluster; all zero turns injection off. Reports
        what the injector did since it was turned on."""
        import random

        from rustyray.routing.fault_injection import FaultConfig, FaultInjector

        current: FaultInjector | None = getattr(self, "_fault_injector", None)
        for name, value in (("drop", drop), ("duplicate", duplicate), ("delay", delay)):
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ApiError(422, f"{name} must be a probability in [0, 1]", name)
        if drop + duplicate + delay > 1.0:
            raise ApiError(422, "drop + duplicate + delay must be at most 1", "drop")
        counters = current.stats() if current is not None else None
        if current is not None:
            current.uninstall()
            self._fault_injector = None
        enabled = drop > 0 or duplicate > 0 or delay > 0
        if enabled:
            cfg = FaultConfig(drop=float(drop), duplicate=float(duplicate), delay=float(delay))
            self._fault_injector = FaultInjector(self.node, cfg, random.Random(seed)).install()
        return {"node": self.node.node_id, "enabled": enabled,
                "drop": drop, "duplicate": duplicate, "delay": delay, "seed": seed,
                "previous_counters": counters}
