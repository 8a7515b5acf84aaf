"""One object per node, made on first use, all from one shared config.

The load balancer's circuit breakers and load counters and the pool's per-node pools are kept the
same way: the config is validated once, when the registry is made, and a node's object exists from
the first time the node is named. The registries add what is theirs (the calls they forward, the
snapshots they take) on top of ``get``.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

__all__ = ["PerNode"]

T = TypeVar("T")


class PerNode(Generic[T]):
    """``get(node)`` gives the node's ``T``, made by ``_make(node)`` the first time it is asked for."""

    def __init__(self, config: Any) -> None:
        config.validate()
        self.config = config
        self._by_node: dict[str, T] = {}

    def _make(self, node: str) -> T:
        """The object for a node named for the first time."""
        raise NotImplementedError

    def get(self, node: str) -> T:
        item = self._by_node.get(node)
        if item is None:
            item = self._by_node[node] = self._make(node)
        return item
