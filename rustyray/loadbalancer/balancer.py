"""The load balancer: breakers and rate limits in front of one strategy.

Theory of operation: a request flows ``select -> (caller sends) -> complete``. ``select``
drops candidates whose circuit breaker is Open (or HalfOpen with all trial slots taken) and
those whose token bucket is empty, asks the strategy to choose among the rest, then claims
the chosen node's breaker slot and token. ``complete`` records the outcome in the breaker,
the stats tracker and the strategy's own bookkeeping (ConsistentHash's bounded loads).
Filtering peeks without side effects, so nodes that were not chosen lose no trial slot or
token. All time is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rustyray.loadbalancer.circuit_breaker import BreakerRegistry
from rustyray.loadbalancer.errors import NoAvailableNodeError
from rustyray.loadbalancer.node_stats import NodeStatsTracker
from rustyray.loadbalancer.strategies.base import NodeLoad, Selection, Strategy
from rustyray.loadbalancer.traffic_shaping import RateLimiterRegistry


class LoadBalancer:
    """One strategy plus shared breakers, rate limiters and stats."""

    def __init__(
        self,
        strategy: Strategy,
        breakers: BreakerRegistry | None = None,
        limiters: RateLimiterRegistry | None = None,
        stats: NodeStatsTracker | None = None,
    ) -> None:
        self.strategy = strategy
        self.breakers = breakers or BreakerRegistry()
        self.limiters = limiters or RateLimiterRegistry()
        self.stats = stats or NodeStatsTracker()

    def eligible(self, candidates: Sequence[str], now: float) -> list[str]:
        """Candidates a request could go to right now (no side effects)."""
        open_ok = self.breakers.available(candidates, now)
        return [n for n in open_ok if self.limiters.has_token(n, now)]

    def select(
        self,
        candidates: Sequence[str],
        now: float,
        key: str | None = None,
        stats: Mapping[str, NodeLoad] | None = None,
    ) -> Selection:
        """Choose a node and claim its breaker slot and token; the caller must ``complete`` it."""
        eligible = self.eligible(candidates, now)
        if not eligible:
            raise NoAvailableNodeError(f"all {len(candidates)} candidates are tripped or rate limited")
        selection = self.strategy.select(eligible, key, self.stats.snapshot() if stats is None else stats)
        node = selection.selected_node
        admitted = self.breakers.allow(node, now) and self.limiters.try_acquire(node, now)
        assert admitted, "a node that passed the peek must admit the request"
        self.stats.on_request_start(node)
        return selection

    def complete(self, node: str, now: float, ok: bool, latency_ms: float) -> None:
        """Record the outcome of a request that ``select`` routed to ``node``."""
        self.breakers.record(node, now, ok)
        self.stats.on_request_end(node, latency_ms, ok)
        self.strategy.on_complete(node)
