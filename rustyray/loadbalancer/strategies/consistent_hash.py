"""Consistent hashing with virtual nodes and bounded loads.

Theory of operation: every node is placed on a 64-bit ring at ``vnodes`` points
(Karger et al. 1997); a key goes to the owner of the first point clockwise from the key's
hash. A joining node takes over only the arcs in front of its own points, so about 1/N of
the keys move, all of them to the newcomer. The hash is BLAKE2b truncated to 8 bytes, so it
is stable across processes and Python versions (unlike ``hash()``).

Bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads",
SODA 2018 / arXiv 2017): with ``m`` tracked in-flight assignments over ``n`` nodes, each node
has capacity ``ceil((1 + epsilon) * (m + 1) / n)`` when the next key is placed; if the ring
owner is full the key walks clockwise to the first node below capacity. Capacity only grows
while assignments are added, so no node ever holds more than ``ceil((1 + epsilon) * m / n)``
of an add-only sequence. Releases (``on_complete``) lower the load; in-flight requests are
never migrated, so after releases a node can sit above the new, lower cap until it drains.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rustyray.loadbalancer.errors import MissingRoutingKeyError, require
from rustyray.loadbalancer.strategies.base import (
    NodeLoad,
    Selection,
    Strategy,
    StrategyName,
    require_candidates,
)


def stable_hash64(data: str) -> int:
    """Stable unsigned 64-bit hash of a string (BLAKE2b, 8-byte digest, big endian)."""
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class ConsistentHashConfig:
    """Ring shape and load bound."""

    virtual_nodes: int = 100
    """Points per node on the ring; more points give a smoother split (relative spread ~ 1/sqrt(v))."""
    bounded_loads: bool = True
    """Cap each node at ceil((1 + epsilon) * average) of tracked in-flight load."""
    epsilon: float = 0.25
    """Slack over the average load; smaller is tighter balance but more keys leave their ring owner."""

    def validate(self) -> None:
        require(self.virtual_nodes >= 1, "virtual_nodes", "must be >= 1")
        require(self.epsilon > 0, "epsilon", "must be > 0")


class HashRing:
    """An immutable ring over one set of nodes."""

    def __init__(self, nodes: Sequence[str], virtual_nodes: int) -> None:
        points: list[tuple[int, str]] = []
        for node in set(nodes):
            points.extend((stable_hash64(f"{node}#{i}"), node) for i in range(virtual_nodes))
        points.sort()
        self.nodes = frozenset(nodes)
        self.points = [p for p, _ in points]
        self.owners = [n for _, n in points]

    def index(self, hash_value: int) -> int:
        """Index of the first ring point at or after ``hash_value`` (wrapping)."""
        i = bisect.bisect_left(self.points, hash_value)
        return 0 if i == len(self.points) else i

    def owner(self, hash_value: int) -> str:
        return self.owners[self.index(hash_value)]

    def walk(self, hash_value: int):
        """Distinct nodes in clockwise order starting at the key's owner."""
        start = self.index(hash_value)
        seen: set[str] = set()
        owners = self.owners
        size = len(owners)
        for step in range(size):
            node = owners[(start + step) % size]
            if node not in seen:
                seen.add(node)
                yield node
                if len(seen) == len(self.nodes):
                    return


class ConsistentHash(Strategy):
    """Ring lookup by routing key; with ``bounded_loads`` the strategy tracks the load it assigned.

    Call ``on_complete(node)`` when a request routed here finishes, so the tracked load drops.
    """

    name = StrategyName.CONSISTENT_HASH

    def __init__(self, config: ConsistentHashConfig | None = None) -> None:
        self.config = config or ConsistentHashConfig()
        self.config.validate()
        self.loads: dict[str, int] = {}
        self._ring: HashRing | None = None
        self._ring_total = 0

    def ring(self, candidates: Sequence[str]) -> HashRing:
        """The ring for this candidate set (rebuilt only when the set changes)."""
        ring = self._ring
        if ring is None or len(ring.nodes) != len(candidates) or not ring.nodes.issuperset(candidates):
            ring = HashRing(candidates, self.config.virtual_nodes)
            self._ring = ring
            self._ring_total = sum(self.loads.get(n, 0) for n in ring.nodes)
        return ring

    def capacity(self, candidates: Sequence[str]) -> int:
        """Load cap for the next assignment: ceil((1 + eps) * (m + 1) / n)."""
        self.ring(candidates)
        return math.ceil((1 + self.config.epsilon) * (self._ring_total + 1) / len(self._ring.nodes))

    def owner(self, key: str, candidates: Sequence[str]) -> str:
        """The plain ring owner of ``key``, ignoring loads (no state change)."""
        require_candidates(candidates)
        return self.ring(candidates).owner(stable_hash64(key))

    def select(self, candidates: Sequence[str], key: str | None, stats: Mapping[str, NodeLoad]) -> Selection:
        require_candidates(candidates)
        if key is None:
            raise MissingRoutingKeyError("ConsistentHash needs a routing key")
        hash_value = stable_hash64(key)
        ring = self.ring(candidates)
        if not self.config.bounded_loads:
            return Selection(selected_node=ring.owner(hash_value), strategy=self.name, hash_value=hash_value)
        cap = math.ceil((1 + self.config.epsilon) * (self._ring_total + 1) / len(ring.nodes))
        loads = self.loads
        chosen = None
        for node in ring.walk(hash_value):
            if loads.get(node, 0) < cap:
                chosen = node
                break
        # n * cap >= (1 + eps) * (m + 1) > m, so some node is below the cap.
        assert chosen is not None, "bounded-load walk found no node below capacity"
        loads[chosen] = loads.get(chosen, 0) + 1
        self._ring_total += 1
        return Selection(selected_node=chosen, strategy=self.name, hash_value=hash_value)

    def on_complete(self, node: str) -> None:
        current = self.loads.get(node, 0)
        if current <= 0:
            return
        self.loads[node] = current - 1
        if self._ring is not None and node in self._ring.nodes:
            self._ring_total -= 1

    def reset_loads(self) -> None:
        """Forget every tracked assignment (e.g. after the adapter lost track of in-flight work)."""
        self.loads.clear()
        self._ring_total = 0
