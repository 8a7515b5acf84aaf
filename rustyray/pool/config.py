"""Pool configuration: ``PoolConfig`` (one node's pools) and ``PoolServiceConfig`` (the ``[pool]`` table)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from rustyray.config_loader import FLATTEN
from rustyray.pool.errors import require
from rustyray.pool.multiplexing import MultiplexConfig


class EvictionPolicy(enum.Enum):
    """Eviction policies, spelled as in the seed (NETWORKING-047)."""

    LRU = "LRU"
    IDLE_TIMEOUT = "IdleTimeout"
    MAX_LIFETIME = "MaxLifetime"


@dataclass(frozen=True)
class PoolConfig:
    """Per-node pool limits and timers. All times are seconds on the caller's clock."""

    min_size: int = 2
    """Connections the warm-up keeps open even when idle; eviction never goes below it (except MaxLifetime)."""
    max_size: int = 20
    """Hard cap on open plus opening connections to one node."""
    acquire_timeout_sec: float = 5.0
    """How long an acquire may wait in the FIFO queue before the core times it out."""
    max_waiters: int = 1000
    """Queued acquires beyond this fail at once with PoolExhaustedError (back-pressure)."""
    health_check_interval_sec: float = 30.0
    """An idle connection not checked for this long is marked as needing a health check."""
    eviction_policy: EvictionPolicy = EvictionPolicy.IDLE_TIMEOUT
    """Which rule ``evict(now)`` applies."""
    idle_timeout_sec: float = 300.0
    """IdleTimeout: close idle connections unused for this long (down to min_size)."""
    max_lifetime_sec: float = 3600.0
    """MaxLifetime: close idle connections older than this, whatever min_size (warm-up replaces them)."""
    max_idle: int = 10
    """LRU: keep at most this many idle connections, closing the least recently used ones."""
    idle_pool_timeout_sec: float = 60.0
    """A whole pool unused this long (no lease, no exchange on its connections, nothing pending) is
    dropped: its dialled connections closed, the node's primary connection let go (not closed). So
    a node keeps pools, and their health probes and refills, only for the peers it talks to; the
    next use (lease, warm-up, the statistics API) adopts the primary again."""

    def validate(self) -> None:
        require(self.min_size >= 0, "min_size", "must be >= 0")
        require(self.max_size >= 1, "max_size", "must be >= 1")
        require(self.min_size <= self.max_size, "min_size", "must be <= max_size")
        require(self.acquire_timeout_sec > 0, "acquire_timeout_sec", "must be > 0")
        require(self.max_waiters >= 0, "max_waiters", "must be >= 0")
        require(self.health_check_interval_sec > 0, "health_check_interval_sec", "must be > 0")
        require(isinstance(self.eviction_policy, EvictionPolicy), "eviction_policy", "must be an EvictionPolicy")
        require(self.idle_timeout_sec > 0, "idle_timeout_sec", "must be > 0")
        require(self.max_lifetime_sec > 0, "max_lifetime_sec", "must be > 0")
        require(self.max_idle >= 0, "max_idle", "must be >= 0")
        require(self.idle_pool_timeout_sec > 0, "idle_pool_timeout_sec", "must be > 0")

    @classmethod
    def lan(cls) -> PoolConfig:
        """Defaults for a data-centre cluster."""
        return cls()

    @classmethod
    def local(cls) -> PoolConfig:
        """Small, fast-cycling pools for single-host tests."""
        return cls(min_size=1, max_size=4, acquire_timeout_sec=1.0, health_check_interval_sec=5.0,
                   idle_timeout_sec=10.0, max_lifetime_sec=60.0, max_idle=2, idle_pool_timeout_sec=20.0)


@dataclass(frozen=True)
class PoolServiceConfig:
    """The ``[pool]`` table: PoolConfig's keys and the adapter's at the top, sub-table ``[pool.multiplex]``."""

    pool: PoolConfig = field(default_factory=lambda: PoolConfig(min_size=1), metadata=FLATTEN)
    """Per-peer pool limits (keys directly in ``[pool]``). min_size defaults to 1: the pinned primary
    connection covers it."""
    multiplex: MultiplexConfig = field(default_factory=MultiplexConfig)
    """Stream limit per connection (max_streams, default 100)."""
    maintenance_interval_sec: float = 0.5
    """Seconds between maintenance passes (eviction, health probes, min_size refill, idle-pool release);
    a pass touches only the pools of peers in use, so its cost does not grow with the cluster."""
    health_probe_timeout_sec: float = 2.0
    """Timeout (s) of the Echo probe sent on an idle connection due a health check."""

    def validate(self) -> None:
        self.pool.validate()
        self.multiplex.validate()
        require(self.maintenance_interval_sec > 0, "maintenance_interval_sec", "must be > 0")
        require(self.health_probe_timeout_sec > 0, "health_probe_timeout_sec", "must be > 0")
