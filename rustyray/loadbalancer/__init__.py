"""Load balancing (NETWORKING-037..043): strategies, circuit breakers, retries, rate limits.

Everything here is sans-I/O: time is passed in as ``now`` and randomness as a
``random.Random``. ``LoadBalancer`` ties the pieces together for an adapter.
"""

from rustyray.loadbalancer.balancer import LoadBalancer
from rustyray.loadbalancer.circuit_breaker import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    CircuitStatus,
)
from rustyray.loadbalancer.errors import (
    LoadBalancerConfigError,
    LoadBalancerError,
    MissingRoutingKeyError,
    NoAvailableNodeError,
    RetryBudgetExhaustedError,
    UnknownStrategyError,
)
from rustyray.loadbalancer.node_stats import NodeStatsConfig, NodeStatsTracker
from rustyray.loadbalancer.retry import RetryBudget, RetryBudgetConfig, RetryPolicy, RetryStrategy
from rustyray.loadbalancer.strategies import (
    Adaptive,
    AdaptiveConfig,
    ConsistentHash,
    ConsistentHashConfig,
    LeastConnections,
    NodeLoad,
    RoundRobin,
    Selection,
    Strategy,
    StrategyName,
    create_strategy,
)
from rustyray.loadbalancer.traffic_shaping import (
    RateLimitConfig,
    RateLimiterRegistry,
    RateLimitStatus,
    TokenBucket,
)

__all__ = [
    "Adaptive",
    "AdaptiveConfig",
    "BreakerRegistry",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitState",
    "CircuitStatus",
    "ConsistentHash",
    "ConsistentHashConfig",
    "LeastConnections",
    "LoadBalancer",
    "LoadBalancerConfigError",
    "LoadBalancerError",
    "MissingRoutingKeyError",
    "NoAvailableNodeError",
    "NodeLoad",
    "NodeStatsConfig",
    "NodeStatsTracker",
    "RateLimitConfig",
    "RateLimitStatus",
    "RateLimiterRegistry",
    "RetryBudget",
    "RetryBudgetConfig",
    "RetryBudgetExhaustedError",
    "RetryPolicy",
    "RetryStrategy",
    "RoundRobin",
    "Selection",
    "Strategy",
    "StrategyName",
    "TokenBucket",
    "UnknownStrategyError",
    "create_strategy",
]
