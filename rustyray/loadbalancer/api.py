"""The load balancer's management operations (NETWORKING-037..043): the API facade of ``LoadBalancerService``.

Why a facade: input validation and the API contract (argument names and defaults, the
response fields, which error names which field) live here, apart from the asyncio adapter;
the adapter keeps what touches the node (the routing hooks, counting connections, polling
loads, pushing settings to the members). ``Node.call_api("loadbalancer", op, kwargs)`` calls
``LoadBalancerService.api.<op>``. Errors are ``rustyray.errors.DomainError`` naming the field.
``select``'s own checks stay in ``LoadBalancerService.select``, which direct callers (the
routing service) use without this facade. The clocks are injected: ``clock`` (monotonic, the
cores' time) and ``wall_clock`` (for the ISO timestamps in responses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rustyray.api_base import apply_scoped
from rustyray.loadbalancer.api_types import (
    CircuitStatusReport,
    NodeLoadRow,
    RateLimitApplied,
    RateLimitRow,
    RateLimitSetRequest,
    RateLimitsReport,
    RetryConfigured,
    RetryConfigureRequest,
    RetryPolicyReport,
    SelectionResult,
    SelectRequest,
    StatsReport,
)
from rustyray.loadbalancer.retry import RetryPolicy
from rustyray.loadbalancer.selection import plain_number

RETRY_KEY = "loadbalancer.retry"
RATE_LIMIT_PREFIX = "loadbalancer.rate_limit."
"""Settings-channel keys: the retry policy, and one rate limit per target node (prefix + node id)."""

if TYPE_CHECKING:
    from rustyray.loadbalancer.service import LoadBalancerService


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _policy_fields(policy: RetryPolicy) -> dict[str, Any]:
    return {"max_attempts": policy.max_attempts, "initial_delay_ms": plain_number(policy.initial_delay_ms),
            "max_delay_ms": plain_number(policy.max_delay_ms), "multiplier": plain_number(policy.multiplier)}


class LoadBalancerApi:
    """One method per management operation of the load-balancer service."""

    def __init__(self, service: LoadBalancerService, *, clock: Callable[[], float],
                 wall_clock: Callable[[], float]) -> None:
        self._svc = service
        self._node = service.node
        self._clock = clock
        self._wall_clock = wall_clock

    def select(self, req: SelectRequest) -> SelectionResult:
        """NETWORKING-037..040: the node the strategy would pick now (a query: nothing is claimed)."""
        selection, skipped = self._svc.select(req.strategy, req.available_nodes, req.routing_key)
        return SelectionResult(**selection.to_dict(), skipped=skipped or None)

    def circuit_status(self) -> CircuitStatusReport:
        """NETWORKING-041: every breaker, ``opened_at`` as UTC ISO time."""
        now = self._clock()
        wall_offset = self._wall_clock() - now
        circuits = []
        for status in self._svc.breaker_statuses(now):
            row = status.to_dict()
            if row.get("opened_at") is not None:
                row["opened_at"] = _iso(row["opened_at"] + wall_offset)
            circuits.append(row)
        return CircuitStatusReport(node=self._node.node_id, circuits=circuits,
                                   config=dataclasses.asdict(self._svc.breakers.config))

    async def retry_configure(self, req: RetryConfigureRequest) -> RetryConfigured:
        """NETWORKING-042: install the retry policy here (and on every live member when scope is cluster)."""
        value = {"strategy": req.strategy, "max_attempts": req.max_attempts,
                 "initial_delay_ms": req.initial_delay_ms, "max_delay_ms": req.max_delay_ms,
                 "multiplier": req.multiplier}
        applied, failed = await self._apply(req.scope, RETRY_KEY, value, self._svc.apply_retry)
        policy = self._svc.retry_policy
        return RetryConfigured(configured=True, strategy=policy.strategy.value, **_policy_fields(policy),
                               scope=req.scope, applied_nodes=applied, failed_nodes=failed)

    async def _apply(self, scope: str, key: str, value: dict[str, Any], apply: Any) -> tuple[list[str], dict[str, str]]:
        """Cluster scope: through the settings channel (applied here first); node scope: here only."""
        return await apply_scoped(scope, self._node.node_id, self._svc.settings, key, value, apply)

    def retry(self) -> RetryPolicyReport:
        policy = self._svc.retry_policy
        return RetryPolicyReport(node=self._node.node_id, strategy=policy.strategy.value, **_policy_fields(policy),
                                 retry_budget_balance=round(self._svc.retry_budget.balance(self._clock()), 3))

    async def rate_limit_set(self, req: RateLimitSetRequest) -> RateLimitApplied:
        """NETWORKING-043: limit sends to ``node`` here (and on every live member when scope is cluster)."""
        value = {"node": req.node, "requests_per_second": req.requests_per_second, "burst_size": req.burst_size}
        applied, failed = await self._apply(req.scope, RATE_LIMIT_PREFIX + req.node, value,
                                            self._svc.apply_rate_limit)
        return RateLimitApplied(applied=True, node=req.node, rps=plain_number(req.requests_per_second),
                                burst=req.burst_size, scope=req.scope, applied_nodes=applied, failed_nodes=failed)

    def rate_limits(self) -> RateLimitsReport:
        now = self._clock()
        limiters = self._svc.limiters
        rows = [RateLimitRow(node=n, rps=plain_number(c.requests_per_second), burst=c.burst_size,
                             retry_after_sec=round(limiters.retry_after(n, now), 4))
                for n, c in sorted(self._svc.limits.items())]
        return RateLimitsReport(node=self._node.node_id, limits=rows, refused=dict(self._svc.refused))

    async def stats(self) -> StatsReport:
        """What Adaptive and LeastConnections see for every live member right now.

        The background poll asks only a bounded set of members each round, so this first polls the
        live members whose report is older than one interval: the loads shown are all fresh.
        """
        svc = self._svc
        live = self._node.live_members()
        await svc.loads.refresh(live)
        svc.refresh_connections(live)
        snap = svc.tracker.snapshot()
        adaptive = svc.config.adaptive
        nodes = []
        for node_id in live:
            load = snap.get(node_id)
            row: dict[str, Any] = {}
            if load is not None:
                row.update(active_connections=load.active_connections, in_flight=load.in_flight,
                           latency_ewma_ms=round(load.latency_ewma_ms, 3),
                           error_rate=round(load.error_rate, 4),
                           cpu_load=round(load.cpu_load, 4), mem_load=round(load.mem_load, 4),
                           load_score=round(adaptive.score(load), 3))
            report = svc.reports.get(node_id)
            if report is not None:
                row["reported_at"] = _iso(report["wall"])
            nodes.append(NodeLoadRow(node=node_id, **row))
        return StatsReport(node=self._node.node_id, nodes=nodes)
