"""Routing service: routed messages between live nodes (NETWORKING-007 to 013, 056, 057).

The asyncio adapter over the routing cores. A routed message is a ``RouteEnvelope``
written on this node's connection to the target; the target runs the handler for
its ``message_type`` (``HandlerRegistry``, per-node ``NodeContext``) and answers a
``RouteAck`` carrying the handler's result, correlated by ``message_id``.

What is decided where:

* ``send_core.SendCore`` (``self.sending``): message ids, outbox admission (a full outbox
  refuses: 503), tracking and retransmission, which message a peer's sender writes next, and
  settlement; the fan-out runs (``BroadcastRun``, ``GatherRun``, ``QuorumRun``) decide completion.
* ``receive_core.ReceiveCore`` (``self.receiving``): dedup keys, waiting for a first run still in
  progress, journal before ack, what a duplicate is answered, and the receive log.
* ``api.RoutingApi`` (``self.api``): the operations' validation and response bodies.

This module keeps the I/O and the wiring: the futures that callers wait on, one timer task re-armed
at the send core's next deadline, the handler runs, and the acks. Beside it, ``outbox_runner`` holds
the one sender task per peer that drains its bounded ``PriorityOutbox`` on the *current* connection
(the node redials dropped peers by itself), and ``dedup_store_adapter`` the dedup files (the window
is saved to ``node_dir/dedup.bin`` every ``dedup_persist_interval_s`` when it changed and on stop,
and restored on start with the write-ahead journal on top), and ``shard_store_adapter`` the node's
SQLite shard that the query handlers read. The clock is read once per event and passed to the cores.

A message to this node itself takes the same handler path without the network.
Load-balancer hooks: ``before_send(target)`` (may raise a ``DomainError``, TOO_MANY_REQUESTS or UNAVAILABLE) and
``after_send(target, ok, latency_ms)`` around every routed send, if present.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from rustyray.errors import DomainError
from rustyray.protocol.errors import ProtocolError
from rustyray.routing.api import RoutingApi
from rustyray.routing.dedup_store_adapter import DedupStore
from rustyray.routing.errors import HandlerError
from rustyray.routing.fault_injection import FaultConfig, FaultInjector
from rustyray.routing.handlers import HandlerRegistry, NodeContext, default_registry
from rustyray.routing.load_runner import run_load
from rustyray.routing.messages import RouteAck, RouteEnvelope
from rustyray.routing.outbox_runner import OutboxRunner
from rustyray.routing.priority import frame_flags
from rustyray.routing.receive_core import AwaitFirst, Handled, ReceiveCore, Reply, handler_error
from rustyray.routing.record_log import RecordLog
from rustyray.routing.send_core import (
    Action,
    BroadcastRun,
    GatherRun,
    Outcome,
    QuorumRun,
    SendCore,
    SendRequest,
    Settle,
    Wake,
)
from rustyray.routing.shard_store_adapter import ShardStore

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext
    from rustyray.transport.connection import Connection

log = logging.getLogger(__name__)

RECORDS_FILE = "records.jsonl"


class RoutingService:
    def __init__(self, node: Host, *, balancer: Any | None = None) -> None:
        self.node = node
        self.balancer = balancer
        """The load balancer that gates and picks targets (None: route without one)."""
        self.config = self.settings = node.config.cluster.routing
        self.registry: HandlerRegistry = default_registry()
        self.records = RecordLog(node.config.node_dir / RECORDS_FILE, self.settings.record_log_size)
        self.shards = ShardStore.for_node(node.config.node_dir, node.node_id, self.settings)
        """The SQLite shard QueryRequest / ShardQuery run against (``[routing] shard_path``, demo data)."""
        self.context = NodeContext(node.node_id, records=self.records, shards=self.shards)
        self.sending = SendCore(node.node_id, node.incarnation, self.config, node.rng)
        self.receiving = ReceiveCore(node.node_id, self.config, self.settings.receive_log_size)
        self.dedup_files = DedupStore(node.config.node_dir, node.node_id)
        self._waiting: dict[int, asyncio.Future[Settle]] = {}
        """Callers waiting for the settlement of a message in the send core, by message id."""
        self._first_runs: dict[str, asyncio.Future[bytes]] = {}
        """Stored results of handler runs still in progress, by dedup key (copies wait for them)."""
        self.senders = OutboxRunner(node, self.sending, self._conn, self._settle)
        self._timer_wake = asyncio.Event()
        self._faults: FaultInjector | None = None
        self._wall_offset = time.time() - time.monotonic()  # stamps sent_at without a second clock read
        node.on(RouteEnvelope, self._on_envelope)
        node.on(RouteAck, self._on_ack)
        self.api = RoutingApi(self)

    @staticmethod
    def _clock() -> float:
        return time.monotonic()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.dedup_files.restore(self.receiving)
        self.records.load()
        self.node.spawn(self._timer_loop(), name="routing timers")
        self.node.spawn(self._persist_loop(), name="routing dedup persist")

    async def stop(self) -> None:
        for mid, fut in list(self._waiting.items()):
            if not fut.done():
                fut.set_result(Settle(mid, None, "node stopping", 0))
        self._save_dedup()
        self.dedup_files.close()
        self.records.close()

    def health(self) -> tuple[str, str]:
        backlog = len(self.sending.outboxes)
        if backlog >= self.config.outbox_max_size:
            return "degraded", f"outbox backlog {backlog}"
        return "healthy", f"{self.sending.tracker.in_flight} in flight, {len(self.receiving.dedup)} dedup keys"

    def _save_dedup(self) -> None:
        self.dedup_files.save(self.receiving)

    async def _persist_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.dedup_persist_interval_s)
            if self.receiving.dirty:
                self._save_dedup()

    # ------------------------------------------------------------------ the send path
    async def run_load(self, make: Any, *, in_flight: int, seconds: float) -> tuple[float, dict[str, Any]]:
        """``load_run``'s sends, on this node's event loop (``load_runner``)."""
        return await run_load(self.route, make, in_flight=in_flight, seconds=seconds)

    async def route(self, req: SendRequest) -> Outcome:
        """One routed send with the load-balancer hooks; ``before_send`` may raise DomainError."""
        refused = self.sending.admit(req)  # local back-pressure, not the target's fault: before the balancer
        if refused is not None:
            return refused
        lb = self.balancer
        if lb is not None and hasattr(lb, "before_send"):
            lb.before_send(req.target)
        outcome: Outcome | None = None
        try:
            outcome = await self._deliver(req)
            return outcome
        finally:  # exactly one after_send per admitted send, even when cancelled
            if lb is not None and hasattr(lb, "after_send"):
                ok = outcome is not None and outcome.acknowledged
                lb.after_send(req.target, ok, outcome.latency_ms if outcome is not None else 0.0)

    async def _route_safe(self, req: SendRequest) -> Outcome:
        """``route`` for fan-outs: a refusal by the load balancer is a failed send."""
        try:
            return await self.route(req)
        except DomainError as exc:
            return Outcome(req.target, "", error=exc.message, error_code=f"refused_{exc.kind.value}")

    async def _deliver(self, req: SendRequest) -> Outcome:
        core = self.sending
        started = self._clock()
        env = core.open(req, started + self._wall_offset)
        if req.target == self.node.node_id:
            core.track_local(env, req, started)
            ack = await self._process(env)
            now = self._clock()
            settle = core.local_done(env, ack, now)
        elif req.fail_fast and self._conn(req.target) is None and (why := await self._dial(req.target, req.timeout_s)):
            return core.unreachable(req, env, why, started, self._clock())
        else:
            queued = core.submit(env, req, started)
            if isinstance(queued, Outcome):
                return queued
            fut = self._waiting[env.message_id] = asyncio.get_running_loop().create_future()
            self._apply([queued])
            self._timer_wake.set()
            try:
                settle = await asyncio.wait_for(asyncio.shield(fut), req.timeout_s + 1.0)
            except TimeoutError:  # the send core's deadline should have fired first
                self._waiting.pop(env.message_id, None)
                settle = core.give_up(env.message_id, req.timeout_s)
            now = self._clock()
        return core.finish(req, env, settle, started, now)

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

    def _apply(self, actions: list[Action]) -> None:
        """Carry out the send core's actions: wake a peer's sender, or hand a settlement to its caller."""
        for action in actions:
            if isinstance(action, Wake):
                self.senders.wake(action.peer)
            else:
                self._settle(action)

    def _settle(self, settle: Settle) -> None:
        fut = self._waiting.pop(settle.message_id, None)
        if fut is not None and not fut.done():
            fut.set_result(settle)

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.sending.next_deadline()
            self._timer_wake.clear()
            delay = None if deadline is None else deadline - self._clock()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._timer_wake.wait(), delay)
            self._apply(self.sending.on_timer(self._clock()))

    def _on_ack(self, ctx: RequestContext, ack: RouteAck) -> None:
        settled = self.sending.on_ack(ack, ctx.peer_id, self._clock())
        if settled is not None:
            self._settle(settled)

    # ------------------------------------------------------------------ fan-outs
    async def broadcast(self, run: BroadcastRun) -> dict[str, Any]:
        """Send to every target at once and wait for every outcome."""
        outcomes = await asyncio.gather(*(self._route_safe(r) for r in run.begin(self._clock())))
        return run.finish(list(outcomes), self._clock())

    async def fan_out(self, run: GatherRun | QuorumRun) -> dict[str, Any]:
        """Send to every target at once; feed the outcomes to ``run`` until it is done or its deadline passed."""
        now = self._clock()
        pending = {self.node.spawn(self._route_safe(r), name=f"fan-out {r.target}") for r in run.begin(now)}
        while pending and not run.done and now < run.deadline:
            finished, pending = await asyncio.wait(
                pending, timeout=run.deadline - now, return_when=asyncio.FIRST_COMPLETED
            )
            now = self._clock()
            for task in finished:
                run.on_outcome(task.result(), now)
        return run.finish(now)

    # ------------------------------------------------------------------ the receive path
    def _on_envelope(self, ctx: RequestContext, env: RouteEnvelope) -> Any:
        return self._receive(ctx.conn, env)

    async def _receive(self, conn: Connection, env: RouteEnvelope) -> None:
        ack = await self._process(env)
        for candidate in (conn, self._conn(env.source)):
            if candidate is None or candidate.is_closed:
                continue
            try:
                self.node.send_on(candidate, ack, flags=frame_flags(env.priority))
                return
            except (ConnectionError, ProtocolError):
                continue

    async def _process(self, env: RouteEnvelope) -> RouteAck:
        """Run the handler as the receive core decides (once per key for ExactlyOnce); the acknowledgement."""
        decision = self.receiving.on_envelope(env, time.time())
        if isinstance(decision, Reply):
            return decision.ack
        if isinstance(decision, AwaitFirst):
            return self.receiving.duplicate_ack(env, await asyncio.shield(self._first_runs[decision.key]))
        key, first = decision.key, None
        if key is not None:
            first = self._first_runs[key] = asyncio.get_running_loop().create_future()
        try:
            handled = await self._run(env, key)
        finally:
            if key is not None:
                self._first_runs.pop(key, None)
                self.receiving.abandon(key)  # a no-op once handled
        if handled.journal is not None:  # before the ack leaves: survives a kill
            self.dedup_files.append(handled.journal)
        if first is not None:
            first.set_result(handled.stored)
        return handled.ack

    async def _run(self, env: RouteEnvelope, key: str | None) -> Handled:
        """Dispatch to the handler; an exception becomes the acknowledged error."""
        data, error = self.receiving.payload(env)
        result: dict[str, Any] | None = None
        if error is None:
            try:
                result = await self.registry.dispatch(self.context, env.message_type, data)
            except Exception as exc:
                if not isinstance(exc, HandlerError):
                    log.exception("routing handler %s failed on %s", env.message_type, self.node.node_id)
                error = handler_error(exc)
        return self.receiving.on_handled(env, key, result, error, time.time())

    # ------------------------------------------------------------------ for other services and the API
    def peer_signals(self, peer_id: str) -> tuple[float | None, float | None]:
        """(error rate 0..1, mean latency ms) of routed sends to a peer; None where nothing was sent."""
        return self.sending.peer_signals(peer_id)

    def inject_faults(self, drop: float, duplicate: float, delay: float, seed: int | None, *,
                      enabled: bool) -> dict[str, int] | None:
        """Replace the fault injector on this node's outbound frames (none unless ``enabled``); the old counters."""
        current, self._faults = self._faults, None
        if current is None:
            counters = None
        else:
            counters = current.stats()
            current.uninstall()
        if enabled:
            cfg = FaultConfig(drop=drop, duplicate=duplicate, delay=delay)
            self._faults = FaultInjector(self.node, cfg, random.Random(seed)).install()
        return counters
