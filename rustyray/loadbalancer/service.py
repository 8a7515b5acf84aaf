"""Load-balancer service: the asyncio adapter over the sans-I/O balancer cores.

Backs NETWORKING-037..043. One instance per node holds the breakers, token buckets,
per-node stats (latency and error EWMAs, in-flight counts, reported CPU/memory) and one
persistent instance of each strategy (so RoundRobin's counter and the hash ring survive
between calls).

Inputs, all live:
- ``before_send(target)`` / ``after_send(target, ok, latency_ms)`` are the hooks the routing
  service calls around every send: the first enforces the breaker and the token bucket
  (ApiError 503 / 429), the second records the outcome in the breaker and the EWMAs.
- Connection counts come from the pool service (open pooled connections to each peer).
- CPU and memory load: every ``load_poll_interval_sec`` this node samples its own process
  with psutil and asks every live member for theirs (``LbLoadQuery`` -> ``LbLoadReport``).

Selection through the API is a query: it peeks at breakers and buckets (taking no trial
slot and no token) and ConsistentHash's bounded-load assignment is released at once, so
the same key keeps mapping to the same node.

Configuration changes (retry policy, rate limits) apply on this node and, with
``scope="cluster"`` (the default), are pushed to every live member with ``LbConfigUpdate``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psutil

from rustyray.errors import ApiError
from rustyray.loadbalancer.circuit_breaker import (
    BreakerRegistry,
    CircuitBreakerConfig,
    CircuitState,
    CircuitStatus,
)
from rustyray.loadbalancer.errors import LoadBalancerConfigError, LoadBalancerError, NoAvailableNodeError
from rustyray.loadbalancer.node_stats import NodeStatsConfig, NodeStatsTracker
from rustyray.loadbalancer.retry import RetryBudget, RetryPolicy, RetryStrategy
from rustyray.loadbalancer.strategies import (
    AdaptiveConfig,
    ConsistentHashConfig,
    Selection,
    Strategy,
    StrategyName,
    create_strategy,
    parse_strategy_name,
)
from rustyray.loadbalancer.traffic_shaping import RateLimitConfig, RateLimiterRegistry
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadBalancerServiceConfig:
    """Settings of the ``[loadbalancer]`` table; sub-tables configure the cores."""

    load_poll_interval_sec: float = 2.0
    """Seconds between CPU/memory load polls of every live member."""
    load_query_timeout_sec: float = 1.0
    """Timeout (s) of one LbLoadQuery; a member that misses it keeps its last report."""
    circuit_breaker: CircuitBreakerConfig = field(default_factory=CircuitBreakerConfig)
    """Breaker thresholds ([loadbalancer.circuit_breaker])."""
    stats: NodeStatsConfig = field(default_factory=NodeStatsConfig)
    """EWMA smoothing ([loadbalancer.stats])."""
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    """Adaptive score weights ([loadbalancer.adaptive])."""
    consistent_hash: ConsistentHashConfig = field(default_factory=ConsistentHashConfig)
    """Ring shape ([loadbalancer.consistent_hash])."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Initial retry policy ([loadbalancer.retry]; strategy spelled as in the seed)."""

    def validate(self) -> None:
        if self.load_poll_interval_sec <= 0:
            raise LoadBalancerConfigError("load_poll_interval_sec: must be > 0")
        if self.load_query_timeout_sec <= 0:
            raise LoadBalancerConfigError("load_query_timeout_sec: must be > 0")
        self.circuit_breaker.validate()
        self.stats.validate()
        self.adaptive.validate()
        self.consistent_hash.validate()
        self.retry.validate()

    @classmethod
    def from_table(cls, table: dict[str, Any]) -> LoadBalancerServiceConfig:
        subs: dict[str, type] = {"circuit_breaker": CircuitBreakerConfig, "stats": NodeStatsConfig,
                                 "adaptive": AdaptiveConfig, "consistent_hash": ConsistentHashConfig,
                                 "retry": RetryPolicy}
        known = {f.name for f in dataclasses.fields(cls)}
        kw: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise LoadBalancerConfigError(f"{key}: unknown [loadbalancer] setting")
            if key in subs:
                value = dict(value)
                if key == "retry" and "strategy" in value:
                    value["strategy"] = RetryStrategy(value["strategy"])
                value = subs[key](**value)
            kw[key] = value
        cfg = cls(**kw)
        cfg.validate()
        return cfg


