"""The load balancer API's contract (NETWORKING-037..043): one request and one result dataclass per operation.

Why dataclasses: the field lists here are the API's schema, in one place a reader (and the facade's
tests) can see, instead of dict literals spread over ``api.py``. Requests check their own fields in
``__post_init__`` (a ``DomainError`` naming the field); ``rustyray.api_binding.invoke`` builds them from
the call's keyword arguments and ``to_wire`` turns results into JSON, field by field.

Rows whose keys depend on the data (a selection's strategy-specific fields, a member without a load
report) shape themselves with ``to_dict``, leaving out what is unset, so the JSON keeps the keys it had.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rustyray.api_base import ScopedChange, ScopedRequest, omit_none
from rustyray.loadbalancer.traffic_shaping import RateLimitStatus

__all__ = [
    "CircuitStatusReport",
    "NodeLoadRow",
    "RateLimitApplied",
    "RateLimitRow",
    "RateLimitSetRequest",
    "RateLimitsReport",
    "RetryConfigureRequest",
    "RetryConfigured",
    "RetryPolicyReport",
    "SelectRequest",
    "SelectionResult",
    "StatsReport",
]


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class SelectRequest:
    """The strategy, the candidates and the key are checked by ``LoadBalancerService.select``, which the
    routing service also calls directly, so the checks stay there rather than here."""

    strategy: str
    available_nodes: list[str] | None = None
    routing_key: str | None = None


@dataclass(frozen=True)
class RetryConfigureRequest(ScopedRequest):
    strategy: str
    max_attempts: int
    initial_delay_ms: float
    max_delay_ms: float
    multiplier: float | None = None


@dataclass(frozen=True)
class RateLimitSetRequest(ScopedRequest):
    node: str
    requests_per_second: float
    burst_size: int


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SelectionResult:
    """NETWORKING-037..040: the chosen node; the strategy-specific fields and ``skipped`` only when set."""

    selected_node: str
    strategy: str
    request_count: int | None = None
    node_connections: dict[str, int] | None = None
    hash_value: int | None = None
    load_scores: dict[str, float] | None = None
    skipped: dict[str, str] | None = None
    """Candidates left out, with why (breaker open, rate limited, not live); None when none was."""

    def to_dict(self) -> dict[str, Any]:
        return omit_none(self)


@dataclass(frozen=True)
class CircuitStatusReport:
    """NETWORKING-041. ``circuits`` are ``CircuitStatus.to_dict()`` rows (``opened_at`` as UTC ISO time,
    present only while a breaker is open); ``config`` is the ``CircuitBreakerConfig``."""

    node: str
    circuits: list[dict[str, Any]]
    config: dict[str, Any]


@dataclass(frozen=True)
class RetryConfigured(ScopedChange):
    """NETWORKING-042: the policy now in force here, and where it was applied."""

    configured: bool
    strategy: str
    max_attempts: int
    initial_delay_ms: float
    max_delay_ms: float
    multiplier: float


@dataclass(frozen=True)
class RetryPolicyReport:
    node: str
    strategy: str
    max_attempts: int
    initial_delay_ms: float
    max_delay_ms: float
    multiplier: float
    retry_budget_balance: float


@dataclass(frozen=True)
class RateLimitApplied(ScopedChange, RateLimitStatus):
    """NETWORKING-043: the limit set for sends to ``node`` (the seed's answer), and where it was applied."""


@dataclass(frozen=True)
class RateLimitRow:
    node: str
    rps: float
    burst: int
    retry_after_sec: float


@dataclass(frozen=True)
class RateLimitsReport:
    node: str
    limits: list[RateLimitRow]
    refused: dict[str, int]
    """Sends refused, by reason (rate_limited, circuit_open)."""


@dataclass(frozen=True)
class NodeLoadRow:
    """What the strategies see of one live member: the load fields only once it has stats, and
    ``reported_at`` only once it sent a load report."""

    node: str
    active_connections: int | None = None
    in_flight: int | None = None
    latency_ewma_ms: float | None = None
    error_rate: float | None = None
    cpu_load: float | None = None
    mem_load: float | None = None
    load_score: float | None = None
    reported_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return omit_none(self)


@dataclass(frozen=True)
class StatsReport:
    node: str
    nodes: list[NodeLoadRow] = field(default_factory=list)
