"""Turns request outcomes into the ``NodeLoad`` snapshots that strategies read.

Theory of operation: latency and error rate are exponentially weighted moving averages
(``x <- x + alpha * (sample - x)``), the smoothing used by Finagle's and Envoy's
least-loaded balancers: recent samples dominate, old ones decay geometrically, and the state
is one float per signal. In-flight counts are exact counters. Connection counts and CPU /
memory load are set from outside (the pools and health reports own them).
"""

from __future__ import annotations

from dataclasses import dataclass

from rustyray.loadbalancer.errors import require
from rustyray.loadbalancer.strategies.base import NodeLoad
from rustyray.per_node import PerNode


@dataclass(frozen=True)
class NodeStatsConfig:
    """EWMA smoothing factors."""

    latency_alpha: float = 0.2
    """Weight of each new latency sample (0..1]; 0.2 ~ averages the last ~10 requests."""
    error_alpha: float = 0.1
    """Weight of each new success/failure sample (0..1] in the error-rate EWMA."""

    def validate(self) -> None:
        require(0 < self.latency_alpha <= 1, "latency_alpha", "must be within (0, 1]")
        require(0 < self.error_alpha <= 1, "error_alpha", "must be within (0, 1]")


@dataclass
class _Mutable:
    active_connections: int = 0
    in_flight: int = 0
    latency_ewma_ms: float | None = None
    error_rate: float = 0.0
    cpu_load: float = 0.0
    mem_load: float = 0.0


class NodeStatsTracker(PerNode[_Mutable]):
    """Per-node counters and EWMAs; ``snapshot()`` gives the mapping strategies take."""

    def __init__(self, config: NodeStatsConfig | None = None) -> None:
        super().__init__(config or NodeStatsConfig())

    def _make(self, node: str) -> _Mutable:
        return _Mutable()

    def on_request_start(self, node: str) -> None:
        self.get(node).in_flight += 1

    def on_request_end(self, node: str, latency_ms: float, ok: bool) -> None:
        """One finished request; the latency sample counts for failures too (slow failures are slow)."""
        require(latency_ms >= 0, "latency_ms", "must be >= 0")
        state = self.get(node)
        state.in_flight = max(0, state.in_flight - 1)
        if state.latency_ewma_ms is None:
            state.latency_ewma_ms = latency_ms
        else:
            state.latency_ewma_ms += self.config.latency_alpha * (latency_ms - state.latency_ewma_ms)
        state.error_rate += self.config.error_alpha * ((0.0 if ok else 1.0) - state.error_rate)

    def set_connections(self, node: str, active_connections: int) -> None:
        require(active_connections >= 0, "active_connections", "must be >= 0")
        self.get(node).active_connections = active_connections

    def report_resources(self, node: str, cpu_load: float, mem_load: float) -> None:
        require(0 <= cpu_load <= 1, "cpu_load", "must be within [0, 1]")
        require(0 <= mem_load <= 1, "mem_load", "must be within [0, 1]")
        state = self.get(node)
        state.cpu_load, state.mem_load = cpu_load, mem_load

    def remove(self, node: str) -> None:
        self._by_node.pop(node, None)

    def snapshot(self) -> dict[str, NodeLoad]:
        return {
            node: NodeLoad(
                active_connections=s.active_connections,
                in_flight=s.in_flight,
                latency_ewma_ms=s.latency_ewma_ms or 0.0,
                error_rate=min(1.0, max(0.0, s.error_rate)),
                cpu_load=s.cpu_load,
                mem_load=s.mem_load,
            )
            for node, s in self._by_node.items()
        }
