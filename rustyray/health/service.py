"""Health service: heartbeats, phi, checks, aggregation, probes, recovery (NETWORKING-014 to 019).

The asyncio adapter over the health cores. The node already sends a
``Heartbeat`` to every connected peer each ``heartbeat.interval_ms``; this
service records each one into a ``HeartbeatMonitor`` (one phi accrual detector
per peer) for every peer in ``node.peers``, which keeps peers that went away,
so a killed node turns Suspected, then Failed.

* 014/015 read the monitor at the current time.
* 016 runs a ``HealthChecker`` (TCP, HTTP, gRPC and the custom checks named in
  ``CUSTOM_CHECKS``, each evaluated for the check's ``node_id``).
* 017 feeds a ``HealthAggregator`` with, per node: phi (forced to the threshold
  when the heartbeat monitor already says Suspected/Failed), check results, and
  error rate / latency (this node: its request counters; peers: routed sends).
* 018 asks the node itself for its probes (``HealthProbeRequest``); when it
  cannot be reached the answer is this node's view: Dead / NotReady.
* 019 drives a ``RecoveryManager``: each due attempt is a real reconnect through
  ``node.connection_to``. A peer whose heartbeats turn Failed is put into
  recovery automatically (``auto_recover``).

A tick task every ``tick_ms`` measures event-loop lag (the liveness input) and
drives recovery timers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rustyray.errors import ApiError
from rustyray.health.aggregator import HealthAggregator, NodeSignals
from rustyray.health.checker import HealthChecker, HealthCheckSpec
from rustyray.health.config import HealthConfig
from rustyray.health.errors import RecoveryError, UnknownCheckError, UnsupportedCheckError
from rustyray.health.heartbeat import HeartbeatConfig, HeartbeatMonitor, HeartbeatStatus
from rustyray.health.liveness import ProbeInputs, ProbeReport, evaluate_probes
from rustyray.health.phi import PhiConfig
from rustyray.health.recovery import RecoveryAttempt, RecoveryManager, RecoveryStrategy
from rustyray.protocol.control import Heartbeat
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)


class HealthProbeRequest(Message):
    """Ask a node for its own liveness / readiness / startup probes."""

    sender: str = ""


class HealthProbeReply(Message):
    node: str
    liveness: str
    readiness: str
    startup: str
    reason: str = ""


@dataclass(frozen=True)
class HealthServiceSettings:
    """Adapter knobs read from the ``[health]`` table next to ``HealthConfig``'s fields."""

    failed_after_ms: int = 0
    """Silence (ms) after which a peer is Failed; 0 means 3 x ``heartbeat.timeout_ms``."""

    tick_ms: int = 100
    """Period (ms) of the tick that measures event-loop lag and drives recovery timers."""

    auto_recover: bool = True
    """Start recovery (ExponentialBackoff) for a peer whose heartbeat status turns Failed."""

    probe_timeout_ms: int = 2000
    """How long (ms) to wait for a node's own probe answer before reporting it unreachable."""

    def validate(self) -> HealthServiceSettings:
        if self.failed_after_ms < 0:
            raise ValueError("failed_after_ms must be >= 0")
        if self.tick_ms <= 0:
            raise ValueError("tick_ms must be > 0")
        if self.probe_timeout_ms <= 0:
            raise ValueError("probe_timeout_ms must be > 0")
        return self


def load_settings(section: dict[str, Any], node: Host) -> tuple[HealthConfig, HealthServiceSettings]:
    """Split the raw ``[health]`` table; an unknown key is a ValueError naming it."""
    core_names = {f.name for f in dataclasses.fields(HealthConfig)}
    svc_names = {f.name for f in dataclasses.fields(HealthServiceSettings)}
    unknown = sorted(set(section) - core_names - svc_names)
    if unknown:
        known = ", ".join(sorted(core_names | svc_names))
        raise ValueError(f"[health] has no setting {unknown[0]!r}; known: {known}")
    core_kw = {k: v for k, v in section.items() if k in core_names}
    core_kw.setdefault("phi_threshold", node.config.heartbeat.phi_threshold)
    core_kw.setdefault("phi_floor", min(HealthConfig.phi_floor, core_kw["phi_threshold"] / 2))
    core = HealthConfig(**core_kw).validate()
    svc = HealthServiceSettings(**{k: v for k, v in section.items() if k in svc_names}).validate()
    return core, svc


