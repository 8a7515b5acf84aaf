"""Configuration of the load balancer: ``LoadBalancerServiceConfig`` is the ``[loadbalancer]`` table.

Its sub-tables configure the cores (``[loadbalancer.circuit_breaker]``, ``.stats``,
``.adaptive``, ``.consistent_hash``, ``.retry``); the top-level keys drive the
``LoadBalancerService`` adapter's load polling, whose targets each round the sans-I/O
``load_poll.LoadPollPlanner`` picks (a bounded set: the recently used members plus a small
sample, not every member).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rustyray.loadbalancer.circuit_breaker import CircuitBreakerConfig
from rustyray.loadbalancer.errors import require
from rustyray.loadbalancer.load_poll import LoadPollConfig
from rustyray.loadbalancer.node_stats import NodeStatsConfig
from rustyray.loadbalancer.retry import RetryPolicy
from rustyray.loadbalancer.strategies import AdaptiveConfig, ConsistentHashConfig

__all__ = ["LoadBalancerServiceConfig"]


@dataclass(frozen=True)
class LoadBalancerServiceConfig:
    """Settings of the ``[loadbalancer]`` table; sub-tables configure the cores."""

    load_poll_interval_sec: float = 2.0
    """Seconds between CPU/memory load-poll rounds (each asks a bounded set of members, see below)."""
    load_query_timeout_sec: float = 1.0
    """Timeout (s) of one LbLoadQuery; a member that misses it keeps its last report."""
    load_poll_sample_size: int = 2
    """Members beyond the recently used ones asked per round, the longest-unpolled first (power of
    two choices: a couple of fresh candidates suffice); every member is refreshed about every
    ceil(members / sample_size) rounds. 0: poll only the recently used members."""
    load_poll_recent_sec: float = 30.0
    """Seconds a routed send to a member, or a selection of it, keeps it in every round's poll."""
    load_poll_max_recent: int = 16
    """Cap on recently used members polled per round (the most recently used win), so one round asks
    at most load_poll_max_recent + load_poll_sample_size members at any cluster size."""
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

    @property
    def load_poll(self) -> LoadPollConfig:
        """The planner's config, from the ``load_poll_*`` keys."""
        return LoadPollConfig(sample_size=self.load_poll_sample_size, recent_sec=self.load_poll_recent_sec,
                              max_recent=self.load_poll_max_recent)

    def validate(self) -> None:
        require(self.load_poll_interval_sec > 0, "load_poll_interval_sec", "must be > 0")
        require(self.load_query_timeout_sec > 0, "load_query_timeout_sec", "must be > 0")
        self.load_poll.validate()
        for sub in (self.circuit_breaker, self.stats, self.adaptive, self.consistent_hash, self.retry):
            sub.validate()
