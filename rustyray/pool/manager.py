"""Pools for many nodes with one shared config (the seed's ``pool/manager``)."""

from __future__ import annotations

from rustyray.per_node import PerNode
from rustyray.pool.config import PoolConfig
from rustyray.pool.node_pool import NodePool, PoolStats


class PoolManager(PerNode[NodePool]):
    """Creates a ``NodePool`` per node on first use."""

    def __init__(self, config: PoolConfig | None = None) -> None:
        super().__init__(config or PoolConfig())

    def _make(self, node: str) -> NodePool:
        return NodePool(node, self.config)

    def __contains__(self, node: object) -> bool:
        """Does ``node`` have a pool (without making one)?"""
        return node in self._by_node

    def nodes(self) -> list[str]:
        return sorted(self._by_node)

    def remove(self, node: str) -> list[str]:
        """Drop a node's pool; returns its conn ids for the adapter to close."""
        pool = self._by_node.pop(node, None)
        return [] if pool is None else pool.close_all()

    def stats(self) -> list[PoolStats]:
        return [self._by_node[n].stats() for n in sorted(self._by_node)]

    def active_connections(self) -> dict[str, int]:
        """Leased connections per node: the counts LeastConnections reads."""
        return {n: p.active_count for n, p in self._by_node.items()}
