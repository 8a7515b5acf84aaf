"""Health service: heartbeats, phi, checks, aggregation, probes, recovery (NETWORKING-014 to 019).

The asyncio adapter over the health cores. The node sends a ``Heartbeat`` each
``heartbeat.interval_ms`` to the connected peers ``heartbeat_targets`` names (the
node wires it into the mesh): this node's successors on the monitoring ring
(``monitor_ring.py``, ``[health] monitored_by_nr_of_members`` = k), so each
node sends to and is watched by min(k, N - 1) others, not all of them. This
service records the heartbeats of the peers it watches (its ring predecessors,
chosen by ``peer_watch.py`` from ``node.peers``, which keeps peers that went
away, so a killed node turns Suspected, then Failed at its k monitors) into a
``HeartbeatMonitor`` (one phi accrual detector per watched peer). A peer this
node does not watch is not in its heartbeat and phi lists.

* 014/015 read the monitor at the current time.
* 016 runs a ``HealthChecker`` (TCP, HTTP, gRPC and the custom checks of
  ``custom_checks_adapter.py``, each evaluated for the check's ``node_id``);
  ``endpoints.py`` maps a node-id host to the node's address.
* 017 feeds a ``HealthAggregator`` with, per node, the signals ``signals.py``
  gathers: phi (forced to the threshold when the heartbeat monitor already says
  Suspected/Failed), check results, and error rate / latency (this node: its
  request counters; peers: routed sends).
* 018 asks the node itself for its probes (``HealthProbeRequest``); when it
  cannot be reached the answer is this node's view: Dead / NotReady.
* 019 drives a ``RecoveryManager``: each due attempt is a real reconnect through
  ``node.connection_to``. A peer whose heartbeats turn Failed is put into
  recovery automatically (``auto_recover``).

A tick task every ``tick_ms`` measures event-loop lag (the liveness input) and
drives recovery timers. What a tick decides (which peers are watched, which
turned Failed, which attempts are due) is ``peer_watch.py``; the management
operations are ``api.py``; the wire messages ``messages.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from rustyray.health.aggregator import HealthAggregator, NodeSignals
from rustyray.health.api import HealthApi
from rustyray.health.checker import HealthChecker
from rustyray.health.config import HealthConfig
from rustyray.health.custom_checks_adapter import custom_checks
from rustyray.health.heartbeat import HeartbeatConfig, HeartbeatMonitor, PeerHeartbeat
from rustyray.health.liveness import ProbeInputs, ProbeReport, evaluate_probes
from rustyray.health.messages import HealthProbeReply, HealthProbeRequest
from rustyray.health.peer_watch import PeerWatch
from rustyray.health.phi import PhiConfig
from rustyray.health.recovery import RecoveryAttempt, RecoveryManager
from rustyray.health.signals import node_signals
from rustyray.protocol.control import Heartbeat
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext


def heartbeat_config(node: Host, settings: HealthConfig) -> HeartbeatConfig:
    """The monitor's timings from ``[heartbeat]``: phi tolerates 3 intervals of pause (seed defaults:
    1 s heartbeats, Suspected by phi after ~4.5 s and by the 5 s timeout)."""
    hb = node.config.heartbeat
    interval = hb.interval_ms / 1000.0
    timeout = hb.timeout_ms / 1000.0
    failed_after = settings.failed_after_ms / 1000.0 if settings.failed_after_ms else 3 * timeout
    phi = PhiConfig(
        threshold=hb.phi_threshold,
        acceptable_heartbeat_pause=3 * interval,
        first_heartbeat_estimate=interval,
        min_std_deviation=max(0.01, interval / 10),
    )
    return HeartbeatConfig(
        interval=interval, timeout=timeout, failed_after=max(failed_after, timeout), phi=phi
    )


class HealthService:
    def __init__(self, node: Host, *, membership: Any | None = None, routing: Any | None = None) -> None:
        self.node = node
        self.membership = membership
        self.routing = routing
        self.config = self.settings = node.config.cluster.health
        self.monitor = HeartbeatMonitor(heartbeat_config(node, self.settings))
        self.aggregator = HealthAggregator(self.config)
        self.recovery = RecoveryManager(self.config)
        self.checker = HealthChecker(clock=time.monotonic)
        self.watch = PeerWatch(node.node_id, self.monitor, self.recovery, auto_recover=self.settings.auto_recover,
                               tick_s=self.settings.tick_ms / 1000.0,
                               monitored_by=self.settings.monitored_by_nr_of_members)
        self.startup_error: str | None = None
        self.custom_checks = custom_checks(self)
        for name, check in self.custom_checks.items():
            self.checker.register_custom(name, check)
        node.on(Heartbeat, self._on_heartbeat)
        node.on(HealthProbeRequest, self._on_probe_request)
        self.api = HealthApi(self, clock=time.monotonic)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.watch.sync(self.node.peers, time.monotonic())
        self.checker.start()
        self.node.spawn(self._tick_loop(), name="health tick")

    async def stop(self) -> None:
        await self.checker.stop()

    def health(self) -> tuple[str, str]:
        return self.watch.verdict(self.node.peers, time.monotonic())

    # ------------------------------------------------------------------ heartbeats
    def _on_heartbeat(self, ctx: RequestContext, msg: Heartbeat) -> None:
        peer = msg.node_id or ctx.peer_id
        if peer and self.watch.accepts_heartbeat(peer):
            self.monitor.record(peer, time.monotonic())

    def on_peer_event(self, event: str, peer_id: str) -> None:
        if event == "learned":  # the ring changed: watch (and heartbeat) the new assignment now, not next tick
            self.watch.sync(self.node.peers, time.monotonic())

    def heartbeat_targets(self) -> frozenset[str]:
        """The peers the node's heartbeat loop sends to: this node's ring successors (as of the last sync)."""
        return self.watch.heartbeat_targets()

    def peer_rows(self, now: float) -> list[PeerHeartbeat]:
        """Heartbeat status of every peer this node monitors now (the API and the metrics read this).

        That is every known peer while ``monitored_by_nr_of_members`` >= N - 1, else this node's k ring
        predecessors; the aggregate (``node_signals``) likewise scores this node and the peers it monitors.
        """
        return self.watch.rows(self.node.peers, now)

    async def _tick_loop(self) -> None:
        period = self.settings.tick_ms / 1000.0
        while True:
            before = time.monotonic()
            await asyncio.sleep(period)
            peers = self.node.peers
            wanted = {n for n, p in peers.items() if p.wanted}
            for attempt in self.watch.tick(before, time.monotonic(), peers, wanted):
                self.node.spawn(self._attempt(attempt), name=f"recovery {attempt.node}")

    # ------------------------------------------------------------------ recovery
    async def _attempt(self, attempt: RecoveryAttempt) -> None:
        started = time.perf_counter()
        error: str | None = None
        try:
            await self.node.connection_to(attempt.node, timeout=self.node.config.transport.connect_timeout_s)
        except (ConnectionError, OSError, TimeoutError, KeyError) as exc:
            error = str(exc) or type(exc).__name__
        self.watch.on_attempt_result(attempt, error, time.monotonic(),
                                     duration_ms=(time.perf_counter() - started) * 1000, wall_time=time.time())

    # ------------------------------------------------------------------ probes
    def local_probes(self) -> ProbeReport:
        node = self.node
        now = time.monotonic()
        joined = bool(node.peers) or getattr(self.membership, "cluster_name", None) is not None
        last_tick = self.watch.last_tick
        return evaluate_probes(
            ProbeInputs(
                node=node.node_id,
                started=node.running and node.ready.is_set(),
                joined=joined or len(node.live_members()) <= 1,
                connected_peers=sum(1 for p in node.peers.values() if p.connected),
                cluster_size=len(set(node.live_members()) | set(node.peers) | {node.node_id}),
                last_tick_age_s=None if last_tick is None else now - last_tick,
                uptime_s=now - node.started_mono,
                startup_error=self.startup_error,
            ),
            self.config,
        )

    def _on_probe_request(self, ctx: RequestContext, msg: HealthProbeRequest) -> HealthProbeReply:
        r = self.local_probes()
        return HealthProbeReply(node=r.node, liveness=r.liveness.value, readiness=r.readiness.value,
                                startup=r.startup.value, reason=r.reason)

    async def request_probes(self, node_id: str) -> Message:
        """Ask ``node_id`` for its own probes (raises when it cannot be reached in ``probe_timeout_ms``)."""
        return await self.node.request(node_id, HealthProbeRequest(sender=self.node.node_id),
                                       timeout=self.settings.probe_timeout_ms / 1000.0)

    # ------------------------------------------------------------------ aggregation
    def node_signals(self, now: float) -> list[NodeSignals]:
        """The aggregator's inputs for every known node (this one first)."""
        routing = self.routing
        peer_signals = routing.peer_signals if routing is not None and hasattr(routing, "peer_signals") else None
        return node_signals(self.node.node_id, self.node.stats, self.peer_rows(now), self.checker.node_signals(),
                            threshold=self.monitor.config.phi.threshold, peer_signals=peer_signals)
