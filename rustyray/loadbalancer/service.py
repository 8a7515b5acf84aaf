"""Load-balancer service: the asyncio adapter over the sans-I/O balancer cores.

Backs NETWORKING-037..043. One instance per node holds the breakers, token buckets,
per-node stats (latency and error EWMAs, in-flight counts, reported CPU/memory) and one
persistent instance of each strategy (so RoundRobin's counter and the hash ring survive
between calls); ``NodeSelector`` (``loadbalancer.selection``) makes the decisions over them
and this adapter reads the clock, counts connections and turns refusals into ``DomainError``.

Inputs, all live:
- ``before_send(target)`` / ``after_send(target, ok, latency_ms)`` are the hooks the routing
  service calls around every send: the first enforces the breaker and the token bucket
  (UNAVAILABLE / TOO_MANY_REQUESTS), the second records the outcome in the breaker and the EWMAs.
- Connection counts come from the pool service (open pooled connections to each peer).
- CPU and memory load: every ``load_poll_interval_sec`` this node samples its own process
  with psutil and asks a bounded set of members for theirs (``loadbalancer.load_poll_adapter``):
  those it routed to or selected recently (``before_send`` and ``select`` tell the planner)
  plus a small sample of the others, so the idle cost per node does not grow with the cluster.

Selection through the API is a query: it peeks at breakers and buckets (taking no trial
slot and no token) and ConsistentHash's bounded-load assignment is released at once, so
the same key keeps mapping to the same node.

The management operations are ``LoadBalancerService.api`` (``loadbalancer.api``).
Configuration changes (retry policy, rate limits) apply on this node and, with
``scope="cluster"`` (the default), are published on every live member through the node's
settings channel (``rustyray.settings``, keys ``loadbalancer.retry`` and
``loadbalancer.rate_limit.<node>``).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from rustyray.errors import DomainError, ErrorKind, not_found, unavailable, unprocessable
from rustyray.loadbalancer.api import RATE_LIMIT_PREFIX, RETRY_KEY, LoadBalancerApi
from rustyray.loadbalancer.circuit_breaker import BreakerRegistry, CircuitStatus
from rustyray.loadbalancer.config import LoadBalancerServiceConfig
from rustyray.loadbalancer.errors import LoadBalancerConfigError, LoadBalancerError, NoAvailableNodeError
from rustyray.loadbalancer.load_poll_adapter import LbLoadQuery, LbLoadReport, LoadPoller
from rustyray.loadbalancer.node_stats import NodeStatsTracker
from rustyray.loadbalancer.retry import RetryBudget, RetryPolicy
from rustyray.loadbalancer.selection import NodeSelector
from rustyray.loadbalancer.strategies import (
    Selection,
    Strategy,
    StrategyName,
    create_strategy,
    parse_strategy_name,
)
from rustyray.loadbalancer.traffic_shaping import RateLimitConfig, RateLimiterRegistry

if TYPE_CHECKING:
    from rustyray.settings.channel_adapter import SettingsChannel
    from rustyray.transport.api import Host

log = logging.getLogger(__name__)

_REFUSAL_KIND = {"circuit_open": ErrorKind.UNAVAILABLE, "rate_limited": ErrorKind.TOO_MANY_REQUESTS}
"""``Refusal.reason`` -> the kind of error ``before_send`` raises."""


def _config_error(exc: LoadBalancerConfigError) -> DomainError:
    return unprocessable(str(exc), str(exc).split(":", 1)[0])


class LoadBalancerService:
    """Breakers, rate limits, stats and strategies of one node (see the module docstring)."""

    def __init__(self, node: Host, rng: random.Random | None = None, *, pool: Any | None = None,
                 settings: SettingsChannel) -> None:
        self.node = node
        self.pool = pool
        """The pool service, whose connection counts feed least-connections (None: the mesh's)."""
        self.config: LoadBalancerServiceConfig = node.config.cluster.loadbalancer
        self.rng = rng or node.rng
        self.breakers = BreakerRegistry(self.config.circuit_breaker)
        self.limiters = RateLimiterRegistry()
        self.tracker = NodeStatsTracker(self.config.stats)
        self.retry_policy: RetryPolicy = self.config.retry
        """The live retry policy; the routing service reads it for every retry decision."""
        self.retry_budget = RetryBudget()
        self.strategies: dict[StrategyName, Strategy] = {
            name: create_strategy(name, rng=self.rng, hash_config=self.config.consistent_hash,
                                  adaptive_config=self.config.adaptive)
            for name in StrategyName
        }
        self.selector = NodeSelector(self.breakers, self.limiters, self.tracker, self.strategies)
        self.loads = LoadPoller(node, self.tracker, self.config, self.rng)
        self.settings = settings
        """The cluster-wide settings channel (retry policy, rate limits with scope cluster)."""
        settings.subscribe(RETRY_KEY, lambda _key, value: self.apply_retry(**value))
        settings.subscribe(RATE_LIMIT_PREFIX, lambda _key, value: self.apply_rate_limit(**value))
        self.api = LoadBalancerApi(self, clock=time.monotonic, wall_clock=time.time)

    @property
    def limits(self) -> dict[str, RateLimitConfig]:
        """Node -> the rate limit set for sends to it."""
        return self.selector.limits

    @property
    def refused(self) -> dict[str, int]:
        """Sends ``before_send`` refused, by reason (rate_limited, circuit_open)."""
        return self.selector.refused

    @property
    def reports(self) -> dict[str, dict[str, Any]]:
        """Node -> last load report (+ wall time)."""
        return self.loads.reports

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.node.spawn(self.loads.run(), name="lb load poll")

    def health(self) -> tuple[str, str]:
        open_ = self.selector.open_circuits(time.monotonic())
        if open_:
            return "degraded", f"circuit open for {', '.join(open_)}"
        return "healthy", f"{len(self.reports)} load reports, {len(self.limits)} rate limits"

    # ------------------------------------------------------------------ routing hooks
    def before_send(self, target_node: str) -> None:
        """Admit one send to ``target_node``, else raise UNAVAILABLE (circuit open) / TOO_MANY_REQUESTS (rate limit).

        An admitted send must be followed by exactly one ``after_send`` for the same target.
        """
        now = time.monotonic()
        self.loads.planner.used(target_node, now)
        refusal = self.selector.admit(target_node, now)
        if refusal is not None:
            raise DomainError(_REFUSAL_KIND[refusal.reason], refusal.message, "target_node")

    def after_send(self, target_node: str, ok: bool, latency_ms: float) -> None:
        """Record the outcome of a send that ``before_send`` admitted."""
        self.selector.record(target_node, ok, latency_ms, time.monotonic())

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

    def refresh_connections(self, nodes: list[str]) -> None:
        """Count the open connections to each of ``nodes`` into the stats."""
        self.selector.refresh({node_id: self._connections(node_id) for node_id in nodes})

    def select(self, strategy: str, available_nodes: list[str] | None = None,
               routing_key: str | None = None) -> tuple[Selection, dict[str, str]]:
        """Choose a node without claiming anything; returns the selection and skipped nodes with why.

        Raises UNPROCESSABLE (strategy, routing_key, available_nodes), NOT_FOUND (unknown node) and
        503 (every candidate skipped).
        """
        try:
            name = parse_strategy_name(strategy)
        except LoadBalancerError as exc:
            raise unprocessable(str(exc), "strategy") from None
        if name is StrategyName.CONSISTENT_HASH and not routing_key:
            raise unprocessable("ConsistentHash needs a routing_key", "routing_key")
        live = self.node.live_members()
        if available_nodes is None:
            requested = list(live)
        else:
            if not available_nodes:
                raise unprocessable("available_nodes must not be empty (omit it to use the live members)",
                               "available_nodes")
            known = self.known_nodes()
            unknown = [n for n in available_nodes if n not in known]
            if unknown:
                raise not_found(f"unknown node {unknown[0]!r} in available_nodes", "available_nodes")
            requested = list(dict.fromkeys(available_nodes))
        skipped = self.selector.skip_reasons(requested, live, time.monotonic())
        candidates = [n for n in requested if n not in skipped]
        if not candidates:
            reasons = ", ".join(f"{n} ({why})" for n, why in skipped.items())
            raise unavailable(f"no available node: {reasons}",
                           "available_nodes" if available_nodes is not None else None)
        self.refresh_connections(candidates)
        try:
            selection = self.selector.choose(name, candidates, routing_key)
        except NoAvailableNodeError as exc:
            raise unavailable(str(exc)) from None
        self.loads.planner.used(selection.selected_node, time.monotonic())
        return selection, skipped

    # ------------------------------------------------------------------ circuit breakers (041)
    def breaker_statuses(self, now: float) -> list[CircuitStatus]:
        """One breaker row per known node and per node with a breaker (a node never used is Closed)."""
        return self.selector.breaker_statuses(self.known_nodes(), now)

    # ------------------------------------------------------------------ settings (042, 043)
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

    def apply_rate_limit(self, node: str, requests_per_second: float, burst_size: int) -> None:
        if node not in self.known_nodes():
            raise not_found(f"unknown node {node!r}", "node")
        try:
            self.selector.set_rate_limit(node, requests_per_second, burst_size, time.monotonic())
        except LoadBalancerConfigError as exc:
            raise _config_error(exc) from None


__all__ = ["LbLoadQuery", "LbLoadReport", "LoadBalancerService",
           "LoadBalancerServiceConfig"]
