"""Pool service: the asyncio adapter that drives ``NodePool`` over the node's real connections.

Backs NETWORKING-003 and 044 (``GET /pool/statistics``), 045 (multiplexed streams), 046
(warm-up) and 047 (eviction). One ``NodePool`` per peer holds this node's *outbound* TCP
connections to that peer:

- The node's primary outbound connection to a peer (``node.peers[p].conn``, the one
  ``node.request`` uses) is adopted as the pool's first connection. It is pinned: if an
  eviction pass picks it, it is re-adopted instead of closed (closing it would only make the
  node redial). Inbound connections belong to the peer's pool, not ours.
- Warm-up dials more real connections with ``node.dial(host, port, expect_node=peer)``.
- A maintenance task (every ``maintenance_interval_sec``) applies the eviction policy and
  closes what it picks, probes idle connections due a health check with an ``Echo``, and
  refills pools below ``min_size``. A watcher per pooled connection drops it from the pool
  the moment the socket closes.
- ``lease(peer)`` is an exclusive acquire/release around one use (FIFO waiters, opens on
  demand), for callers that want pool semantics.

Streams (045): the service wraps ``node.request_on`` on the node *instance*: every
request/response exchange opens one logical stream for the connection it travels on and
closes it when the reply (or the timeout) arrives. When ``max_streams`` streams this node
opened are in flight on one connection the next one waits for a free stream (HTTP/2
SETTINGS_MAX_CONCURRENT_STREAMS semantics), within the request's own timeout. Only exchanges
this node initiates are counted (send side).

When both ends offer the ``mux-streams`` capability (added here when ``multiplexing`` is one
of the node's configured capabilities) the connection gets a ``MuxSession``: the exchange's
stream id then travels in the request frame (``Flags.STREAM``; the reply echoes it), and
byte streams with flow control (``open_stream(peer)``, inbound ones via ``on_stream`` /
``accept_stream``) share the same ``max_streams`` limit. Without it, the old in-process
accounting (``_Streams``) applies.

A connection is *active* in the statistics when it is leased or carries at least one
in-flight exchange; otherwise it is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rustyray.errors import ApiError
from rustyray.pool.config import EvictionPolicy, PoolConfig
from rustyray.pool.errors import MultiplexError, PoolConfigError, PoolError, PoolExhaustedError
from rustyray.pool.manager import PoolManager
from rustyray.pool.multiplexing import MultiplexConfig, MultiplexedConnection
from rustyray.pool.mux_adapter import MUX_CAPABILITY, MuxSession, Stream
from rustyray.pool.node_pool import ConnectionState, Grant, NodePool
from rustyray.pool.stream_messages import StreamData, StreamOpen, StreamReset, StreamWindowUpdate
from rustyray.protocol.control import Echo
from rustyray.protocol.messages import Message
from rustyray.transport.tcp import parse_address

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext
    from rustyray.transport.connection import Connection

log = logging.getLogger(__name__)

# The pool picks the most recently used idle connection (see NodePool.acquire).
SELECTION_STRATEGY = "MostRecentlyUsed"


@dataclass(frozen=True)
class PoolServiceConfig:
    """Pool adapter settings; read from the ``[pool]`` table (sub-tables ``multiplex``)."""

    pool: PoolConfig = field(default_factory=lambda: PoolConfig(min_size=1))
    """Per-peer pool limits. min_size defaults to 1: the pinned primary connection covers it."""
    multiplex: MultiplexConfig = field(default_factory=MultiplexConfig)
    """Stream limit per connection (max_streams, default 100)."""
    maintenance_interval_sec: float = 0.5
    """Seconds between maintenance passes (eviction, health probes, min_size refill)."""
    health_probe_timeout_sec: float = 2.0
    """Timeout (s) of the Echo probe sent on an idle connection due a health check."""

    def validate(self) -> None:
        self.pool.validate()
        self.multiplex.validate()
        if self.maintenance_interval_sec <= 0:
            raise PoolConfigError("maintenance_interval_sec: must be > 0")
        if self.health_probe_timeout_sec <= 0:
            raise PoolConfigError("health_probe_timeout_sec: must be > 0")

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> PoolServiceConfig:
        """Build from the raw TOML table: top-level keys of PoolConfig or of this class."""
        table = dict(table)
        mux = MultiplexConfig(**table.pop("multiplex", {}))
        own = {f.name for f in dataclasses.fields(cls)} - {"pool", "multiplex"}
        pool_fields = {f.name for f in dataclasses.fields(PoolConfig)}
        pool_kw: dict[str, Any] = {"min_size": 1}
        kw: dict[str, Any] = {}
        for key, value in table.items():
            if key in own:
                kw[key] = value
            elif key in pool_fields:
                pool_kw[key] = EvictionPolicy(value) if key == "eviction_policy" else value
            else:
                raise PoolConfigError(f"{key}: unknown [pool] setting")
        cfg = cls(pool=PoolConfig(**pool_kw), multiplex=mux, **kw)
        cfg.validate()
        return cfg


class PoolConfigUpdate(Message):
    """Apply an eviction configuration on a peer (cluster-wide ``eviction/configure``)."""

    policy: str
    idle_timeout_sec: float
    max_lifetime_sec: float
    max_idle: int | None = None
    origin: str = ""


class PoolConfigAck(Message):
    node_id: str
    applied: bool
    error: str = ""


class _Streams:
    """Stream accounting for one live connection."""

    def __init__(self, conn: Connection, config: MultiplexConfig) -> None:
        self.conn = conn
        self.mux = MultiplexedConnection(conn.conn_id, conn.peer_node_id or "", config)
        self.opened_total = 0
        self.peak = 0
        self.waiting: deque[asyncio.Future[None]] = deque()

    async def open(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.mux.active_streams >= self.mux.config.max_streams:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiting.append(fut)
            try:
                await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
            finally:
                with contextlib.suppress(ValueError):
                    self.waiting.remove(fut)
        stream_id = self.mux.open_stream()
        self.opened_total += 1
        self.peak = max(self.peak, self.mux.active_streams)
        return stream_id

    def close(self, stream_id: int) -> None:
        self.mux.close_stream(stream_id)
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_result(None)
                break


class PoolService:
    """Per-peer pools of real connections (see the module docstring)."""

    def __init__(self, node: Host) -> None:
        self.node = node
        self.config = PoolServiceConfig.from_table(node.config.section("pool"))
        self.manager = PoolManager(self.config.pool)
        self.conns: dict[str, Connection] = {}  # pooled conn id -> connection
        self._owner: dict[str, str] = {}  # pooled conn id -> peer
        self._primary: dict[str, str] = {}  # peer -> conn id of node.peers[peer].conn
        self._waiters: dict[tuple[str, int], asyncio.Future[str]] = {}
        self._streams: dict[str, _Streams] = {}
        self._sessions: dict[str, MuxSession] = {}  # conn id -> wire streams (peer offered mux-streams)
        self.incoming_streams: asyncio.Queue[Stream] = asyncio.Queue()
        self.stream_handler: Callable[[Stream], Awaitable[None] | None] | None = None
        """Called with every stream a peer opens; when None they queue for ``accept_stream``."""
        self._evicted_total = 0
        self._opened_total = 0
        for msg_type in (StreamOpen, StreamData, StreamWindowUpdate, StreamReset):
            node.on(msg_type, self._on_stream_frame)
        node.on(PoolConfigUpdate, self._on_config_update)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.node.spawn(self._maintain_loop(), name="pool maintenance")

    async def stop(self) -> None:
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(ConnectionError("node stopping"))
        for cid, conn in list(self.conns.items()):
            if cid not in self._primary.values():
                conn.close("node stopping")

    def health(self) -> tuple[str, str]:
        pools = self.manager.stats()
        total = sum(p.total_connections for p in pools)
        policy = self.config.pool.eviction_policy.value
        return "healthy", f"{len(pools)} pools, {total} connections, eviction {policy}"

    # ------------------------------------------------------------------ streams (045)
    def _streams_for(self, conn: Connection) -> _Streams:
        streams = self._streams.get(conn.conn_id)
        if streams is None:
            streams = self._streams[conn.conn_id] = _Streams(conn, self.config.multiplex)
        return streams

    # --- wire streams (both ends offer mux-streams) ----------------------------------------
    def on_handshake(self, conn: Connection) -> None:
        if MUX_CAPABILITY not in conn.peer_capabilities or MUX_CAPABILITY not in self.node.capabilities:
            return
        session = MuxSession(conn, self.config.multiplex, on_stream=self._stream_opened_by_peer)
        self._sessions[conn.conn_id] = session
        self.node.spawn(self._watch_session(session), name=f"mux watch {conn.conn_id}")

    async def _watch_session(self, session: MuxSession) -> None:
        try:
            await session.conn.wait_closed()
        finally:
            session.connection_lost()
            self._sessions.pop(session.conn.conn_id, None)

    def _on_stream_frame(self, ctx: RequestContext, msg: Message) -> None:
        session = self._sessions.get(ctx.conn.conn_id)
        if session is None:
            log.info("%s: stream frame on %s, which did not negotiate %s; ignored", self.node.node_id,
                     ctx.conn.conn_id, MUX_CAPABILITY)
            return
        session.frame_received(ctx.frame.stream_id, msg)

    def _stream_opened_by_peer(self, stream: Stream) -> None:
        handler = self.stream_handler
        if handler is None:
            self.incoming_streams.put_nowait(stream)
            return
        result = handler(stream)
        if result is not None:
            self.node.spawn(result, name=f"stream {stream.stream_id} on {stream.session.conn.conn_id}")

    def session_for(self, conn: Connection) -> MuxSession | None:
        """The wire-stream session of a connection, None when the peer did not negotiate it."""
        return self._sessions.get(conn.conn_id)

    async def open_stream(self, peer_id: str, timeout: float | None = None) -> Stream:
        """Open a flow-controlled byte stream to ``peer_id`` on the node's primary connection.

        Waits while ``max_streams`` streams of ours are open on it (``TimeoutError`` after
        ``timeout``); raises ``MultiplexError`` when the peer did not negotiate ``mux-streams``.
        """
        conn = await self.node.connection_to(peer_id, timeout=timeout)
        session = self._sessions.get(conn.conn_id)
        if session is None:
            raise MultiplexError(f"{peer_id} did not negotiate {MUX_CAPABILITY} on {conn.conn_id}")
        return await session.open_stream(timeout)

    async def accept_stream(self) -> Stream:
        """The next stream any peer opened to this node (when no ``stream_handler`` is set)."""
        return await self.incoming_streams.get()

    async def request_on(self, conn: Connection, message: Message, *, timeout: float | None = None,
                          priority: int = 1, stream_id: int | None = None) -> Message:
        timeout = timeout or self.node.config.transport.request_timeout_s
        start = time.monotonic()
        session = self._sessions.get(conn.conn_id)
        if session is not None and stream_id is None:
            sid = await session.open_exchange(timeout)
            try:
                remaining = max(0.001, timeout - (time.monotonic() - start))
                return await self.node.direct_request_on(conn, message, timeout=remaining, priority=priority,
                                                       stream_id=sid)
            finally:
                session.close_exchange(sid)
        streams = self._streams_for(conn)
        stream_id = await streams.open(timeout)
        try:
            remaining = max(0.001, timeout - (time.monotonic() - start))
            return await self.node.direct_request_on(conn, message, timeout=remaining, priority=priority)
        finally:
            streams.close(stream_id)

    def in_flight(self, conn_id: str) -> int:
        """Request/response exchanges this node has in flight on a connection."""
        session = self._sessions.get(conn_id)
        streams = self._streams.get(conn_id)
        return (len(session.exchanges) if session else 0) + (streams.mux.active_streams if streams else 0)

    # ------------------------------------------------------------------ connection tracking
    def _pool(self, peer: str) -> NodePool:
        return self.manager.get(peer)

    def on_peer_event(self, event: str, peer_id: str) -> None:
        if event == "connected":
            self._adopt_primary(peer_id)

    def _adopt_primary(self, peer_id: str) -> None:
        """Make the node's primary connection to ``peer_id`` the pool's pinned first connection."""
        peer = self.node.peers.get(peer_id)
        if peer is None or not peer.connected or peer_id == self.node.node_id:
            return
        conn = peer.conn
        assert conn is not None
        if self._primary.get(peer_id) == conn.conn_id and conn.conn_id in self.conns:
            return
        pool = self._pool(peer_id)
        old = self._primary.get(peer_id)
        if old is not None and old != conn.conn_id:
            self._forget(peer_id, old)
        if pool.total >= pool.config.max_size and pool.pending == 0:
            victim = next((c for c in self.conns if self._owner[c] == peer_id
                           and pool.state_of(c) is ConnectionState.IDLE), None)
            if victim is None:
                return  # every slot is leased; the next maintenance pass retries
            pool.discard(victim)
            self._drop(victim).close("replaced by the primary connection")
        self._primary[peer_id] = conn.conn_id
        self._track(peer_id, conn)
        self._deliver(peer_id, pool.add_connection(conn.conn_id, time.monotonic()))

    def _track(self, peer_id: str, conn: Connection) -> None:
        self.conns[conn.conn_id] = conn
        self._owner[conn.conn_id] = peer_id
        self.node.spawn(self._watch(peer_id, conn), name=f"pool watch {conn.conn_id}")

    async def _watch(self, peer_id: str, conn: Connection) -> None:
        await conn.wait_closed()
        self._forget(peer_id, conn.conn_id)

    def _drop(self, conn_id: str) -> Connection:
        self._owner.pop(conn_id, None)
        return self.conns.pop(conn_id)

    def _forget(self, peer_id: str, conn_id: str) -> None:
        """A pooled connection is gone: take it out of the core and open replacements for waiters."""
        if self._primary.get(peer_id) == conn_id:
            del self._primary[peer_id]
        if conn_id in self.conns:
            self._drop(conn_id)
        pool = self.manager.get(peer_id)
        if pool.state_of(conn_id) is not None:
            pool.discard(conn_id)
            self._start_opens(peer_id, pool.plan_opens())

    def _deliver(self, peer_id: str, grant: Grant | None) -> None:
        """Hand a granted connection to its waiter, or give it back if the waiter left."""
        while grant is not None:
            fut = self._waiters.pop((peer_id, grant.waiter_id), None)
            if fut is not None and not fut.done():
                fut.set_result(grant.conn_id)
                return
            grant = self._pool(peer_id).release(grant.conn_id, time.monotonic())

    # ------------------------------------------------------------------ opening
    async def _dial_one(self, peer_id: str) -> bool:
        pool = self._pool(peer_id)
        peer = self.node.peers.get(peer_id)
        try:
            if peer is None:
                raise ConnectionError(f"{peer_id} is not a known peer")
            host, port = parse_address(peer.tcp_address, field="tcp_address")
            conn, _ack = await self.node.dial(host, port, expect_node=peer_id)
        except (ConnectionError, OSError, ValueError) as exc:
            log.info("%s: pool open to %s failed: %s", self.node.node_id, peer_id, exc)
            pool.connect_failed()
            return False
        removed = peer_id not in self.manager.nodes() or self.manager.get(peer_id) is not pool
        if removed or not self.node.running:
            conn.close("pool removed")
            return False
        self._opened_total += 1
        self._track(peer_id, conn)
        self._deliver(peer_id, pool.add_connection(conn.conn_id, time.monotonic()))
        return True

    async def _open(self, peer_id: str, count: int) -> int:
        if count <= 0:
            return 0
        results = await asyncio.gather(*(self._dial_one(peer_id) for _ in range(count)))
        return sum(results)

    def _start_opens(self, peer_id: str, count: int) -> None:
        if count > 0:
            self.node.spawn(self._open(peer_id, count), name=f"pool open {peer_id}")

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
        pool = self._pool(peer_id)
        now = time.monotonic()
        outcome = pool.acquire(now, timeout)
        conn_id = outcome.conn_id
        if conn_id is None:
            key = (peer_id, outcome.waiter_id)
            fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
            self._waiters[key] = fut
            self._start_opens(peer_id, outcome.open_connections)
            assert outcome.deadline is not None
            try:
                conn_id = await asyncio.wait_for(asyncio.shield(fut), max(0.0, outcome.deadline - now))
            except BaseException:
                self._waiters.pop(key, None)
                if not pool.cancel(outcome.waiter_id) and fut.done() and not fut.exception():
                    self._deliver(peer_id, pool.release(fut.result(), time.monotonic()))
                raise
        conn = self.conns.get(conn_id)
        if conn is None:  # closed between the grant and now
            if pool.state_of(conn_id) is ConnectionState.ACTIVE:
                self._deliver(peer_id, pool.release(conn_id, time.monotonic(), healthy=False))
            raise ConnectionError(f"pooled connection {conn_id} to {peer_id} closed before use")
        try:
            yield conn
        finally:
            if pool.state_of(conn_id) is ConnectionState.ACTIVE:
                healthy = not conn.is_closed
                self._deliver(peer_id, pool.release(conn_id, time.monotonic(), healthy=healthy))
                if not healthy and conn_id in self.conns:
                    self._drop(conn_id)
                    self._start_opens(peer_id, pool.plan_opens())

    # ------------------------------------------------------------------ maintenance
    async def _maintain_loop(self) -> None:
        while True:
            try:
                self.maintain()
            except PoolError:
                log.exception("pool maintenance failed on %s", self.node.node_id)
            await asyncio.sleep(self.config.maintenance_interval_sec)

    def maintain(self) -> list[str]:
        """One pass: adopt primaries, drop departed peers' pools, evict, probe, refill; returns closed ids."""
        now = time.monotonic()
        for peer_id, peer in list(self.node.peers.items()):
            if peer.connected:
                self._adopt_primary(peer_id)
        for peer_id in self.manager.nodes():
            peer = self.node.peers.get(peer_id)
            if peer is None or not peer.wanted:
                self._primary.pop(peer_id, None)
                for cid in self.manager.remove(peer_id):
                    if cid in self.conns:
                        self._drop(cid).close("peer left")
        closed: list[str] = []
        for peer_id in self.manager.nodes():
            pool = self._pool(peer_id)
            for cid in pool.evict(now):
                if cid == self._primary.get(peer_id) and cid in self.conns and not self.conns[cid].is_closed:
                    self._deliver(peer_id, pool.add_connection(cid, now))  # pinned: re-adopt
                    continue
                if cid in self.conns:
                    self._drop(cid).close(f"evicted ({pool.config.eviction_policy.value})")
                    self._evicted_total += 1
                    closed.append(cid)
            for cid in pool.health_checks_due(now):
                self.node.spawn(self._probe(peer_id, cid), name=f"pool probe {cid}")
            peer = self.node.peers.get(peer_id)
            if peer is not None and peer.connected and pool.total + pool.pending < pool.config.min_size:
                plan = pool.warmup(pool.config.min_size)
                self._start_opens(peer_id, plan.to_open)
        for cid in [c for c, s in self._streams.items() if s.conn.is_closed and not s.mux.active_streams]:
            del self._streams[cid]
        return closed

    async def _probe(self, peer_id: str, conn_id: str) -> None:
        conn = self.conns.get(conn_id)
        ok = False
        if conn is not None and not conn.is_closed:
            try:
                await self.node.request_on(conn, Echo(data=b""), timeout=self.config.health_probe_timeout_sec)
                ok = True
            except Exception as exc:  # any failure means the connection is not fit for use
                log.info("%s: health probe on %s failed: %s", self.node.node_id, conn_id, exc)
        pool = self._pool(peer_id)
        if pool.state_of(conn_id) is not ConnectionState.CHECKING:
            return
        self._deliver(peer_id, pool.health_check_result(conn_id, ok, time.monotonic()))
        if not ok and conn_id in self.conns:
            self._drop(conn_id).close("health probe failed")
            self._start_opens(peer_id, pool.plan_opens())

    # ------------------------------------------------------------------ reads for other services
    def connection_count(self, peer_id: str) -> int:
        """Open pooled connections to ``peer_id`` (what LeastConnections reads)."""
        self._adopt_primary(peer_id)
        return self.manager.get(peer_id).total if peer_id in self.manager.nodes() else 0

    def _pool_row(self, peer_id: str) -> dict[str, Any]:
        pool = self._pool(peer_id)
        stats = pool.stats()
        ids = [c for c, p in self._owner.items() if p == peer_id and pool.state_of(c) is not None]
        active = sum(1 for c in ids if pool.state_of(c) is ConnectionState.ACTIVE or self.in_flight(c) > 0)
        total = stats.total_connections
        return {
            "node": peer_id,
            "total_connections": total,
            "active": active,
            "idle": total - active,
            "max_size": stats.max_size,
            "utilization": round(active / total, 4) if total else 0.0,
            "leased": sum(1 for c in ids if pool.state_of(c) is ConnectionState.ACTIVE),
            "in_flight_requests": sum(self.in_flight(c) for c in ids),
            "pending_opens": stats.pending_opens,
            "waiters": stats.waiters,
            "primary_connection": self._primary.get(peer_id),
        }

    # ------------------------------------------------------------------ API
    def api_statistics(self) -> dict[str, Any]:
        """NETWORKING-003 flat totals plus the NETWORKING-044 per-node ``pools`` list."""
        for peer_id, peer in list(self.node.peers.items()):
            if peer.connected:
                self._adopt_primary(peer_id)
        pools = [self._pool_row(p) for p in self.manager.nodes()]
        total = sum(p["total_connections"] for p in pools)
        active = sum(p["active"] for p in pools)
        return {
            "node": self.node.node_id,
            "total_connections": total,
            "active_connections": active,
            "idle_connections": total - active,
            "max_pool_size": self.config.pool.max_size,
            "selection_strategy": SELECTION_STRATEGY,
            "eviction_policy": self.config.pool.eviction_policy.value,
            "connections_opened": self._opened_total,
            "connections_evicted": self._evicted_total,
            "pools": pools,
        }

    async def api_latency_probe(self, target_node: str, requests: int = 200) -> dict[str, Any]:
        """Pooled against unpooled Echo latency to ``target_node`` (bench/loadbalancer.py --ray)."""
        from rustyray.pool.latency_probe_adapter import pooled_vs_unpooled

        if target_node == self.node.node_id or target_node not in self.node.peers:
            raise ApiError(404, f"unknown peer {target_node!r}", "target_node")
        if not 1 <= requests <= 100_000:
            raise ApiError(422, "requests must be in 1..100000", "requests")
        return await pooled_vs_unpooled(self.node, self, target_node, requests)

    def api_streams(self) -> dict[str, Any]:
        """NETWORKING-045: every live connection of this node with its in-flight exchanges."""
        rows = []
        for conn in list(self.node.connections.values()):
            if conn.is_closed:
                continue
            streams = self._streams.get(conn.conn_id)
            session = self._sessions.get(conn.conn_id)
            active = streams.mux.active_streams if streams else 0
            row: dict[str, Any] = {
                "connection_id": conn.conn_id,
                "node": conn.peer_node_id,
                "active_streams": active + (session.send_core.active_streams if session else 0),
                "max_streams": self.config.multiplex.max_streams,
                "protocol": conn.protocol_name,
                "direction": "outbound" if conn.outbound else "inbound",
                "pooled": conn.conn_id in self.conns,
                "streams_opened": (streams.opened_total if streams else 0) + (session.opened_total if session else 0),
                "peak_streams": max(streams.peak if streams else 0, session.peak if session else 0),
                "multiplexed": session is not None,
            }
            if session is not None:
                row.update(session.describe())
            else:
                row.update({"stream_ids": [], "exchange_stream_ids": [], "send_window": None, "recv_window": None,
                            "stream_bytes_sent": 0, "stream_bytes_received": 0, "streams": []})
            rows.append(row)
        return {"node": self.node.node_id, "connections": rows,
                "total_active_streams": sum(r["active_streams"] for r in rows)}

    async def api_warmup(self, node: str, target_size: int) -> dict[str, Any]:
        """NETWORKING-046: dial real connections until the pool holds min(target, max_size)."""
        peer_id = node
        if not isinstance(target_size, int) or target_size < 1:
            raise ApiError(422, "target_size must be an integer >= 1", "target_size")
        if peer_id == self.node.node_id:
            raise ApiError(422, f"{peer_id} is this node; pools hold connections to other nodes", "node")
        peer = self.node.peers.get(peer_id)
        if peer is None:
            known = ", ".join(sorted(self.node.peers))
            raise ApiError(404, f"unknown node {peer_id!r}; known peers: {known}", "node")
        if not peer.connected:
            try:
                await self.node.connection_to(peer_id)
            except (ConnectionError, OSError) as exc:
                raise ApiError(503, f"{peer_id} is unreachable: {exc}", "node") from None
        self._adopt_primary(peer_id)
        pool = self._pool(peer_id)
        plan = pool.warmup(target_size)
        opened = await self._open(peer_id, plan.to_open)
        return {
            "warmup_initiated": True,
            "target_connections": plan.target_connections,
            "established": pool.total,
            "node": peer_id,
            "opened": opened,
            "failed": plan.to_open - opened,
            "requested": target_size,
        }

    async def api_eviction_configure(self, policy: str, idle_timeout_sec: float, max_lifetime_sec: float,
                                     max_idle: int | None = None, scope: str = "cluster") -> dict[str, Any]:
        """NETWORKING-047: apply the policy here (and on every live member when scope is cluster)."""
        if scope not in ("cluster", "node"):
            raise ApiError(422, "scope must be 'cluster' or 'node'", "scope")
        self.apply_eviction(policy, idle_timeout_sec, max_lifetime_sec, max_idle)
        out: dict[str, Any] = {"configured": True, "policy": policy, "idle_timeout_sec": idle_timeout_sec,
                               "max_lifetime_sec": max_lifetime_sec,
                               "max_idle": self.config.pool.max_idle, "scope": scope,
                               "applied_nodes": [self.node.node_id], "failed_nodes": {}}
        if scope == "cluster":
            msg = PoolConfigUpdate(policy=policy, idle_timeout_sec=idle_timeout_sec,
                                   max_lifetime_sec=max_lifetime_sec, max_idle=max_idle,
                                   origin=self.node.node_id)
            await self._broadcast(msg, out)
        return out

    def api_eviction(self) -> dict[str, Any]:
        cfg = self.config.pool
        return {"node": self.node.node_id, "policy": cfg.eviction_policy.value, "idle_timeout_sec":
                cfg.idle_timeout_sec, "max_lifetime_sec": cfg.max_lifetime_sec, "max_idle": cfg.max_idle,
                "min_size": cfg.min_size, "max_size": cfg.max_size}

    # ------------------------------------------------------------------ configuration
    def apply_eviction(self, policy: str, idle_timeout_sec: float, max_lifetime_sec: float,
                       max_idle: int | None = None) -> PoolConfig:
        """Validate and install a new eviction config on every pool; runs one maintenance pass."""
        try:
            parsed = EvictionPolicy(policy)
        except ValueError:
            valid = ", ".join(repr(p.value) for p in EvictionPolicy)
            msg = f"unknown eviction policy {policy!r}; expected one of {valid}"
            raise ApiError(422, msg, "policy") from None
        changes: dict[str, Any] = {"eviction_policy": parsed, "idle_timeout_sec": idle_timeout_sec,
                                   "max_lifetime_sec": max_lifetime_sec}
        if max_idle is not None:
            changes["max_idle"] = max_idle
        new = dataclasses.replace(self.config.pool, **changes)
        try:
            new.validate()
        except PoolConfigError as exc:
            raise ApiError(422, str(exc), str(exc).split(":", 1)[0]) from None
        self.config = dataclasses.replace(self.config, pool=new)
        self.manager.config = new
        for peer_id in self.manager.nodes():
            self.manager.get(peer_id).config = new
        self.maintain()
        return new

    def _on_config_update(self, ctx: RequestContext, msg: PoolConfigUpdate) -> PoolConfigAck:
        try:
            self.apply_eviction(msg.policy, msg.idle_timeout_sec, msg.max_lifetime_sec, msg.max_idle)
        except ApiError as exc:
            return PoolConfigAck(node_id=self.node.node_id, applied=False, error=exc.message)
        return PoolConfigAck(node_id=self.node.node_id, applied=True)

    async def _broadcast(self, msg: Message, out: dict[str, Any]) -> None:
        for peer_id, ack in (await self.node.request_members(msg)).items():
            if isinstance(ack, PoolConfigAck) and ack.applied:
                out["applied_nodes"].append(peer_id)
            else:
                out["failed_nodes"][peer_id] = _ack_error(ack)


def _ack_error(ack: Message | Exception) -> str:
    if isinstance(ack, Exception):
        return f"{type(ack).__name__}: {ack}"
    return getattr(ack, "error", "") or "unexpected reply"


__all__ = ["PoolConfigAck", "PoolConfigUpdate", "PoolExhaustedError", "PoolService", "PoolServiceConfig"]
