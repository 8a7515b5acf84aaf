"""The aggregator's inputs, one ``NodeSignals`` per node (NETWORKING-017), sans-I/O.

Theory of operation. ``aggregator.py`` scores what it is given; this module decides what that is
for each node this one knows (itself first, then its peers by id):

* phi: a peer's phi accrual value from its heartbeats (Hayashibara et al. 2004), forced up to the
  threshold when the heartbeat monitor already says Suspected or Failed (a silence timeout can
  trip before phi does; the verdict must not be Healthy then). This node has no phi.
* checks: passed / total of the health checks aimed at the node (``checker.py``).
* error rate and latency: for this node, its own request counters (failed / sent, mean round
  trip); for a peer, what routed sends to it saw, when the routing service offers
  ``peer_signals``. A node without a latency takes its checks' mean latency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rustyray.health.aggregator import NodeSignals
from rustyray.health.heartbeat import HeartbeatStatus, PeerHeartbeat

__all__ = ["node_signals", "request_signals"]

PeerSignals = Callable[[str], tuple[float | None, float | None]]
"""node id -> (error rate, mean latency ms) of routed sends to it."""


def request_signals(stats: Any) -> tuple[float, float | None]:
    """(error rate, mean latency ms) of this node's own requests (``node.stats``)."""
    error_rate = min(1.0, stats.requests_failed / stats.requests_sent) if stats.requests_sent else 0.0
    lat = list(stats.latencies_ms)
    return error_rate, (sum(lat) / len(lat) if lat else None)


def node_signals(own_id: str, own_stats: Any, rows: Iterable[PeerHeartbeat], checks: Mapping[str, NodeSignals], *,
                 threshold: float, peer_signals: PeerSignals | None = None) -> list[NodeSignals]:
    """Signals for this node (from ``own_stats``) and every peer in ``rows`` (heartbeat status), by id."""
    by_id = {r.node_id: r for r in rows}
    out = []
    for node_id in [own_id, *sorted(by_id)]:
        c = checks.get(node_id)
        phi: float | None = None
        error_rate: float | None = None
        latency: float | None = None
        if node_id == own_id:
            error_rate, latency = request_signals(own_stats)
        else:
            row = by_id[node_id]
            phi = row.phi if row.status is HeartbeatStatus.HEALTHY else max(row.phi, threshold)
            if peer_signals is not None:
                error_rate, latency = peer_signals(node_id)
        if latency is None and c is not None:
            latency = c.latency_ms
        out.append(NodeSignals(node=node_id, phi=phi, checks_passed=c.checks_passed if c else None,
                               checks_total=c.checks_total if c else None, error_rate=error_rate,
                               latency_ms=latency))
    return out
