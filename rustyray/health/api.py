"""The health management operations (NETWORKING-014 to 019): ``HealthApi``.

Why a facade: input validation and the API contract (operation names and arguments, response
fields, which error names which field) live apart from the I/O adapter (``service.py``), so that
the adapter only records heartbeats, ticks and reconnects, and the contract reads in one place.
``Node.call_api("health", op, kwargs)`` calls the public methods here by name
(``svc.api.<op>``); an operation with arguments takes one request dataclass and each returns a
result dataclass (``api_types.py``, the schema). Each raises a ``rustyray.errors`` error that names
the offending field. The monotonic clock the cores run on is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rustyray.errors import forbidden, not_found, unprocessable, upstream_failed
from rustyray.health.api_types import (
    AddCheckRequest,
    CheckAdded,
    CheckRemoved,
    ChecksReport,
    ClusterHealthReport,
    HeartbeatStatus,
    PhiValue,
    PhiValues,
    ProbeRequest,
    ProbeResult,
    RecoveryReport,
    RecoveryStatusRequest,
    RecoveryTriggered,
    RecoveryTriggerRequest,
    RemoveCheckRequest,
)
from rustyray.health.endpoints import host_table, resolve_endpoint
from rustyray.health.errors import UnknownCheckError, UnsupportedCheckError
from rustyray.health.messages import HealthProbeReply
from rustyray.health.recovery import RecoveryStrategy

if TYPE_CHECKING:
    from rustyray.health.service import HealthService

__all__ = ["CHECK_FIELDS", "HealthApi"]

CHECK_FIELDS = frozenset({"check_type", "endpoint", "interval_ms", "timeout_ms", "node_id"})
"""``add_check`` arguments a checker ValueError may name (its first word); any other is blamed on ``endpoint``."""


class HealthApi:
    """One method per management operation of the health service."""

    def __init__(self, service: HealthService, *, clock: Callable[[], float]) -> None:
        self._svc = service
        self._node = service.node
        self._clock = clock

    # ------------------------------------------------------------------ validation
    def _require_node(self, node_id: str, field_name: str) -> None:
        if not node_id:
            raise unprocessable(f"{field_name} must not be empty", field_name)
        if node_id != self._node.node_id and node_id not in self._node.peers:
            raise not_found(f"unknown node {node_id!r}", field_name)

    # ------------------------------------------------------------------ heartbeats (014, 015)
    def heartbeat_status(self) -> HeartbeatStatus:
        """NETWORKING-014: the peers this node monitors (``peer_watch.py``).

        With ``[health] monitored_by_nr_of_members`` = k below N - 1, that is the k peers the
        monitoring ring assigns to this node, not every peer: a peer it does not monitor is simply
        not in ``peers`` (k other nodes list it). The fields are unchanged.
        """
        svc, node = self._svc, self._node
        peers = []
        for row in svc.peer_rows(self._clock()):
            peer = node.peers.get(row.node_id)
            peers.append({**row.to_dict(), "heartbeats": row.heartbeats,
                          "connected": bool(peer is not None and peer.connected)})
        return HeartbeatStatus(
            local_node=node.node_id,
            interval_ms=node.config.heartbeat.interval_ms,
            timeout_ms=node.config.heartbeat.timeout_ms,
            failed_after_ms=round(svc.monitor.config.failed_after * 1000),
            peers=peers,
        )

    def phi_values(self) -> PhiValues:
        """NETWORKING-015: phi of the peers this node monitors (the same set as ``heartbeat_status``)."""
        rows = self._svc.peer_rows(self._clock())
        return PhiValues(
            local_node=self._node.node_id,
            phi_values=[PhiValue(node=r.node_id, phi=round(r.phi, 3), status=r.status.value) for r in rows],
            threshold=self._svc.monitor.config.phi.threshold,
        )

    # ------------------------------------------------------------------ checks (016)
    def add_check(self, req: AddCheckRequest) -> CheckAdded:
        """NETWORKING-016. A host that is a node id (``http://node2:8080/health``) means that node's address."""
        self._require_node(req.node_id, "node_id")
        endpoint = self._resolve_endpoint(req.check_type, req.endpoint)
        try:
            spec = self._svc.checker.add_check(req.node_id, req.check_type, endpoint, req.interval_ms,
                                               req.timeout_ms)
        except UnknownCheckError as exc:
            raise unprocessable(f"{exc}; custom checks: {', '.join(sorted(self._svc.custom_checks))}",
                           "endpoint") from None
        except UnsupportedCheckError as exc:
            raise unprocessable(str(exc), "check_type") from None
        except ValueError as exc:
            msg = str(exc)
            name = msg.split(" ", 1)[0].rstrip(":")
            raise unprocessable(msg, name if name in CHECK_FIELDS else "endpoint") from None
        row = spec.to_dict()
        return CheckAdded(success=True, check_id=row["check_id"], status="active", node_id=row["node_id"],
                          check_type=row["check_type"], endpoint=req.endpoint, interval_ms=row["interval_ms"],
                          timeout_ms=row["timeout_ms"], resolved_endpoint=endpoint)

    def _resolve_endpoint(self, check_type: str, endpoint: str) -> str:
        """Map a node-id host to the node's advertised host, then apply the dial policy (403)."""
        node = self._node
        hosts = host_table(node.node_id, node.advertise_host,
                           ((p.node_id, p.tcp_address) for p in node.peers.values()))
        resolved = resolve_endpoint(check_type, endpoint, hosts)
        if resolved is None:
            return endpoint
        refusal = node.dial_policy.refusal(resolved.host)
        if refusal is not None:
            raise forbidden(f"not checked: {refusal}", "endpoint")
        return resolved.endpoint

    def checks(self) -> ChecksReport:
        checker = self._svc.checker
        checks = []
        for spec in checker.checks():
            result = checker.result(spec.check_id).to_dict()
            checks.append({**spec.to_dict(), **{k: v for k, v in result.items() if k != "check_id"}})
        return ChecksReport(node=self._node.node_id, checks=checks, total=len(checks),
                            custom_checks=sorted(self._svc.custom_checks))

    async def remove_check(self, req: RemoveCheckRequest) -> CheckRemoved:
        if not await self._svc.checker.remove_check(req.check_id):
            raise not_found(f"no health check {req.check_id!r}", "check_id")
        return CheckRemoved(success=True, check_id=req.check_id, removed=True)

    # ------------------------------------------------------------------ aggregation (017), probes (018)
    def aggregate(self) -> ClusterHealthReport:
        """NETWORKING-017 (with each node's signal scores under ``components``)."""
        svc = self._svc
        result = svc.aggregator.aggregate(svc.node_signals(self._clock()))
        return ClusterHealthReport(**result.to_dict(detail=True), observed_by=self._node.node_id,
                                   phi_threshold=svc.config.phi_threshold)

    async def probe(self, req: ProbeRequest) -> ProbeResult:
        """NETWORKING-018: the node's own probes, or Dead/NotReady when it cannot be reached."""
        node_id = req.node_id
        self._require_node(node_id, "node")
        own = self._node.node_id
        if node_id == own:
            return ProbeResult(**self._svc.local_probes().to_dict(), observed_by=node_id)
        try:
            reply = await self._svc.request_probes(node_id)
        except Exception as exc:  # unreachable, refused, timed out, or an old peer without the handler
            why = str(exc) or type(exc).__name__
            return ProbeResult(node=node_id, liveness="Dead", readiness="NotReady", startup="Unknown",
                               reason=f"unreachable from {own}: {why}", observed_by=own)
        if not isinstance(reply, HealthProbeReply):
            raise upstream_failed(f"{node_id} answered {type(reply).__name__} to a probe request", "node")
        return ProbeResult(node=reply.node, liveness=reply.liveness, readiness=reply.readiness,
                           startup=reply.startup, reason=reply.reason, observed_by=node_id)

    # ------------------------------------------------------------------ recovery (019)
    def recovery_trigger(self, req: RecoveryTriggerRequest) -> RecoveryTriggered:
        """NETWORKING-019: start (or report) recovery of ``node_id``; attempts are real reconnects."""
        parsed = RecoveryStrategy.parse(req.strategy)  # the request has checked it
        self._require_node(req.node_id, "node_id")
        if req.node_id == self._node.node_id:
            raise unprocessable("a node cannot recover itself; trigger it from another node", "node_id")
        status = self._svc.recovery.trigger(req.node_id, parsed, self._clock())
        return RecoveryTriggered(base=status.to_dict(), strategy=parsed.value)

    def recovery_status(self, req: RecoveryStatusRequest) -> RecoveryReport:
        node_id = req.node_id
        self._require_node(node_id, "node_id")
        svc = self._svc
        now = self._clock()
        status = svc.recovery.status(node_id, now)
        peer = self._node.peers.get(node_id)
        return RecoveryReport(
            base=status.to_dict(),
            quarantined=svc.recovery.is_quarantined(node_id, now),
            connected=bool(peer is not None and peer.connected),
            recovered_total=svc.recovery.recovered,
            quarantines_total=svc.recovery.quarantines,
            attempts=svc.watch.attempts_of(node_id),
        )
