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

from rustyray.manager.api import ManagerApi
from rustyray.manager.api_types import ComponentStatus

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
        self.api = ManagerApi(self, clock=time.time)

    def component_status(self) -> list[ComponentStatus]:
        out = []
        for name, _service in COMPONENTS:
            if name not in self.probes:
                out.append(ComponentStatus(name, "unavailable", "service not running"))
                continue
            probe = self.probes[name]
            status, detail = probe() if probe is not None else ("healthy", "")
            out.append(ComponentStatus(name, status, detail))
        return out

    def samples(self) -> list[dict[str, Any]]:
        from rustyray.manager.samples import node_samples

        return node_samples(self.node, **self.sample_sources)

