"""Who heartbeats whom: a consistent monitoring ring with bounded per-node cost, sans-I/O.

Why. With every node heartbeating every other node the cluster's idle cost is N x (N - 1)
heartbeats per interval and every node runs N - 1 phi accrual detectors: per node O(N), cluster
wide O(N^2). Akka Cluster bounds this with ``HeartbeatNodeRing`` and the setting
``monitored-by-nr-of-members`` (default 9): each node is watched by a fixed number ``k`` of
others, so per-node cost is O(k) whatever the cluster size, while every node is still watched.
This module is that ring; ``HealthConfig.monitored_by_nr_of_members`` is ``k``.

Theory of operation. The members (this node included) are placed on a ring, sorted by a stable
hash of their id (BLAKE2b, the same on every host and every run, unlike Python's ``hash``; ties,
which need a 64-bit collision, fall back to the id). Heartbeats here are one-way (the receiver
runs the phi detector on the sender), so:

* a node sends its heartbeats to its ``k`` successors on the ring (``targets``);
* a node runs phi accrual on, i.e. monitors, its ``k`` predecessors (``monitored``): exactly
  the nodes whose targets include it.

With ``n`` members every node therefore sends to, is monitored by and monitors exactly
``min(k, n - 1)`` others, and never itself; with ``k >= n - 1`` the ring is all-pairs (the
behaviour before the ring). Why a hash rather than the id order: ids are often named by host
(``hostA-1``, ``hostA-2``, ...), and neighbours in id order would then watch each other, so one
host failing would take a node down together with all its monitors. Why a ring rather than a
random choice: it is deterministic from the member set alone (every node that agrees on the
membership agrees on who watches whom, with no coordination), and adding or removing one member
moves only O(k) of the sender -> receiver pairs (the ``k`` predecessors of the changed position
swap one receiver each, plus the member's own pairs), so a join does not reset the phi history
of the whole cluster.

Which members. The adapter passes the node's whole peer table, gone peers included (a killed
node stays a member until it is removed, as Akka keeps unreachable members in its ring until
they are downed), so the ``k`` nodes that monitored a killed node keep watching it and see it
turn Suspected, then Failed. Views that disagree for a moment (a join gossiped to some nodes
first) can make a node watch a peer that does not yet send to it; the silence clock of a newly
watched peer starts when it is added (``HeartbeatMonitor.add_peer``), so this costs nothing as
long as the membership converges within ``heartbeat.timeout_ms``.

Pure: no clock, no I/O; the caller passes the member ids.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = ["DEFAULT_MONITORED_BY", "MonitorRing", "ring_key"]

DEFAULT_MONITORED_BY = 9
"""Akka's ``monitored-by-nr-of-members`` default: clusters of up to 10 nodes stay all-pairs."""


def ring_key(node_id: str) -> tuple[int, str]:
    """The position of ``node_id`` on the ring: a stable 64-bit hash, then the id to break ties."""
    digest = hashlib.blake2b(node_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big"), node_id


class MonitorRing:
    """The members of one view on the hash ring, and who sends heartbeats to whom among them.

    Immutable once built; build a new one when the membership changes (``with_members`` keeps
    this one when the set is the same, so an adapter may call it on every tick cheaply).
    """

    __slots__ = ("_index", "_members", "_set", "monitored_by")

    def __init__(self, members: Iterable[str], monitored_by: int = DEFAULT_MONITORED_BY) -> None:
        if isinstance(monitored_by, bool) or not isinstance(monitored_by, int) or monitored_by < 1:
            raise ValueError(f"monitored_by must be an int >= 1, got {monitored_by!r}")
        self.monitored_by = monitored_by
        """``k``: how many others monitor each member (fewer only when there are fewer others)."""
        self._set = frozenset(members)
        self._members: tuple[str, ...] = tuple(sorted(self._set, key=ring_key))
        self._index = {m: i for i, m in enumerate(self._members)}

    # ------------------------------------------------------------------ the view
    @property
    def members(self) -> tuple[str, ...]:
        """Every member in ring order."""
        return self._members

    @property
    def member_set(self) -> frozenset[str]:
        return self._set

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._set

    def __len__(self) -> int:
        return len(self._members)

    @property
    def fan(self) -> int:
        """How many peers each member sends to and monitors: ``min(k, n - 1)``."""
        return min(self.monitored_by, max(len(self._members) - 1, 0))

    def with_members(self, members: Iterable[str]) -> MonitorRing:
        """The ring of ``members`` with the same ``k``: ``self`` when the set has not changed."""
        new = frozenset(members)
        return self if new == self._set else MonitorRing(new, self.monitored_by)

    # ------------------------------------------------------------------ assignments
    def _walk(self, node_id: str, step: int) -> frozenset[str]:
        i = self._index[node_id]  # KeyError for a non-member: the caller's view must include it
        members, n = self._members, len(self._members)
        return frozenset(members[(i + step * j) % n] for j in range(1, self.fan + 1))

    def targets(self, node_id: str) -> frozenset[str]:
        """The members ``node_id`` sends heartbeats to: its ``min(k, n - 1)`` successors; KeyError if not a member."""
        return self._walk(node_id, 1)

    def monitored(self, node_id: str) -> frozenset[str]:
        """The members ``node_id`` runs phi accrual on: its ``min(k, n - 1)`` predecessors, whose targets include it."""
        return self._walk(node_id, -1)

    def monitors_of(self, node_id: str) -> frozenset[str]:
        """The members that watch ``node_id`` (the receivers of its heartbeats): same as ``targets``."""
        return self.targets(node_id)

    def pairs(self) -> frozenset[tuple[str, str]]:
        """Every (sender, receiver) heartbeat pair of the ring: ``n * min(k, n - 1)`` of them."""
        return frozenset((m, t) for m in self._members for t in self.targets(m))