def heartbeat_config(node: Host, settings: HealthServiceSettings) -> HeartbeatConfig:
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
        self.config, self.settings = load_settings(node.config.section("health"), node)
        self.monitor = HeartbeatMonitor(heartbeat_config(node, self.settings))
        self.aggregator = HealthAggregator(self.config)
        self.recovery = RecoveryManager(self.config)
        self.checker = HealthChecker(clock=time.monotonic)
        self.recovery_log: deque[dict[str, Any]] = deque(maxlen=200)
        self._last_status: dict[str, HeartbeatStatus] = {}
        self.last_tick: float | None = None
        self.loop_lag_ms = 0.0
        self.startup_error: str | None = None
        for name, check in self._custom_checks().items():
            self.checker.register_custom(name, check)
        node.on(Heartbeat, self._on_heartbeat)
        node.on(HealthProbeRequest, self._on_probe_request)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._sync_peers(time.monotonic())
        self.checker.start()
        self.node.spawn(self._tick_loop(), name="health tick")

    async def stop(self) -> None:
        await self.checker.stop()

    def health(self) -> tuple[str, str]:
        now = time.monotonic()
        self._sync_peers(now)
        bad = [p.node_id for p in self.monitor.status(now) if p.status is not HeartbeatStatus.HEALTHY]
        if bad:
            return "degraded", f"suspected peers: {', '.join(bad)}"
        return "healthy", f"{len(self.monitor.peers())} peers heartbeating"

    # ------------------------------------------------------------------ heartbeats
    def _on_heartbeat(self, ctx: RequestContext, msg: Heartbeat) -> None:
        peer = msg.node_id or ctx.peer_id
        if peer and peer != self.node.node_id:
            self.monitor.record(peer, time.monotonic())

    def on_peer_event(self, event: str, peer_id: str) -> None:
        if event == "learned":
            self.monitor.add_peer(peer_id, time.monotonic())

    def _sync_peers(self, now: float) -> None:
        """Watch every known peer (gone ones included); forget peers the node removed."""
        known = set(self.node.peers) - {self.node.node_id}
        for peer in known:
            self.monitor.add_peer(peer, now)
        for peer in set(self.monitor.peers()) - known:
            self.monitor.remove_peer(peer)

    async def _tick_loop(self) -> None:
        period = self.settings.tick_ms / 1000.0
        while True:
            before = time.monotonic()
            await asyncio.sleep(period)
            now = time.monotonic()
            self.loop_lag_ms = max(0.0, (now - before - period) * 1000.0)
            self.last_tick = now
            self._sync_peers(now)
            self._watch_failures(now)
            for attempt in self.recovery.due(now):
                self.node.spawn(self._attempt(attempt), name=f"recovery {attempt.node}")

    def _watch_failures(self, now: float) -> None:
        for row in self.monitor.status(now):
            before = self._last_status.get(row.node_id)
            self._last_status[row.node_id] = row.status
            if row.status is HeartbeatStatus.FAILED and before is not HeartbeatStatus.FAILED:
                peer = self.node.peers.get(row.node_id)
                if self.settings.auto_recover and peer is not None and peer.wanted:
                    self.recovery.trigger(row.node_id, RecoveryStrategy.EXPONENTIAL_BACKOFF, now)

    # ------------------------------------------------------------------ recovery
    async def _attempt(self, attempt: RecoveryAttempt) -> None:
        started = time.perf_counter()
        error: str | None = None
        try:
            await self.node.connection_to(attempt.node, timeout=self.node.config.transport.connect_timeout_s)
        except (ConnectionError, OSError, TimeoutError, KeyError) as exc:
            error = str(exc) or type(exc).__name__
        try:
            status = self.recovery.on_attempt_result(attempt.node, error is None, time.monotonic())
        except RecoveryError:
            return
        self.recovery_log.append(
            {
                "node": attempt.node,
                "attempt": attempt.attempt,
                "strategy": attempt.strategy.value,
                "success": error is None,
                "error": error,
                "phase_after": status.phase.value,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "at": time.time(),
            }
        )

    # ------------------------------------------------------------------ probes
    def local_probes(self) -> ProbeReport:
        node = self.node
        now = time.monotonic()
        membership = self.membership
        joined = bool(node.peers) or getattr(membership, "cluster_name", None) is not None
        return evaluate_probes(
            ProbeInputs(
                node=node.node_id,
                started=node.running and node.ready.is_set(),
                joined=joined or len(node.live_members()) <= 1,
                connected_peers=sum(1 for p in node.peers.values() if p.connected),
                cluster_size=len(set(node.live_members()) | set(node.peers) | {node.node_id}),
                last_tick_age_s=None if self.last_tick is None else now - self.last_tick,
                uptime_s=now - node.started_mono,
                startup_error=self.startup_error,
            ),
            self.config,
        )

    def _on_probe_request(self, ctx: RequestContext, msg: HealthProbeRequest) -> HealthProbeReply:
        r = self.local_probes()
        return HealthProbeReply(
            node=r.node,
            liveness=r.liveness.value,
            readiness=r.readiness.value,
            startup=r.startup.value,
            reason=r.reason,
        )

    # ------------------------------------------------------------------ custom checks
    def _custom_checks(self) -> dict[str, Callable[[HealthCheckSpec], Awaitable[bool | None]]]:
        async def event_loop(spec: HealthCheckSpec) -> bool:
            """This node: its loop lag is under 1 s. Another node: it answers a probe (its loop runs)."""
            if spec.node_id == self.node.node_id:
                return self.last_tick is not None and self.loop_lag_ms < 1000.0
            reply = await self.node.request(
                spec.node_id, HealthProbeRequest(sender=self.node.node_id), timeout=spec.timeout_ms / 1000.0
            )
            return isinstance(reply, HealthProbeReply) and reply.liveness == "Alive"

        async def peers_connected(spec: HealthCheckSpec) -> bool:
            """This node: connected to a peer (or alone). Another node: this node is connected to it."""
            if spec.node_id == self.node.node_id:
                return any(p.connected for p in self.node.peers.values()) or not self.node.peers
            peer = self.node.peers.get(spec.node_id)
            return peer is not None and peer.connected

        async def heartbeat(spec: HealthCheckSpec) -> bool:
            """Another node's heartbeats arrive on time (always true for this node)."""
            if spec.node_id == self.node.node_id:
                return True
            self._sync_peers(time.monotonic())
            return self.monitor.peer_status(spec.node_id, time.monotonic()).status is HeartbeatStatus.HEALTHY

        async def routing(spec: HealthCheckSpec) -> bool:
            """The routing service answers a routed Heartbeat from the node (round trip through handlers)."""
            svc = self.routing
            if svc is None:
                return False
            res = await svc.api_send(
                target_node=spec.node_id,
                message_type="Heartbeat",
                data={"check": True},
                timeout_ms=spec.timeout_ms,
            )
            return bool(res.get("success"))

        return {
            "event_loop": event_loop,
            "peers_connected": peers_connected,
            "heartbeat": heartbeat,
            "routing": routing,
        }

    # ------------------------------------------------------------------ helpers
    def _known(self, node_id: str) -> bool:
        return node_id == self.node.node_id or node_id in self.node.peers

    def _require_node(self, node_id: str, field_name: str) -> None:
        if not node_id:
            raise ApiError(422, f"{field_name} must not be empty", field_name)
        if not self._known(node_id):
            raise ApiError(404, f"unknown node {node_id!r}", field_name)

    def peer_rows(self, now: float) -> list[Any]:
        """Heartbeat status of every peer the node knows now (the API and the metrics read this)."""
        self._sync_peers(now)
        return self.monitor.status(now)

    # ------------------------------------------------------------------ API
    def api_heartbeat_status(self) -> dict[str, Any]:
        """NETWORKING-014."""
        now = time.monotonic()
        cfg = self.monitor.config
        peers = []
        for row in self.peer_rows(now):
            peer = self.node.peers.get(row.node_id)
            peers.append(
                {
                    **row.to_dict(),
                    "heartbeats": row.heartbeats,
                    "connected": bool(peer is not None and peer.connected),
                }
            )
        return {
            "local_node": self.node.node_id,
            "interval_ms": self.node.config.heartbeat.interval_ms,
            "timeout_ms": self.node.config.heartbeat.timeout_ms,
            "failed_after_ms": round(cfg.failed_after * 1000),
            "peers": peers,
        }

    def api_phi_values(self) -> dict[str, Any]:
        """NETWORKING-015."""
        now = time.monotonic()
        rows = self.peer_rows(now)
        return {
            "local_node": self.node.node_id,
            "phi_values": [
                {"node": r.node_id, "phi": round(r.phi, 3), "status": r.status.value} for r in rows
            ],
            "threshold": self.monitor.config.phi.threshold,
        }

    def api_add_check(
        self,
        node_id: str,
        check_type: str,
        endpoint: str,
        interval_ms: float = 5000.0,
        timeout_ms: float = 2000.0,
    ) -> dict[str, Any]:
        """NETWORKING-016. A host that is a node id (``http://node2:8080/health``) means that node's address."""
        self._require_node(node_id, "node_id")
        original = endpoint
        endpoint = self._resolve_endpoint(check_type, endpoint)
        try:
            spec = self.checker.add_check(node_id, check_type, endpoint, interval_ms, timeout_ms)
        except UnknownCheckError as exc:
            raise ApiError(
                422, f"{exc}; custom checks: {', '.join(sorted(self._custom_checks()))}", "endpoint"
            ) from None
        except UnsupportedCheckError as exc:
            raise ApiError(422, str(exc), "check_type") from None
        except ValueError as exc:
            msg = str(exc)
            name = msg.split(" ", 1)[0].rstrip(":")
            fields = {"check_type", "endpoint", "interval_ms", "timeout_ms", "node_id"}
            raise ApiError(422, msg, name if name in fields else "endpoint") from None
        return {"success": True, "check_id": spec.check_id, "status": "active", **spec.to_dict(),
                "endpoint": original, "resolved_endpoint": endpoint}

    def _resolve_endpoint(self, check_type: str, endpoint: str) -> str:
        """Map a node-id host to the node's advertised host, then apply the dial policy (403)."""
        import urllib.parse

        kind = check_type.strip().upper() if isinstance(check_type, str) else ""
        if kind not in ("TCP", "HTTP", "GRPC") or not isinstance(endpoint, str):
            return endpoint  # custom checks dial nothing; an unknown type is the checker's 422
        url = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        try:
            port = url.port
        except ValueError:
            port = None
        host = url.hostname
        well_formed = url.scheme in ("http", "https") if kind == "HTTP" else (port is not None and not url.scheme)
        if not host or not well_formed:
            return endpoint  # malformed: the checker answers 422 naming the endpoint
        hosts = {self.node.node_id: self.node.advertise_host}
        for peer in self.node.peers.values():
            hosts[peer.node_id] = peer.tcp_address.rsplit(":", 1)[0].strip("[]")
        target = hosts.get(host, host)
        refusal = self.node.dial_policy.refusal(target)
        if refusal is not None:
            raise ApiError(403, f"not checked: {refusal}", "endpoint")
        if target == host:
            return endpoint
        netloc = url.netloc.replace(host, f"[{target}]" if ":" in target else target, 1)
        return urllib.parse.urlunsplit(url._replace(netloc=netloc)).removeprefix("//")

    def api_checks(self) -> dict[str, Any]:
        checks = []
        for spec in self.checker.checks():
            result = self.checker.result(spec.check_id).to_dict()
            checks.append({**spec.to_dict(), **{k: v for k, v in result.items() if k != "check_id"}})
        return {
            "node": self.node.node_id,
            "checks": checks,
            "total": len(checks),
            "custom_checks": sorted(self._custom_checks()),
        }

    async def api_remove_check(self, check_id: str) -> dict[str, Any]:
        if not await self.checker.remove_check(check_id):
            raise ApiError(404, f"no health check {check_id!r}", "check_id")
        return {"success": True, "check_id": check_id, "removed": True}

    def node_signals(self, now: float) -> list[NodeSignals]:
        """The aggregator's inputs for every known node (this one first)."""
        threshold = self.monitor.config.phi.threshold
        rows = {r.node_id: r for r in self.peer_rows(now)}
        checks = self.checker.node_signals()
        routing = self.routing
        out = []
        for node_id in [self.node.node_id, *sorted(rows)]:
            c = checks.get(node_id)
            phi: float | None = None
            error_rate: float | None = None
            latency: float | None = None
            if node_id == self.node.node_id:
                s = self.node.stats
                error_rate = min(1.0, s.requests_failed / s.requests_sent) if s.requests_sent else 0.0
                lat = list(s.latencies_ms)
                latency = sum(lat) / len(lat) if lat else None
            else:
                row = rows[node_id]
                phi = row.phi if row.status is HeartbeatStatus.HEALTHY else max(row.phi, threshold)
                if routing is not None and hasattr(routing, "peer_signals"):
                    error_rate, latency = routing.peer_signals(node_id)
            if latency is None and c is not None:
                latency = c.latency_ms
            out.append(
                NodeSignals(
                    node=node_id,
                    phi=phi,
                    checks_passed=c.checks_passed if c else None,
                    checks_total=c.checks_total if c else None,
                    error_rate=error_rate,
                    latency_ms=latency,
                )
            )
        return out

    def api_aggregate(self) -> dict[str, Any]:
        """NETWORKING-017 (with each node's signal scores under ``components``)."""
        result = self.aggregator.aggregate(self.node_signals(time.monotonic()))
        return {
            **result.to_dict(detail=True),
            "observed_by": self.node.node_id,
            "phi_threshold": self.config.phi_threshold,
        }

    async def api_probe(self, node_id: str) -> dict[str, Any]:
        """NETWORKING-018: the node's own probes, or Dead/NotReady when it cannot be reached."""
        self._require_node(node_id, "node")
        if node_id == self.node.node_id:
            return {**self.local_probes().to_dict(), "observed_by": node_id}
        try:
            reply = await self.node.request(
                node_id,
                HealthProbeRequest(sender=self.node.node_id),
                timeout=self.settings.probe_timeout_ms / 1000.0,
            )
        except Exception as exc:  # unreachable, refused, timed out, or an old peer without the handler
            why = str(exc) or type(exc).__name__
            return {
                "node": node_id,
                "liveness": "Dead",
                "readiness": "NotReady",
                "startup": "Unknown",
                "reason": f"unreachable from {self.node.node_id}: {why}",
                "observed_by": self.node.node_id,
            }
        if not isinstance(reply, HealthProbeReply):
            raise ApiError(502, f"{node_id} answered {type(reply).__name__} to a probe request", "node")
        return {
            "node": reply.node,
            "liveness": reply.liveness,
            "readiness": reply.readiness,
            "startup": reply.startup,
            "reason": reply.reason,
            "observed_by": node_id,
        }

    def api_recovery_trigger(self, node_id: str, strategy: str = "ExponentialBackoff") -> dict[str, Any]:
        """NETWORKING-019: start (or report) recovery of ``node_id``; attempts are real reconnects."""
        try:
            parsed = RecoveryStrategy.parse(strategy)
        except ValueError as exc:
            raise ApiError(422, str(exc), "strategy") from None
        self._require_node(node_id, "node_id")
        if node_id == self.node.node_id:
            raise ApiError(422, "a node cannot recover itself; trigger it from another node", "node_id")
        status = self.recovery.trigger(node_id, parsed, time.monotonic())
        return {**status.to_dict(), "strategy": parsed.value}

    def api_recovery_status(self, node_id: str) -> dict[str, Any]:
        self._require_node(node_id, "node_id")
        now = time.monotonic()
        status = self.recovery.status(node_id, now)
        peer = self.node.peers.get(node_id)
        return {
            **status.to_dict(),
            "quarantined": self.recovery.is_quarantined(node_id, now),
            "connected": bool(peer is not None and peer.connected),
            "recovered_total": self.recovery.recovered,
            "quarantines_total": self.recovery.quarantines,
            "attempts": [a for a in self.recovery_log if a["node"] == node_id],
        }
