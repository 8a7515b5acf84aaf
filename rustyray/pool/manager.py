"""Pools for many nodes with one shared config (the seed's ``pool/manager``)."""

from __future__ import annotations

from rustyray.pool.config import PoolConfig
from rustyray.pool.node_pool import NodePool, PoolStats


class PoolManager:
    """Creates a ``NodePool`` per node on first use."""

    def __init__(self, config: PoolConfig | None = None) -> None:
        self.config = config or PoolConfig()
        self.config.validate()
        self._pools: dict[str, NodePool] = {}

    def get(self, node: str) -> NodePool:
        pool = self._pools.get(node)
        if pool is None:
            pool = self._pools[node] = NodePool(node, self.config)
        return pool

    def nodes(self) -> list[str]:
        return sorted(self._pools)

    def remove(self, node: str) -> list[str]:
        """Drop a node's pool; returns its conn ids for the adapter to close."""
        pool = self._pools.pop(node, None)
        return [] if pool is None else pool.close_all()

    def stats(self) -> list[PoolStats]:
        return [self._pools[n].stats() for n in sorted(self._pools)]

    def active_connections(self) -> dict[str, int]:
        """Leased connections per node: the counts LeastConnections reads."""
        return {n: p.active_count for n, p in self._pools.items()}
