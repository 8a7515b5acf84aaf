"""The pool API's contract (NETWORKING-003, 044..047): one request and one result dataclass per operation.

Why dataclasses: the field lists here are the API's schema, in one place a reader (and the facade's
tests) can see, instead of dict literals spread over ``api.py``. Requests check their own fields in
``__post_init__`` (a ``DomainError`` naming the field); ``rustyray.api_binding.invoke`` builds them from
the call's keyword arguments and ``to_wire`` turns results into JSON, field by field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rustyray.api_base import ScopedChange, ScopedRequest
from rustyray.errors import unprocessable
from rustyray.pool.node_pool import PoolCounts

__all__ = [
    "EvictionConfigureRequest",
    "EvictionConfigured",
    "EvictionSettings",
    "LatencyProbeRequest",
    "PoolRow",
    "PoolStatistics",
    "StreamRow",
    "StreamsReport",
    "WarmupRequest",
    "WarmupResult",
]


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class WarmupRequest:
    node: str
    target_size: int

    def __post_init__(self) -> None:
        if not isinstance(self.target_size, int) or isinstance(self.target_size, bool) or self.target_size < 1:
            raise unprocessable("target_size must be an integer >= 1", "target_size")


@dataclass(frozen=True)
class LatencyProbeRequest:
    target_node: str
    requests: int = 200

    def __post_init__(self) -> None:
        if not isinstance(self.requests, int) or not 1 <= self.requests <= 100_000:
            raise unprocessable("requests must be in 1..100000", "requests")


@dataclass(frozen=True)
class EvictionConfigureRequest(ScopedRequest):
    policy: str
    idle_timeout_sec: float
    max_lifetime_sec: float
    max_idle: int | None = None


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class PoolRow(PoolCounts):
    """One peer's pool (NETWORKING-044): the seed's counts, then the adapter's leases and queue."""

    leased: int
    in_flight_requests: int
    pending_opens: int
    waiters: int
    primary_connection: str | None


@dataclass(frozen=True)
class PoolStatistics:
    """NETWORKING-003 flat totals plus the NETWORKING-044 per-node ``pools``."""

    node: str
    total_connections: int
    active_connections: int
    idle_connections: int
    max_pool_size: int
    selection_strategy: str
    eviction_policy: str
    connections_opened: int
    connections_evicted: int
    pools: list[PoolRow]


@dataclass(frozen=True)
class StreamRow:
    """One live connection and its streams (NETWORKING-045)."""

    connection_id: str
    node: str | None
    active_streams: int
    max_streams: int
    protocol: str
    direction: str
    pooled: bool
    streams_opened: int
    peak_streams: int
    multiplexed: bool
    stream_ids: list[int] = field(default_factory=list)
    exchange_stream_ids: list[int] = field(default_factory=list)
    send_window: int | None = None
    recv_window: int | None = None
    stream_bytes_sent: int = 0
    stream_bytes_received: int = 0
    streams: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class StreamsReport:
    node: str
    connections: list[StreamRow]
    total_active_streams: int


@dataclass(frozen=True)
class WarmupResult:
    warmup_initiated: bool
    target_connections: int
    established: int
    node: str
    opened: int
    failed: int
    requested: int


@dataclass(frozen=True)
class EvictionConfigured(ScopedChange):
    configured: bool
    policy: str
    idle_timeout_sec: float
    max_lifetime_sec: float
    max_idle: int


@dataclass(frozen=True)
class EvictionSettings:
    node: str
    policy: str
    idle_timeout_sec: float
    max_lifetime_sec: float
    max_idle: int
    min_size: int
    max_size: int
