"""The pool's management operations (NETWORKING-003, 044..047): the API facade of ``PoolService``.

Why a facade: input validation and the API contract (argument names and defaults, the
response fields, which error names which field) live here, apart from the asyncio adapter
that owns the connections; the adapter keeps only what does I/O (dialling, adopting the
node's connections, pushing settings to the members). ``Node.call_api("pool", op, kwargs)``
calls ``PoolService.api.<op>``. Errors are ``rustyray.errors.DomainError`` naming the field.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from rustyray.api_base import apply_scoped
from rustyray.errors import not_found, unavailable, unprocessable
from rustyray.pool.api_types import (
    EvictionConfigured,
    EvictionConfigureRequest,
    EvictionSettings,
    LatencyProbeRequest,
    PoolRow,
    PoolStatistics,
    StreamRow,
    StreamsReport,
    WarmupRequest,
    WarmupResult,
)
from rustyray.pool.config import EvictionPolicy, PoolConfig
from rustyray.pool.errors import PoolConfigError
from rustyray.pool.node_pool import ConnectionState, utilization

EVICTION_KEY = "pool.eviction"
"""Settings-channel key of the cluster-wide eviction configuration."""

if TYPE_CHECKING:
    from rustyray.pool.service import PoolService

SELECTION_STRATEGY = "MostRecentlyUsed"
"""The pool picks the most recently used idle connection (see NodePool.acquire)."""


def eviction_config(current: PoolConfig, policy: str, idle_timeout_sec: float, max_lifetime_sec: float,
                    max_idle: int | None = None) -> PoolConfig:
    """``current`` with a new eviction policy, validated; an UNPROCESSABLE error names the bad field."""
    try:
        parsed = EvictionPolicy(policy)
    except ValueError:
        valid = ", ".join(repr(p.value) for p in EvictionPolicy)
        msg = f"unknown eviction policy {policy!r}; expected one of {valid}"
        raise unprocessable(msg, "policy") from None
    changes: dict[str, Any] = {"eviction_policy": parsed, "idle_timeout_sec": idle_timeout_sec,
                               "max_lifetime_sec": max_lifetime_sec}
    if max_idle is not None:
        changes["max_idle"] = max_idle
    new = dataclasses.replace(current, **changes)
    try:
        new.validate()
    except PoolConfigError as exc:
        raise unprocessable(str(exc), str(exc).split(":", 1)[0]) from None
    return new


class PoolApi:
    """One method per management operation of the pool service."""

    def __init__(self, service: PoolService) -> None:
        self._svc = service
        self._node = service.node

    def statistics(self) -> PoolStatistics:
        """NETWORKING-003 flat totals plus the NETWORKING-044 per-node ``pools`` list."""
        svc = self._svc
        svc.adopt_connected()
        pools = [self._pool_row(p) for p in svc.manager.nodes()]
        total = sum(p.total_connections for p in pools)
        active = sum(p.active for p in pools)
        return PoolStatistics(
            node=self._node.node_id,
            total_connections=total,
            active_connections=active,
            idle_connections=total - active,
            max_pool_size=svc.config.pool.max_size,
            selection_strategy=SELECTION_STRATEGY,
            eviction_policy=svc.config.pool.eviction_policy.value,
            connections_opened=svc.pools.opened_total,
            connections_evicted=svc.pools.evicted_total,
            pools=pools,
        )

    def _pool_row(self, peer_id: str) -> PoolRow:
        svc = self._svc
        pool = svc.pools.pool(peer_id)
        stats = pool.stats()
        ids = svc.pools.pooled_ids(peer_id)
        active = sum(1 for c in ids if pool.state_of(c) is ConnectionState.ACTIVE or svc.in_flight(c) > 0)
        total = stats.total_connections
        return PoolRow(
            node=peer_id,
            total_connections=total,
            active=active,
            idle=total - active,
            max_size=stats.max_size,
            utilization=utilization(active, total),
            leased=sum(1 for c in ids if pool.state_of(c) is ConnectionState.ACTIVE),
            in_flight_requests=sum(svc.in_flight(c) for c in ids),
            pending_opens=stats.pending_opens,
            waiters=stats.waiters,
            primary_connection=svc.pools.primary.get(peer_id),
        )

    async def latency_probe(self, req: LatencyProbeRequest) -> dict[str, Any]:
        """Pooled against unpooled Echo latency to ``target_node`` (bench/loadbalancer.py --ray).

        The result is the probe's own report (``latency_probe_adapter``): two measured series.
        """
        from rustyray.pool.latency_probe_adapter import pooled_vs_unpooled

        if req.target_node == self._node.node_id or req.target_node not in self._node.peers:
            raise not_found(f"unknown peer {req.target_node!r}", "target_node")
        return await pooled_vs_unpooled(self._node, self._svc, req.target_node, req.requests)

    def streams(self) -> StreamsReport:
        """NETWORKING-045: every live connection of this node with its in-flight exchanges."""
        svc, streams = self._svc, self._svc.streams
        rows = []
        for conn in list(self._node.connections.values()):
            if conn.is_closed:
                continue
            slots = streams.slots.get(conn.conn_id)
            session = streams.sessions.get(conn.conn_id)
            active = slots.active if slots else 0
            rows.append(StreamRow(
                connection_id=conn.conn_id,
                node=conn.peer_node_id,
                active_streams=active + (session.send_core.active_streams if session else 0),
                max_streams=svc.config.multiplex.max_streams,
                protocol=conn.protocol_name,
                direction="outbound" if conn.outbound else "inbound",
                pooled=conn.conn_id in svc.conns,
                streams_opened=(slots.opened_total if slots else 0) + (session.opened_total if session else 0),
                peak_streams=max(slots.peak if slots else 0, session.peak if session else 0),
                multiplexed=session is not None,
                **(session.describe() if session is not None else {}),
            ))
        return StreamsReport(node=self._node.node_id, connections=rows,
                             total_active_streams=sum(r.active_streams for r in rows))

    async def warmup(self, req: WarmupRequest) -> WarmupResult:
        """NETWORKING-046: dial real connections until the pool holds min(target, max_size)."""
        peer_id = req.node
        if peer_id == self._node.node_id:
            raise unprocessable(f"{peer_id} is this node; pools hold connections to other nodes", "node")
        peer = self._node.peers.get(peer_id)
        if peer is None:
            known = ", ".join(sorted(self._node.peers))
            raise not_found(f"unknown node {peer_id!r}; known peers: {known}", "node")
        if not peer.connected:
            try:
                await self._node.connection_to(peer_id)
            except (ConnectionError, OSError) as exc:
                raise unavailable(f"{peer_id} is unreachable: {exc}", "node") from None
        plan, opened = await self._svc.warmup(peer_id, req.target_size)
        return WarmupResult(
            warmup_initiated=True,
            target_connections=plan.target_connections,
            established=self._svc.pools.pool(peer_id).total,
            node=peer_id,
            opened=opened,
            failed=plan.to_open - opened,
            requested=req.target_size,
        )

    async def eviction_configure(self, req: EvictionConfigureRequest) -> EvictionConfigured:
        """NETWORKING-047: apply the policy here (and on every live member when scope is cluster)."""
        value = {"policy": req.policy, "idle_timeout_sec": req.idle_timeout_sec,
                 "max_lifetime_sec": req.max_lifetime_sec, "max_idle": req.max_idle}
        applied, failed = await apply_scoped(req.scope, self._node.node_id, self._svc.settings, EVICTION_KEY, value,
                                             self._svc.apply_eviction)
        return EvictionConfigured(configured=True, policy=req.policy, idle_timeout_sec=req.idle_timeout_sec,
                                  max_lifetime_sec=req.max_lifetime_sec, max_idle=self._svc.config.pool.max_idle,
                                  scope=req.scope, applied_nodes=applied, failed_nodes=failed)

    def eviction(self) -> EvictionSettings:
        cfg = self._svc.config.pool
        return EvictionSettings(node=self._node.node_id, policy=cfg.eviction_policy.value,
                                idle_timeout_sec=cfg.idle_timeout_sec, max_lifetime_sec=cfg.max_lifetime_sec,
                                max_idle=cfg.max_idle, min_size=cfg.min_size, max_size=cfg.max_size)
