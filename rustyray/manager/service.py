"""Network manager (NETWORKING-055 to 058): initialisation report, send, broadcast, statistics.

Send and broadcast go through the routing service so that the manager and the
routing endpoints share one implementation; statistics come from the node's live
counters. The node hands the manager what it reports on: one health probe per seed
component and the services that feed the labelled metric samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.errors import unavailable

if TYPE_CHECKING:
    from rustyray.transport.api import Host

# Seed component name -> node service that backs it
COMPONENTS = [
    ("transport", "transport"),
    ("discovery", "discovery"),
    ("autodiscovery", "autodiscovery"),
    ("health_monitor", "health"),
    ("load_balancer", "loadbalancer"),
    ("membership", "membership"),
    ("routing", "routing"),
    ("security", "security"),
    ("pool", "pool"),
]


Probe = Callable[[], tuple[str, str]]


class ManagerService:
    def __init__(self, node: Host, *, probes: dict[str, Probe | None], routing: Any | None = None,
                 sample_sources: dict[str, Any] | None = None) -> None:
        self.node = node
        self.probes = probes
        """Seed component name -> its health probe; absent: the service is not running; None: no check."""
        self.routing = routing
        self.sample_sources = sample_sources or {}
        self.initialized_at: float | None = None
        self.initialize_calls = 0

    def component_status(self) -> list[dict[str, Any]]:
        out = []
        for name, _service in COMPONENTS:
            if name not in self.probes:
                out.append({"name": name, "status": "unavailable", "detail": "service not running"})
                continue
            probe = self.probes[name]
            status, detail = probe() if probe is not None else ("healthy", "")
            out.append({"name": name, "status": status, "detail": detail})
        return out

    def samples(self) -> list[dict[str, Any]]:
        from rustyray.manager.samples import node_samples

        return node_samples(self.node, **self.sample_sources)

    def api_initialize(self) -> dict[str, Any]:
        """Idempotent: the first call records the time; every call reports live component health."""
        self.initialize_calls += 1
        already = self.initialized_at is not None
        if not already:
            self.initialized_at = time.time()
        components = self.component_status()
        return {
            "initialized": all(c["status"] != "failed" for c in components),
            "already_initialized": already,
            "node": self.node.node_id,
            "initialized_at": self.initialized_at,
            "components": components,
        }

    def api_stats(self) -> dict[str, Any]:
        return {"node": self.node.node_id, **self.node.stats_snapshot()}

    def api_metric_samples(self) -> dict[str, Any]:
        """Everything a metrics scrape needs from this node in one call: the counters of ``stats`` and the
        labelled samples (phi per peer, members by state, Raft, breakers, pools, latency histogram)."""
        return {"node": self.node.node_id, "stats": self.node.stats_snapshot(), "samples": self.samples()}

    async def api_send(self, target_node: str, message_type: str, data: dict[str, Any]) -> dict[str, Any]:
        routing = self.routing
        if routing is None:
            raise unavailable("routing service is not running")
        res = await routing.api.send(target_node=target_node, message_type=message_type, data=data,
                                     priority="Normal", delivery="AtLeastOnce")
        return {"sent": res["success"], "message_id": res["message_id"], "latency_ms": res["latency_ms"],
                "target_node": target_node, **({"error": res["error"]} if "error" in res else {})}

    async def api_broadcast(self, message_type: str, data: dict[str, Any]) -> dict[str, Any]:
        routing = self.routing
        if routing is None:
            raise unavailable("routing service is not running")
        res = await routing.api.broadcast(message_type=message_type, data=data, priority="Normal")
        return {"sent_to": res["successful_sends"], "failed": res["failed_sends"],
                "broadcast_time_ms": res["broadcast_latency_ms"], "nodes_reached": res["nodes_reached"],
                "total_nodes": res["total_nodes"]}
