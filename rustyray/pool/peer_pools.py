"""The pool service's decisions over every peer's ``NodePool`` (NETWORKING-003, -044, -046, -047), sans-I/O.

Theory of operation: ``NodePool`` counts one peer's connections; this core adds what the node
needs around it, still in opaque conn ids, and answers every event with a list of actions the
adapter (``pool.service``) carries out in order:

- Ownership. Every conn id a pool holds (or has retired and not yet closed) is *tracked*, with
  its peer, in ``owner``. ``Track`` tells the adapter to hold and watch a connection, ``Close``
  to close one the pool gave up, ``Forget`` to let go of one without closing it (it closed, or
  it is the node's own). So the adapter's connections are always exactly ``owner``'s keys.
- The pinned primary. The node's primary outbound connection to a peer (the one its requests
  use) becomes the pool's first connection (``adopt_primary``); a full pool closes an idle
  connection to make room, and waits for the next pass when every slot is leased. An eviction
  that picks the primary re-adopts it instead of closing it (closing would only make the node
  redial). A primary that is replaced or closes leaves the pool (``connection_lost``).
- Leases (``acquire``, ``abandon``, ``lost_before_use``, ``end_lease``). ``Hand`` gives a
  connection NodePool granted to a FIFO waiter; when that waiter has left the adapter calls
  ``give_back``. A connection found closed at release leaves the pool and ``Open`` starts
  replacements for the remaining waiters. The lease calls take the ``NodePool`` the lease began
  on, so a lease that outlives its peer's pool touches no newer pool.
- Maintenance (``maintain(now, ...)``): drop the pools of peers the node no longer wants,
  apply the eviction policy, start health probes (``Probe``; ``probe_result`` settles one),
  refill connected peers' pools below ``min_size`` and release idle pools.
- Bounded upkeep (issue 12). Pools are lazy: the adapter adopts a primary only when the peer is
  used (a lease, a warm-up, the statistics API), never merely because it connected, and a pool
  left quiet for ``idle_pool_timeout_sec`` is released (``Close`` for its dialled connections,
  ``Forget`` for the primary, which stays the node's). ``activity`` tells ``maintain`` how many
  exchanges each pooled peer's connections have started; a change counts as use. So probes,
  refills and eviction passes cost in proportion to the peers this node talks to, not the
  cluster size.
- Dials: the adapter dials with the pool it planned for (``pool(peer)``) and reports
  ``dial_failed`` or ``dialled``; a dial that ends after that pool was dropped is closed
  (``is_current`` is False), not added.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from rustyray.pool.config import PoolConfig
from rustyray.pool.manager import PoolManager
from rustyray.pool.node_pool import AcquireOutcome, ConnectionState, Grant, NodePool


@dataclass(frozen=True)
class Track:
    """Hold ``conn_id`` (the connection just adopted or dialled) for ``peer`` and watch it close."""

    peer: str
    conn_id: str


@dataclass(frozen=True)
class Close:
    """Close ``conn_id`` with ``reason`` and let go of it; it already left its pool."""

    conn_id: str
    reason: str


@dataclass(frozen=True)
class Forget:
    """Let go of ``conn_id`` without closing it."""

    conn_id: str


@dataclass(frozen=True)
class Open:
    """Dial ``count`` new connections to ``peer`` (already counted as pending in its pool)."""

    peer: str
    count: int


@dataclass(frozen=True)
class Hand:
    """Give the granted connection to its waiter (or ``give_back`` it when the waiter left)."""

    peer: str
    grant: Grant


@dataclass(frozen=True)
class Probe:
    """Send a health probe on the idle ``conn_id`` and report ``probe_result``."""

    peer: str
    conn_id: str


Action = Track | Close | Forget | Open | Hand | Probe


class PeerPools:
    """Pools of connections to every peer, with the pinned primaries (see the module docstring)."""

    def __init__(self, config: PoolConfig) -> None:
        self.manager = PoolManager(config)
        self.owner: dict[str, str] = {}
        """Tracked conn id -> peer, in tracking order."""
        self.primary: dict[str, str] = {}
        """Peer -> conn id of the node's primary connection to it."""
        self.opened_total = 0
        """Connections the pools dialled."""
        self.evicted_total = 0
        """Connections eviction closed."""
        self.released_total = 0
        """Idle pools released (``idle_pool_timeout_sec``)."""
        self._activity: dict[str, int] = {}
        """Peer -> the exchange count ``maintain`` last saw for it."""

    # ---- reads --------------------------------------------------------------------------

    def pool(self, peer: str) -> NodePool:
        """The peer's pool (created empty on first use)."""
        return self.manager.get(peer)

    def connections_to(self, peer: str) -> int:
        """Open pooled connections to ``peer`` (0 without a pool)."""
        return self.manager.get(peer).total if peer in self.manager else 0

    def peers(self) -> list[str]:
        """Peers with a pool, sorted."""
        return self.manager.nodes()

    def pooled_ids(self, peer: str) -> list[str]:
        """Tracked conn ids in ``peer``'s pool, in tracking order."""
        pool = self.manager.get(peer)
        return [c for c, p in self.owner.items() if p == peer and pool.state_of(c) is not None]

    def set_config(self, config: PoolConfig) -> None:
        """Install a new config on the manager and every pool."""
        self.manager.config = config
        for peer in self.manager.nodes():
            self.manager.get(peer).config = config

    # ---- the primary connection ---------------------------------------------------------

    def adopt_primary(self, peer: str, conn_id: str, now: float) -> list[Action]:
        """The node's primary connection to ``peer`` is ``conn_id``: make it the pinned first connection."""
        if self.primary.get(peer) == conn_id and conn_id in self.owner:
            return []
        pool = self.manager.get(peer)
        actions: list[Action] = []
        old = self.primary.get(peer)
        if old is not None and old != conn_id:
            actions += self.connection_lost(peer, old)
        if pool.total >= pool.config.max_size and pool.pending == 0:
            victim = next((c for c, p in self.owner.items() if p == peer
                           and pool.state_of(c) is ConnectionState.IDLE), None)
            if victim is None:
                return actions  # every slot is leased; the next maintenance pass retries
            pool.discard(victim)
            actions.append(self._close(victim, "replaced by the primary connection"))
        self.primary[peer] = conn_id
        actions.append(self._track(peer, conn_id))
        return actions + self._hand(peer, pool.add_connection(conn_id, now))

    def connection_lost(self, peer: str, conn_id: str) -> list[Action]:
        """A tracked connection closed (or stopped being the primary): out of the pool, replacements for waiters."""
        if self.primary.get(peer) == conn_id:
            del self.primary[peer]
        actions: list[Action] = [self._forget(conn_id)] if conn_id in self.owner else []
        if peer not in self.manager:
            return actions  # its pool was dropped already; do not make an empty one
        pool = self.manager.get(peer)
        if pool.state_of(conn_id) is not None:
            pool.discard(conn_id)
            actions += self._opens(peer, pool.plan_opens())
        return actions

    # ---- leases -------------------------------------------------------------------------

    def acquire(self, pool: NodePool, now: float, timeout: float | None) -> tuple[AcquireOutcome, list[Action]]:
        """Lease from ``pool`` now or queue a waiter (NodePool.acquire), with the opens it asks for."""
        outcome = pool.acquire(now, timeout)
        return outcome, self._opens(pool.node, outcome.open_connections)

    def give_back(self, peer: str, conn_id: str, now: float) -> Grant | None:
        """A connection granted to a waiter that left: release it (it may go to the next waiter)."""
        return self.manager.get(peer).release(conn_id, now)

    def abandon(self, pool: NodePool, waiter_id: int, granted: str | None, now: float) -> list[Action]:
        """The waiter gave up (timeout, cancel); ``granted`` is what it was handed meanwhile, if anything."""
        if not pool.cancel(waiter_id) and granted is not None:
            return self._hand(pool.node, pool.release(granted, now))
        return []

    def lost_before_use(self, pool: NodePool, conn_id: str, now: float) -> list[Action]:
        """The granted connection closed between the grant and its use."""
        if pool.state_of(conn_id) is ConnectionState.ACTIVE:
            return self._hand(pool.node, pool.release(conn_id, now, healthy=False))
        return []

    def end_lease(self, pool: NodePool, conn_id: str, now: float, healthy: bool) -> list[Action]:
        """The lease ended; an unhealthy (closed) connection leaves the pool and is replaced for the waiters."""
        if pool.state_of(conn_id) is not ConnectionState.ACTIVE:
            return []
        actions = self._hand(pool.node, pool.release(conn_id, now, healthy=healthy))
        if not healthy and conn_id in self.owner:
            actions.append(self._forget(conn_id))
            actions += self._opens(pool.node, pool.plan_opens())
        return actions

    # ---- dials --------------------------------------------------------------------------

    def dial_failed(self, pool: NodePool) -> None:
        pool.connect_failed()

    def is_current(self, pool: NodePool) -> bool:
        """Is ``pool`` still its peer's pool (not dropped since the dial began)?"""
        return pool.node in self.manager and self.manager.get(pool.node) is pool

    def dialled(self, pool: NodePool, conn_id: str, now: float) -> list[Action]:
        """A dial for the current ``pool`` finished: track it; it serves the head waiter or idles."""
        self.opened_total += 1
        return [self._track(pool.node, conn_id), *self._hand(pool.node, pool.add_connection(conn_id, now))]

    # ---- maintenance --------------------------------------------------------------------

    def maintain(self, now: float, wanted: Collection[str], connected: Collection[str],
                 closed: Collection[str], activity: Mapping[str, int] | None = None) -> tuple[list[Action], list[str]]:
        """One pass over every pool; returns the actions and the evicted conn ids.

        ``wanted``: peers the node still wants; ``connected``: peers with a live primary
        connection; ``closed``: tracked conn ids whose connection has closed; ``activity``:
        pooled peer -> exchanges started on its connections so far (a change since the last pass
        is a use; a peer not in it is judged by its leases alone).
        """
        actions: list[Action] = []
        for peer in self.manager.nodes():
            if peer not in wanted:
                self.primary.pop(peer, None)
                self._activity.pop(peer, None)
                actions += [self._close(c, "peer left") for c in self.manager.remove(peer) if c in self.owner]
        for peer, count in (activity or {}).items():
            if peer in self.manager and self._activity.get(peer) != count:
                self._activity[peer] = count
                self.manager.get(peer).touch(now)
        for peer in self.manager.nodes():
            since = self.manager.get(peer).idle_since()
            if since is not None and now - since >= self.manager.config.idle_pool_timeout_sec:
                actions += self.release(peer)
        evicted: list[str] = []
        for peer in self.manager.nodes():
            pool = self.manager.get(peer)
            for cid in pool.evict(now):
                if cid == self.primary.get(peer) and cid in self.owner and cid not in closed:
                    actions += self._hand(peer, pool.add_connection(cid, now))  # pinned: re-adopt
                    continue
                if cid in self.owner:
                    actions.append(self._close(cid, f"evicted ({pool.config.eviction_policy.value})"))
                    self.evicted_total += 1
                    evicted.append(cid)
            actions += [Probe(peer, cid) for cid in pool.health_checks_due(now)]
            if peer in connected and pool.total + pool.pending < pool.config.min_size:
                actions += self._opens(peer, pool.warmup(pool.config.min_size).to_open)
        return actions, evicted

    def release(self, peer: str) -> list[Action]:
        """Drop ``peer``'s pool: close its dialled connections, let go of the primary (the node's)."""
        primary = self.primary.pop(peer, None)
        self._activity.pop(peer, None)
        self.released_total += 1
        actions: list[Action] = []
        for cid in self.manager.remove(peer):
            if cid in self.owner:
                actions.append(self._forget(cid) if cid == primary else self._close(cid, "pool idle"))
        return actions

    def probe_result(self, peer: str, conn_id: str, ok: bool, now: float) -> list[Action]:
        """A health probe finished; a failed connection is closed and replaced for the waiters."""
        pool = self.manager.get(peer)
        if pool.state_of(conn_id) is not ConnectionState.CHECKING:
            return []
        actions = self._hand(peer, pool.health_check_result(conn_id, ok, now))
        if not ok and conn_id in self.owner:
            actions.append(self._close(conn_id, "health probe failed"))
            actions += self._opens(peer, pool.plan_opens())
        return actions

    # ---- internals ----------------------------------------------------------------------

    def _track(self, peer: str, conn_id: str) -> Track:
        self.owner[conn_id] = peer
        return Track(peer, conn_id)

    def _close(self, conn_id: str, reason: str) -> Close:
        del self.owner[conn_id]
        return Close(conn_id, reason)

    def _forget(self, conn_id: str) -> Forget:
        del self.owner[conn_id]
        return Forget(conn_id)

    @staticmethod
    def _opens(peer: str, count: int) -> list[Action]:
        return [Open(peer, count)] if count > 0 else []

    @staticmethod
    def _hand(peer: str, grant: Grant | None) -> list[Action]:
        return [Hand(peer, grant)] if grant is not None else []
