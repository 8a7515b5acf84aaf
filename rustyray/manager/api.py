"""The network manager's operations (NETWORKING-055 to 058): ``ManagerApi``, the facade of ``ManagerService``.

Send and broadcast go through the routing service's own operations (``invoke``), so the manager and
the routing endpoints share one implementation and one set of checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.api_binding import invoke, to_wire
from rustyray.errors import unavailable
from rustyray.manager.api_types import (
    BroadcastRequest,
    BroadcastResult,
    InitializeReport,
    MetricSamples,
    SendRequest,
    SendResult,
    StatsReport,
)

if TYPE_CHECKING:
    from rustyray.manager.service import ManagerService

__all__ = ["ManagerApi"]


class ManagerApi:
    """One method per management operation of the network manager."""

    def __init__(self, service: ManagerService, *, clock: Callable[[], float]) -> None:
        self._svc = service
        self._clock = clock  # wall clock, epoch seconds: initialized_at is shown to operators

    def initialize(self) -> InitializeReport:
        """Idempotent: the first call records the time; every call reports live component health."""
        m = self._svc
        m.initialize_calls += 1
        already = m.initialized_at is not None
        if not already:
            m.initialized_at = self._clock()
        components = m.component_status()
        return InitializeReport(initialized=all(c.status != "failed" for c in components),
                                already_initialized=already, node=m.node.node_id,
                                initialized_at=m.initialized_at, components=components)

    def stats(self) -> StatsReport:
        return StatsReport(self._svc.node.node_id, self._svc.node.stats_snapshot())

    def metric_samples(self) -> MetricSamples:
        """Everything a metrics scrape needs from this node in one call: the counters of ``stats`` and the
        labelled samples (phi per peer, members by state, Raft, breakers, pools, latency histogram)."""
        node = self._svc.node
        return MetricSamples(node.node_id, node.stats_snapshot(), self._svc.samples())

    def _routing(self) -> Any:
        if self._svc.routing is None:
            raise unavailable("routing service is not running")
        return self._svc.routing.api

    async def send(self, req: SendRequest) -> SendResult:
        """NETWORKING-056: an AtLeastOnce, Normal-priority send through the routing service."""
        res = to_wire(await invoke(self._routing().send, {
            "target_node": req.target_node, "message_type": req.message_type, "data": req.data,
            "priority": "Normal", "delivery": "AtLeastOnce"}))
        return SendResult(sent=res["success"], message_id=res["message_id"], latency_ms=res["latency_ms"],
                          target_node=req.target_node, error=res.get("error"))

    async def broadcast(self, req: BroadcastRequest) -> BroadcastResult:
        """NETWORKING-057: a Normal-priority broadcast through the routing service."""
        res = to_wire(await invoke(self._routing().broadcast, {
            "message_type": req.message_type, "data": req.data, "priority": "Normal"}))
        return BroadcastResult(sent_to=res["successful_sends"], failed=res["failed_sends"],
                               broadcast_time_ms=res["broadcast_latency_ms"], nodes_reached=res["nodes_reached"],
                               total_nodes=res["total_nodes"])
