"""Pool service: the asyncio adapter that drives the pool cores over the node's real connections.

Backs NETWORKING-003 and 044 (``GET /pool/statistics``), 045 (multiplexed streams), 046
(warm-up) and 047 (eviction). One ``NodePool`` per peer holds this node's *outbound* TCP
connections to that peer; ``PeerPools`` (``pool.peer_pools``) makes every decision over them
and this adapter carries out its actions:

- The node's primary outbound connection to a peer (``node.peers[p].conn``, the one
  ``node.request`` uses) is adopted as the pool's first connection when the peer is first
  used (a lease, a warm-up, the statistics API), not when it merely connects: pools are lazy,
  and one unused for ``idle_pool_timeout_sec`` is released (issue 12, see ``PeerPools``). The
  primary is pinned: if an eviction pass picks it, it is re-adopted instead of closed (closing
  it would only make the node redial). Inbound connections belong to the peer's pool, not ours.
- Warm-up dials more real connections with ``node.dial(host, port, expect_node=peer)``.
- A maintenance task (every ``maintenance_interval_sec``) applies the eviction policy and
  closes what it picks, probes idle connections due a health check with an ``Echo``, refills
  pools below ``min_size`` and releases idle pools; it visits only the peers that have a pool.
  A watcher per pooled connection drops it from the pool the moment the socket closes.
- ``lease(peer)`` is an exclusive acquire/release around one use (FIFO waiters, opens on
  demand), for callers that want pool semantics.

Streams (045) live in ``pool.streams_adapter``: the node's request channel (``request_on``)
counts every exchange as one stream of its connection, capped at ``max_streams``, over
``mux-streams`` wire sessions when both ends offer the capability. A connection is *active*
in the statistics when it is leased or carries at least one in-flight exchange; otherwise it
is idle. The management operations are ``PoolService.api`` (``pool.api``); cluster-wide eviction
settings travel on the node's settings channel (``rustyray.settings``, key ``pool.eviction``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from rustyray.pool.api import EVICTION_KEY, PoolApi, eviction_config
from rustyray.pool.config import PoolConfig, PoolServiceConfig
from rustyray.pool.errors import PoolError, PoolExhaustedError
from rustyray.pool.node_pool import PoolStats
from rustyray.pool.peer_pools import Action, Close, Forget, Hand, Open, PeerPools, Probe, Track
from rustyray.pool.streams_adapter import PoolStreams
from rustyray.pool.waiters_adapter import Waiters
from rustyray.protocol.control import Echo
from rustyray.transport.tcp import parse_address

if TYPE_CHECKING:
    from rustyray.pool.mux_adapter import MuxSession, Stream
    from rustyray.pool.node_pool import Grant
    from rustyray.pool.warmup import WarmupPlan
    from rustyray.protocol.messages import Message
    from rustyray.settings.channel_adapter import SettingsChannel
    from rustyray.transport.api import Host
    from rustyray.transport.connection import Connection

log = logging.getLogger(__name__)


class PoolStatsView:
    """Every pool's stats, plus a row for each connected peer that has no pool (pools are lazy).

    Such a peer's row is its primary connection as one idle connection: the row its pool shows once
    adopted, reported without making the pool (so metrics keep describing every peer, and reading
    them costs no upkeep).
    """

    def __init__(self, service: PoolService) -> None:
        self._svc = service

    def nodes(self) -> list[str]:
        """Peers with a real pool."""
        return self._svc.pools.peers()

    def stats(self) -> list[PoolStats]:
        svc = self._svc
        rows = {s.node: s for s in svc.pools.manager.stats()}
        max_size = svc.config.pool.max_size
        for peer_id, peer in list(svc.node.peers.items()):
            if peer_id not in rows and peer_id != svc.node.node_id and peer.connected:
                rows[peer_id] = PoolStats(node=peer_id, total_connections=1, active=0, idle=1, max_size=max_size,
                                          utilization=0.0, pending_opens=0, waiters=0, checking=0)
        return [rows[p] for p in sorted(rows)]


class PoolService:
    """Per-peer pools of real connections (see the module docstring)."""

    def __init__(self, node: Host, *, settings: SettingsChannel) -> None:
        self.node = node
        self.config = node.config.cluster.pool
        self.pools = PeerPools(self.config.pool)
        self.manager = PoolStatsView(self)
        """The per-peer pool stats the metrics and ``health`` read (unpooled connected peers included)."""
        self.conns: dict[str, Connection] = {}
        """Tracked conn id -> connection; always the keys of ``pools.owner``."""
        self._leases: Waiters[tuple[str, int], str] = Waiters()  # (peer, waiter id) -> conn id
        self.streams = PoolStreams(node, self.config.multiplex)
        self._sessions = self.streams.sessions  # conn id -> wire streams (peer offered mux-streams)
        self.incoming_streams = self.streams.incoming
        self.settings = settings
        """The cluster-wide settings channel (``eviction/configure`` with scope cluster)."""
        settings.subscribe(EVICTION_KEY, lambda _key, value: self.apply_eviction(**value))
        self._watched: set[str] = set()  # conn ids with a live close watcher
        self._pools_changed = asyncio.Event()  # set whenever actions ran: wakes an idle maintenance loop
        self.api = PoolApi(self)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.node.spawn(self._maintain_loop(), name="pool maintenance")

    async def stop(self) -> None:
        self._leases.fail_all(ConnectionError("node stopping"))
        for cid, conn in list(self.conns.items()):
            if cid not in self.pools.primary.values():
                conn.close("node stopping")

    def health(self) -> tuple[str, str]:
        pools = self.manager.stats()
        total = sum(p.total_connections for p in pools)
        policy = self.config.pool.eviction_policy.value
        return "healthy", f"{len(pools)} pools, {total} connections, eviction {policy}"

    # ------------------------------------------------------------------ streams (045), see streams_adapter
    async def request_on(self, conn: Connection, message: Message, *, timeout: float | None = None,
                         priority: int = 1, stream_id: int | None = None) -> Message:
        """The node's request channel: one exchange as one stream of ``conn``."""
        return await self.streams.request_on(conn, message, timeout=timeout, priority=priority, stream_id=stream_id)

    def on_handshake(self, conn: Connection) -> None:
        self.streams.on_handshake(conn)

    def session_for(self, conn: Connection) -> MuxSession | None:
        """The wire-stream session of a connection, None when the peer did not negotiate it."""
        return self.streams.sessions.get(conn.conn_id)

    async def open_stream(self, peer_id: str, timeout: float | None = None) -> Stream:
        """Open a flow-controlled byte stream to ``peer_id`` (see ``PoolStreams.open_stream``)."""
        return await self.streams.open_stream(peer_id, timeout)

    async def accept_stream(self) -> Stream:
        """The next stream any peer opened to this node (when no ``stream_handler`` is set)."""
        return await self.streams.accept_stream()

    @property
    def stream_handler(self) -> Callable[[Stream], Awaitable[None] | None] | None:
        """Called with every stream a peer opens; when None they queue for ``accept_stream``."""
        return self.streams.stream_handler

    @stream_handler.setter
    def stream_handler(self, handler: Callable[[Stream], Awaitable[None] | None] | None) -> None:
        self.streams.stream_handler = handler

    def in_flight(self, conn_id: str) -> int:
        """Request/response exchanges this node has in flight on a connection."""
        return self.streams.in_flight(conn_id)

    # ------------------------------------------------------------------ carrying out the core's actions
    def _apply(self, actions: list[Action], conn: Connection | None = None) -> None:
        """Do what ``PeerPools`` decided, in order; ``conn`` is the connection a ``Track`` names."""
        self._pools_changed.set()
        for action in actions:
            match action:
                case Track(peer=peer_id, conn_id=cid):
                    assert conn is not None and conn.conn_id == cid
                    self.conns[cid] = conn
                    if cid not in self._watched:  # a re-adopted primary keeps its first watcher
                        self._watched.add(cid)
                        self.node.spawn(self._watch(peer_id, conn), name=f"pool watch {cid}")
                case Close(conn_id=cid, reason=reason):
                    self.conns.pop(cid).close(reason)
                case Forget(conn_id=cid):
                    del self.conns[cid]
                case Open(peer=peer_id, count=count):
                    self.node.spawn(self._open(peer_id, count), name=f"pool open {peer_id}")
                case Probe(peer=peer_id, conn_id=cid):
                    self.node.spawn(self._probe(peer_id, cid), name=f"pool probe {cid}")
                case Hand(peer=peer_id, grant=grant):
                    self._deliver(peer_id, grant)

    def _deliver(self, peer_id: str, grant: Grant | None) -> None:
        """Hand a granted connection to its waiter, or give it back if the waiter left."""
        while grant is not None and not self._leases.resolve((peer_id, grant.waiter_id), grant.conn_id):
            grant = self.pools.give_back(peer_id, grant.conn_id, time.monotonic())

    # ------------------------------------------------------------------ connection tracking
    def on_peer_event(self, event: str, peer_id: str) -> None:
        if event == "connected" and peer_id in self.pools.manager:
            self._adopt_primary(peer_id)  # a reconnect of a peer in use; others wait for their first use

    def adopt_connected(self) -> None:
        """Adopt the primary connection of every connected peer (the statistics API: report them all)."""
        for peer_id, peer in list(self.node.peers.items()):
            if peer.connected:
                self._adopt_primary(peer_id)

    def _adopt_primary(self, peer_id: str) -> None:
        """Make the node's primary connection to ``peer_id`` the pool's pinned first connection."""
        peer = self.node.peers.get(peer_id)
        if peer is None or not peer.connected or peer_id == self.node.node_id:
            return
        conn = peer.conn
        assert conn is not None
        self._apply(self.pools.adopt_primary(peer_id, conn.conn_id, time.monotonic()), conn)

    async def _watch(self, peer_id: str, conn: Connection) -> None:
        try:
            await conn.wait_closed()
        finally:
            self._watched.discard(conn.conn_id)
        self._apply(self.pools.connection_lost(peer_id, conn.conn_id))

    # ------------------------------------------------------------------ opening
    async def _dial_one(self, peer_id: str) -> bool:
        pool = self.pools.pool(peer_id)
        peer = self.node.peers.get(peer_id)
        try:
            if peer is None:
                raise ConnectionError(f"{peer_id} is not a known peer")
            host, port = parse_address(peer.tcp_address, field="tcp_address")
            conn, _ack = await self.node.dial(host, port, expect_node=peer_id)
        except (ConnectionError, OSError, ValueError) as exc:
            log.info("%s: pool open to %s failed: %s", self.node.node_id, peer_id, exc)
            self.pools.dial_failed(pool)
            return False
        if not self.pools.is_current(pool) or not self.node.running:
            conn.close("pool removed")
            return False
        self._apply(self.pools.dialled(pool, conn.conn_id, time.monotonic()), conn)
        return True

    async def _open(self, peer_id: str, count: int) -> int:
        if count <= 0:
            return 0
        results = await asyncio.gather(*(self._dial_one(peer_id) for _ in range(count)))
        return sum(results)

    async def warmup(self, peer_id: str, target_size: int) -> tuple[WarmupPlan, int]:
        """Dial until the pool to a connected ``peer_id`` holds min(target, max_size); the plan and the opened count."""
        self._adopt_primary(peer_id)
        plan = self.pools.pool(peer_id).warmup(target_size)
        self._pools_changed.set()
        return plan, await self._open(peer_id, plan.to_open)

    # ------------------------------------------------------------------ leasing
    @contextlib.asynccontextmanager
    async def lease(self, peer_id: str, timeout: float | None = None) -> AsyncIterator[Connection]:
        """Exclusive use of one pooled connection to ``peer_id`` for the duration of the block.

        Raises ``PoolExhaustedError`` when the waiter queue is full, ``TimeoutError`` when no
        connection frees up within ``timeout`` (default ``acquire_timeout_sec``) and
        ``KeyError`` for an unknown peer. A connection that closed during the lease is
        dropped from the pool on release.
        """
        if peer_id not in self.node.peers or peer_id == self.node.node_id:
            raise KeyError(peer_id)
        self._adopt_primary(peer_id)
        pool = self.pools.pool(peer_id)
        self._pools_changed.set()
        now = time.monotonic()
        outcome, opens = self.pools.acquire(pool, now, timeout)
        conn_id = outcome.conn_id
        if conn_id is None:
            assert outcome.deadline is not None
            self._apply(opens)

            def abandon(granted: str | None) -> None:
                self._apply(self.pools.abandon(pool, outcome.waiter_id, granted, time.monotonic()))

            conn_id = await self._leases.wait((peer_id, outcome.waiter_id), outcome.deadline - now, abandon)
        conn = self.conns.get(conn_id)
        if conn is None:  # closed between the grant and now
            self._apply(self.pools.lost_before_use(pool, conn_id, time.monotonic()))
            raise ConnectionError(f"pooled connection {conn_id} to {peer_id} closed before use")
        try:
            yield conn
        finally:
            self._apply(self.pools.end_lease(pool, conn_id, time.monotonic(), healthy=not conn.is_closed))

    # ------------------------------------------------------------------ maintenance
    async def _maintain_loop(self) -> None:
        while True:
            try:
                self.maintain()
            except PoolError:
                log.exception("pool maintenance failed on %s", self.node.node_id)
            await asyncio.sleep(self.config.maintenance_interval_sec)
            if not self.pools.peers():  # nothing to maintain: sleep until a pool appears, not every interval
                self._pools_changed.clear()
                await self._pools_changed.wait()

    def maintain(self) -> list[str]:
        """One pass: adopt primaries, drop departed peers' pools, evict, probe, refill; returns closed ids."""
        now = time.monotonic()
        pooled = self.pools.peers()
        for peer_id in pooled:
            self._adopt_primary(peer_id)  # a primary replaced since the last pass
        peers = [(p, self.node.peers.get(p)) for p in pooled]
        activity = {p: sum(self.streams.opened_total(c) for c in self.pools.pooled_ids(p)) for p in pooled}
        actions, evicted = self.pools.maintain(
            now, wanted={p for p, peer in peers if peer is not None and peer.wanted},
            connected={p for p, peer in peers if peer is not None and peer.connected},
            closed={cid for cid, conn in self.conns.items() if conn.is_closed}, activity=activity)
        self._apply(actions)
        self.streams.prune()
        return evicted

    async def _probe(self, peer_id: str, conn_id: str) -> None:
        conn = self.conns.get(conn_id)
        ok = False
        if conn is not None and not conn.is_closed:
            try:
                await self.node.request_on(conn, Echo(data=b""), timeout=self.config.health_probe_timeout_sec)
                ok = True
            except Exception as exc:  # any failure means the connection is not fit for use
                log.info("%s: health probe on %s failed: %s", self.node.node_id, conn_id, exc)
        self._apply(self.pools.probe_result(peer_id, conn_id, ok, time.monotonic()))

    # ------------------------------------------------------------------ reads for other services
    def connection_count(self, peer_id: str) -> int:
        """Open pooled connections to ``peer_id`` (what LeastConnections reads).

        A read: a peer without a pool counts its primary connection (1 when connected) and gets
        no pool, so the balancer asking about every candidate does not make pools for them all.
        """
        if peer_id in self.pools.manager:
            self._adopt_primary(peer_id)
            return self.pools.connections_to(peer_id)
        peer = self.node.peers.get(peer_id)
        return 1 if peer is not None and peer.connected else 0

    # ------------------------------------------------------------------ configuration
    def apply_eviction(self, policy: str, idle_timeout_sec: float, max_lifetime_sec: float,
                       max_idle: int | None = None) -> PoolConfig:
        """Validate and install a new eviction config on every pool; runs one maintenance pass."""
        new = eviction_config(self.config.pool, policy, idle_timeout_sec, max_lifetime_sec, max_idle)
        self.config = dataclasses.replace(self.config, pool=new)
        self.pools.set_config(new)
        self.maintain()
        return new


__all__ = ["PoolExhaustedError", "PoolService", "PoolServiceConfig"]
