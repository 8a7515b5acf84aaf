"""Configuration of the load balancer: ``LoadBalancerServiceConfig`` is the ``[loadbalancer]`` table.

Its sub-tables configure the cores (``[loadbalancer.circuit_breaker]``, ``.stats``,
``.adaptive``, ``.consistent_hash``, ``.retry``); the top-level keys drive the
``LoadBalancerService`` adapter's load polling.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rustyray.loadbalancer.circuit_breaker import CircuitBreakerConfig
from rustyray.loadbalancer.errors import require
from rustyray.loadbalancer.node_stats import NodeStatsConfig
from rustyray.loadbalancer.retry import RetryPolicy
from rustyray.loadbalancer.strategies import AdaptiveConfig, ConsistentHashConfig

__all__ = ["LoadBalancerServiceConfig"]


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
        require(self.load_poll_interval_sec > 0, "load_poll_interval_sec", "must be > 0")
        require(self.load_query_timeout_sec > 0, "load_query_timeout_sec", "must be > 0")
        for sub in (self.circuit_breaker, self.stats, self.adaptive, self.consistent_hash, self.retry):
            sub.validate()
