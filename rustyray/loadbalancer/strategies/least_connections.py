"""Least connections: route to the node with the fewest active connections.

Theory of operation: the counts come from the live pools (``NodeLoad.active_connections``),
so the strategy is stateless. Ties are broken deterministically by fewer in-flight
requests, then by node id, so two balancers given the same snapshot agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rustyray.loadbalancer.strategies.base import (
    IDLE,
    NodeLoad,
    Selection,
    Strategy,
    StrategyName,
    require_candidates,
)


class LeastConnections(Strategy):
    """Stateless; reports every candidate's connection count in ``node_connections``."""

    name = StrategyName.LEAST_CONNECTIONS

    def select(self, candidates: Sequence[str], key: str | None, stats: Mapping[str, NodeLoad]) -> Selection:
        require_candidates(candidates)
        loads = {node: stats.get(node, IDLE) for node in candidates}
        node = min(candidates, key=lambda n: (loads[n].active_connections, loads[n].in_flight, n))
        return Selection(
            selected_node=node,
            strategy=self.name,
            node_connections={n: loads[n].active_connections for n in candidates},
        )