class LbLoadQuery(Message):
    """Ask a member for its process CPU and memory load."""

    origin: str


class LbLoadReport(Message):
    node_id: str
    cpu_load: float  # process CPU, fraction of all cores, 0..1
    mem_load: float  # process RSS over physical memory, 0..1
    connections: int  # live connections of the reporting node


class LbConfigUpdate(Message):
    """A cluster-wide configuration change: ``kind`` is "rate_limit" or "retry"."""

    kind: str
    data: dict[str, Any]
    origin: str = ""


class LbConfigAck(Message):
    node_id: str
    applied: bool
    error: str = ""


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _config_error(exc: LoadBalancerConfigError) -> ApiError:
    return ApiError(422, str(exc), str(exc).split(":", 1)[0])


class LoadBalancerService:
    """Breakers, rate limits, stats and strategies of one node (see the module docstring)."""

    def __init__(self, node: Host, rng: random.Random | None = None, *, pool: Any | None = None) -> None:
        self.node = node
        self.pool = pool
        """The pool service, whose connection counts feed least-connections (None: the mesh's)."""
        self.config = LoadBalancerServiceConfig.from_table(node.config.section("loadbalancer"))
        self.rng = rng or node.rng
        self.breakers = BreakerRegistry(self.config.circuit_breaker)
        self.limiters = RateLimiterRegistry()
        self.limits: dict[str, RateLimitConfig] = {}
        self.tracker = NodeStatsTracker(self.config.stats)
        self.retry_policy: RetryPolicy = self.config.retry
        """The live retry policy; the routing service reads it for every retry decision."""
        self.retry_budget = RetryBudget()
        self.strategies: dict[StrategyName, Strategy] = {
            name: create_strategy(name, rng=self.rng, hash_config=self.config.consistent_hash,
                                  adaptive_config=self.config.adaptive)
            for name in StrategyName
        }
        self.reports: dict[str, dict[str, Any]] = {}  # node -> last load report (+ wall time)
        self.refused = {"rate_limited": 0, "circuit_open": 0}
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the first call has no interval to measure
        self._own_load = (0.0, 0.0)
        node.on(LbLoadQuery, self._on_load_query)
        node.on(LbConfigUpdate, self._on_config_update)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.node.spawn(self._poll_loop(), name="lb load poll")

    def health(self) -> tuple[str, str]:
        now = time.monotonic()
        open_ = [s.node for s in self.breakers.statuses(now) if s.state is CircuitState.OPEN]
        if open_:
            return "degraded", f"circuit open for {', '.join(open_)}"
        return "healthy", f"{len(self.reports)} load reports, {len(self.limits)} rate limits"

    # ------------------------------------------------------------------ routing hooks
    def before_send(self, target_node: str) -> None:
        """Admit one send to ``target_node`` or raise ApiError 503 (circuit open) / 429 (rate limited).

        An admitted send must be followed by exactly one ``after_send`` for the same target.
        """
        now = time.monotonic()
        breaker = self.breakers.get(target_node)
        if not breaker.can_attempt(now):
            self.refused["circuit_open"] += 1
            state = breaker.state(now)
            retry_in = ""
            if state is CircuitState.OPEN and breaker.opened_at is not None:
                left = max(0.0, breaker.opened_at + breaker.config.open_timeout_sec - now)
                retry_in = f"; half-open in {left:.1f} s"
            raise ApiError(503, f"circuit open for {target_node} ({state.value}, "
                                f"{breaker.failure_count} consecutive failures{retry_in})", "target_node")
        if not self.limiters.try_acquire(target_node, now):
            self.refused["rate_limited"] += 1
            wait = self.limiters.retry_after(target_node, now)
            limit = self.limits.get(target_node)
            rate = f"{_number(limit.requests_per_second)} req/s, burst {limit.burst_size}" if limit else ""
            raise ApiError(429, f"rate limited: {target_node} allows {rate}; retry after {wait:.3f} s",
                           "target_node")
        admitted = breaker.allow(now)
        assert admitted, "a breaker that passed can_attempt must admit"
        self.tracker.on_request_start(target_node)

    def after_send(self, target_node: str, ok: bool, latency_ms: float) -> None:
        """Record the outcome of a send that ``before_send`` admitted."""
        now = time.monotonic()
        if ok:
            self.breakers.record_success(target_node, now)
        else:
            self.breakers.record_failure(target_node, now)
        self.tracker.on_request_end(target_node, max(0.0, float(latency_ms)), ok)

    # ------------------------------------------------------------------ selection
    def known_nodes(self) -> set[str]:
        return {self.node.node_id, *self.node.peers, *self.node.live_members()}

    def _connections(self, node_id: str) -> int:
        if node_id == self.node.node_id:
            return 0  # the local node is reached without a connection
        pool = self.pool
        if pool is not None and hasattr(pool, "connection_count"):
            return pool.connection_count(node_id)
        return sum(1 for c in self.node.connections.values()
                   if c.peer_node_id == node_id and c.outbound and not c.is_closed)

    def _refresh(self, candidates: list[str]) -> None:
        for node_id in candidates:
            self.tracker.set_connections(node_id, self._connections(node_id))

    def select(self, strategy: str, available_nodes: list[str] | None = None,
               routing_key: str | None = None) -> tuple[Selection, dict[str, str]]:
        """Choose a node without claiming anything; returns the selection and skipped nodes with why.

        Raises ApiError 422 (strategy, routing_key, available_nodes), 404 (unknown node) and
        503 (every candidate skipped).
        """
        try:
            name = parse_strategy_name(strategy)
        except LoadBalancerError as exc:
            raise ApiError(422, str(exc), "strategy") from None
        if name is StrategyName.CONSISTENT_HASH and not routing_key:
            raise ApiError(422, "ConsistentHash needs a routing_key", "routing_key")
        live = self.node.live_members()
        if available_nodes is None:
            requested = list(live)
        else:
            if not available_nodes:
                raise ApiError(422, "available_nodes must not be empty (omit it to use the live members)",
                               "available_nodes")
            known = self.known_nodes()
            unknown = [n for n in available_nodes if n not in known]
            if unknown:
                raise ApiError(404, f"unknown node {unknown[0]!r} in available_nodes", "available_nodes")
            requested = list(dict.fromkeys(available_nodes))
        now = time.monotonic()
        skipped: dict[str, str] = {}
        for node_id in requested:
            if node_id not in live:
                skipped[node_id] = "not live"
            elif not self.breakers.available([node_id], now):
                skipped[node_id] = f"circuit {self.breakers.state(node_id, now).value}"
            elif not self.limiters.has_token(node_id, now):
                skipped[node_id] = "rate limited"
        candidates = [n for n in requested if n not in skipped]
        if not candidates:
            reasons = ", ".join(f"{n} ({why})" for n, why in skipped.items())
            raise ApiError(503, f"no available node: {reasons}",
                           "available_nodes" if available_nodes is not None else None)
        self._refresh(candidates)
        strat = self.strategies[name]
        try:
            selection = strat.select(candidates, routing_key, self.tracker.snapshot())
        except NoAvailableNodeError as exc:
            raise ApiError(503, str(exc)) from None
        if name is StrategyName.CONSISTENT_HASH:
            strat.on_complete(selection.selected_node)  # a query, not an assignment
        return selection, skipped

    def api_select(self, strategy: str, available_nodes: list[str] | None = None,
                   routing_key: str | None = None) -> dict[str, Any]:
        selection, skipped = self.select(strategy, available_nodes, routing_key)
        out = selection.to_dict()
        if skipped:
            out["skipped"] = skipped
        return out

    # ------------------------------------------------------------------ circuit breakers (041)
    def breaker_statuses(self, now: float) -> list[CircuitStatus]:
        """One breaker row per known node and per node with a breaker (a node never used is Closed)."""
        nodes = sorted(self.known_nodes() | {s.node for s in self.breakers.statuses(now)})
        return [self.breakers.get(node_id).status(node_id, now) for node_id in nodes]

    def api_circuit_status(self) -> dict[str, Any]:
        now = time.monotonic()
        wall_offset = time.time() - now
        circuits = []
        for status in self.breaker_statuses(now):
            row = status.to_dict()
            if row.get("opened_at") is not None:
                row["opened_at"] = _iso(row["opened_at"] + wall_offset)
            circuits.append(row)
        return {"node": self.node.node_id, "circuits": circuits,
                "config": dataclasses.asdict(self.breakers.config)}

    # ------------------------------------------------------------------ retry policy (042)
    def apply_retry(self, strategy: str, max_attempts: int, initial_delay_ms: float, max_delay_ms: float,
                    multiplier: float | None = None) -> RetryPolicy:
        try:
            policy = RetryPolicy.from_request(strategy, max_attempts, initial_delay_ms, max_delay_ms)
            if multiplier is not None:
                policy = dataclasses.replace(policy, multiplier=multiplier)
                policy.validate()
        except LoadBalancerConfigError as exc:
            raise _config_error(exc) from None
        self.retry_policy = policy
        return policy

    async def api_retry_configure(self, strategy: str, max_attempts: int, initial_delay_ms: float,
                                  max_delay_ms: float, multiplier: float | None = None,
                                  scope: str = "cluster") -> dict[str, Any]:
        _check_scope(scope)
        policy = self.apply_retry(strategy, max_attempts, initial_delay_ms, max_delay_ms, multiplier)
        out = {"configured": True, "strategy": policy.strategy.value, **self._policy_dict(policy),
               "scope": scope,
               "applied_nodes": [self.node.node_id], "failed_nodes": {}}
        if scope == "cluster":
            data = {"strategy": strategy, "max_attempts": max_attempts, "initial_delay_ms": initial_delay_ms,
                    "max_delay_ms": max_delay_ms, "multiplier": multiplier}
            await self._broadcast(LbConfigUpdate(kind="retry", data=data, origin=self.node.node_id), out)
        return out

    @staticmethod
    def _policy_dict(policy: RetryPolicy) -> dict[str, Any]:
        return {"max_attempts": policy.max_attempts, "initial_delay_ms": _number(policy.initial_delay_ms),
                "max_delay_ms": _number(policy.max_delay_ms), "multiplier": _number(policy.multiplier)}

    def api_retry(self) -> dict[str, Any]:
        policy = self.retry_policy
        return {"node": self.node.node_id, "strategy": policy.strategy.value, **self._policy_dict(policy),
                "retry_budget_balance": round(self.retry_budget.balance(time.monotonic()), 3)}

    # ------------------------------------------------------------------ rate limits (043)
    def apply_rate_limit(self, node: str, requests_per_second: float, burst_size: int) -> None:
        if node not in self.known_nodes():
            raise ApiError(404, f"unknown node {node!r}", "node")
        try:
            RateLimitConfig(requests_per_second=requests_per_second, burst_size=burst_size).validate()
        except LoadBalancerConfigError as exc:
            raise _config_error(exc) from None
        self.limiters.set_limit(node, requests_per_second, burst_size, time.monotonic())
        self.limits[node] = RateLimitConfig(requests_per_second=requests_per_second, burst_size=burst_size)

    async def api_rate_limit_set(self, node: str, requests_per_second: float, burst_size: int,
                                 scope: str = "cluster") -> dict[str, Any]:
        _check_scope(scope)
        self.apply_rate_limit(node, requests_per_second, burst_size)
        out = {"applied": True, "node": node, "rps": _number(requests_per_second), "burst": burst_size,
               "scope": scope, "applied_nodes": [self.node.node_id], "failed_nodes": {}}
        if scope == "cluster":
            data = {"node": node, "requests_per_second": requests_per_second, "burst_size": burst_size}
            await self._broadcast(LbConfigUpdate(kind="rate_limit", data=data, origin=self.node.node_id), out)
        return out

    def api_rate_limits(self) -> dict[str, Any]:
        now = time.monotonic()
        rows = [{"node": n, "rps": _number(c.requests_per_second), "burst": c.burst_size,
                 "retry_after_sec": round(self.limiters.retry_after(n, now), 4)}
                for n, c in sorted(self.limits.items())]
        return {"node": self.node.node_id, "limits": rows, "refused": dict(self.refused)}

    # ------------------------------------------------------------------ load stats
    def api_stats(self) -> dict[str, Any]:
        """What Adaptive and LeastConnections see for every live member right now."""
        live = self.node.live_members()
        self._refresh(live)
        snap = self.tracker.snapshot()
        adaptive = self.config.adaptive
        nodes = []
        for node_id in live:
            load = snap.get(node_id)
            row: dict[str, Any] = {"node": node_id}
            if load is not None:
                row.update(active_connections=load.active_connections, in_flight=load.in_flight,
                           latency_ewma_ms=round(load.latency_ewma_ms, 3),
                           error_rate=round(load.error_rate, 4),
                           cpu_load=round(load.cpu_load, 4), mem_load=round(load.mem_load, 4),
                           load_score=round(adaptive.score(load), 3))
            report = self.reports.get(node_id)
            if report is not None:
                row["reported_at"] = _iso(report["wall"])
            nodes.append(row)
        return {"node": self.node.node_id, "nodes": nodes}

    def _sample_own(self) -> tuple[float, float]:
        cores = psutil.cpu_count() or 1
        cpu = min(1.0, max(0.0, self._proc.cpu_percent(None) / (100.0 * cores)))
        mem = min(1.0, max(0.0, self._proc.memory_percent() / 100.0))
        self._own_load = (cpu, mem)
        return self._own_load

    def _record(self, node_id: str, cpu: float, mem: float, connections: int) -> None:
        cpu, mem = min(1.0, max(0.0, cpu)), min(1.0, max(0.0, mem))
        self.tracker.report_resources(node_id, cpu, mem)
        self.reports[node_id] = {"cpu_load": cpu, "mem_load": mem, "connections": connections,
                                 "wall": time.time()}

    def _on_load_query(self, ctx: RequestContext, msg: LbLoadQuery) -> LbLoadReport:
        cpu, mem = self._own_load
        return LbLoadReport(node_id=self.node.node_id, cpu_load=cpu, mem_load=mem,
                            connections=len(self.node.connections))

    async def poll_loads(self) -> None:
        """Sample this process and ask every live member for its load (one round)."""
        cpu, mem = self._sample_own()
        self._record(self.node.node_id, cpu, mem, len(self.node.connections))
        replies = await self.node.request_members(LbLoadQuery(origin=self.node.node_id),
                                                  timeout=self.config.load_query_timeout_sec)
        for peer_id, reply in replies.items():
            if isinstance(reply, LbLoadReport):
                self._record(reply.node_id, reply.cpu_load, reply.mem_load, reply.connections)
            else:  # a member that cannot answer keeps its last report
                log.debug("%s: load query to %s failed: %s", self.node.node_id, peer_id, reply)

    async def _poll_loop(self) -> None:
        while True:
            await self.poll_loads()
            await asyncio.sleep(self.config.load_poll_interval_sec)

    # ------------------------------------------------------------------ cluster-wide config
    def _on_config_update(self, ctx: RequestContext, msg: LbConfigUpdate) -> LbConfigAck:
        try:
            if msg.kind == "rate_limit":
                self.apply_rate_limit(**msg.data)
            elif msg.kind == "retry":
                self.apply_retry(**msg.data)
            else:
                raise ApiError(422, f"unknown config kind {msg.kind!r}", "kind")
        except (ApiError, TypeError) as exc:
            return LbConfigAck(node_id=self.node.node_id, applied=False, error=str(exc))
        return LbConfigAck(node_id=self.node.node_id, applied=True)

    async def _broadcast(self, msg: LbConfigUpdate, out: dict[str, Any]) -> None:
        for peer_id, ack in (await self.node.request_members(msg)).items():
            if isinstance(ack, LbConfigAck) and ack.applied:
                out["applied_nodes"].append(peer_id)
            elif isinstance(ack, Exception):
                out["failed_nodes"][peer_id] = f"{type(ack).__name__}: {ack}"
            else:
                out["failed_nodes"][peer_id] = getattr(ack, "error", "") or "unexpected reply"


def _check_scope(scope: str) -> None:
    if scope not in ("cluster", "node"):
        raise ApiError(422, "scope must be 'cluster' or 'node'", "scope")
