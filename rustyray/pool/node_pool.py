"""Sans-I/O connection-pool accounting for one node (NETWORKING-003, -044, -046, -047).

Theory of operation: the core owns the bookkeeping, the adapter owns the sockets, and they
talk in opaque conn ids. Every connection is Idle, Active (leased) or Checking (taken out
for a health probe); ``pending`` counts opens the core asked for that have not finished, and
``open + pending <= max_size`` always holds.

``acquire(now)`` leases the most recently used idle connection (so the tail of the idle list
ages out under IdleTimeout / LRU), or queues a waiter in FIFO order with a deadline and asks
the adapter to open connections for waiters the pending opens will not cover. A connection
that becomes free (``release``, ``add_connection``, a passed health check) goes straight to
the head waiter and the call returns that ``Grant``. ``expire_waiters(now)`` times waiters
out; the adapter fails their awaits. After any call that may free capacity (a discard, a
failed open, an unhealthy release) the adapter calls ``plan_opens()`` (with its own backoff
for a failing node) to learn how many connections to start for the remaining waiters.
``next_deadline()`` gives the next time the adapter must call back (waiter timeouts, health
checks, evictions), like aioquic's ``get_timer``. ``idle_since()`` says since when a quiet pool
(no waiter, pending open, lease or probe) has gone unused, so the owner can drop pools of peers
it no longer talks to (issue 12: upkeep only for the peers in use). The same FIFO discipline is what HikariCP
and Go's ``database/sql`` use so no waiter starves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from rustyray.pool.config import EvictionPolicy, PoolConfig
from rustyray.pool.errors import PoolExhaustedError, UnknownConnectionError, require
from rustyray.pool.eviction import IdleConnection, select_evictions
from rustyray.pool.warmup import WarmupPlan, plan_warmup
from rustyray.records import record


class ConnectionState(enum.Enum):
    IDLE = "Idle"
    ACTIVE = "Active"
    CHECKING = "Checking"


@dataclass
class _Conn:
    conn_id: str
    created_at: float
    last_used_at: float
    last_checked_at: float
    state: ConnectionState


@dataclass(frozen=True)
class Grant:
    """Hand ``conn_id`` to the waiter ``waiter_id`` (it is now Active)."""

    waiter_id: int
    conn_id: str


@dataclass(frozen=True)
class AcquireOutcome:
    """Result of ``acquire``: either a connection now, or a queued waiter."""

    waiter_id: int
    conn_id: str | None
    """The leased connection if one was free; None means the waiter is queued."""
    deadline: float | None
    """When a queued waiter times out (seconds, caller's clock)."""
    open_connections: int
    """New connections the adapter should start now (already counted as pending)."""


def utilization(active: int, total: int) -> float:
    """active / total, to four places (0.0 with no connections), as in the seed's example."""
    return round(active / total, 4) if total else 0.0


@dataclass(frozen=True)
class PoolCounts:
    """The seed's per-node pool statistics (NETWORKING-044): what every report of one node's pool starts with."""

    node: str
    total_connections: int
    active: int
    idle: int
    max_size: int
    utilization: float
    """active / total_connections (0.0 with no connections), as in the seed's example."""


@dataclass(frozen=True)
class PoolStats(PoolCounts):
    """The seed's per-node pool statistics plus queue state."""

    pending_opens: int
    waiters: int
    checking: int

    def to_dict(self) -> dict[str, Any]:
        return record(self, exclude=("pending_opens", "waiters", "checking"))


class NodePool:
    """Accounting for the connections to one node."""

    def __init__(self, node: str, config: PoolConfig | None = None) -> None:
        self.node = node
        self.config = config or PoolConfig()
        self.config.validate()
        self._conns: dict[str, _Conn] = {}
        self._idle: dict[str, None] = {}  # insertion order = least recently released first
        self._waiters: dict[int, float] = {}  # waiter id -> deadline, FIFO by insertion
        self._retired: list[str] = []  # removed by the core, still to be closed by the adapter
        self._next_waiter = 0
        self.pending = 0
        """Opens requested from the adapter and not yet reported back."""
        self.last_activity: float | None = None
        """Last acquire, release, added connection or ``touch`` (None: never used)."""

    # ---- counts -------------------------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self._conns)

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def active_count(self) -> int:
        return sum(1 for c in self._conns.values() if c.state is ConnectionState.ACTIVE)

    @property
    def waiter_count(self) -> int:
        return len(self._waiters)

    def state_of(self, conn_id: str) -> ConnectionState | None:
        conn = self._conns.get(conn_id)
        return None if conn is None else conn.state

    def stats(self) -> PoolStats:
        active = self.active_count
        total = self.total
        return PoolStats(
            node=self.node,
            total_connections=total,
            active=active,
            idle=len(self._idle),
            max_size=self.config.max_size,
            utilization=utilization(active, total),
            pending_opens=self.pending,
            waiters=len(self._waiters),
            checking=total - active - len(self._idle),
        )

    # ---- leasing ------------------------------------------------------------------------

    def acquire(self, now: float, timeout: float | None = None) -> AcquireOutcome:
        """Lease an idle connection or queue a FIFO waiter (see the module docstring)."""
        self.last_activity = now
        waiter_id = self._next_waiter
        self._next_waiter += 1
        if self._idle and not self._waiters:
            conn_id = self._idle.popitem()[0]  # most recently used
            self._lease(conn_id, now)
            return AcquireOutcome(waiter_id=waiter_id, conn_id=conn_id, deadline=None, open_connections=0)
        if len(self._waiters) >= self.config.max_waiters:
            raise PoolExhaustedError(f"{self.node}: {len(self._waiters)} acquires already waiting")
        wait = self.config.acquire_timeout_sec if timeout is None else timeout
        require(wait > 0, "timeout", "must be > 0")
        deadline = now + wait
        self._waiters[waiter_id] = deadline
        return AcquireOutcome(waiter_id=waiter_id, conn_id=None, deadline=deadline,
                              open_connections=self.plan_opens())

    def _lease(self, conn_id: str, now: float) -> None:
        conn = self._conns[conn_id]
        conn.state = ConnectionState.ACTIVE
        conn.last_used_at = now

    def _make_available(self, conn_id: str, now: float) -> Grant | None:
        """A connection became free: give it to the head waiter, or park it idle."""
        self.last_activity = now
        if self._waiters:
            waiter_id = next(iter(self._waiters))
            del self._waiters[waiter_id]
            self._lease(conn_id, now)
            return Grant(waiter_id=waiter_id, conn_id=conn_id)
        conn = self._conns[conn_id]
        conn.state = ConnectionState.IDLE
        conn.last_used_at = now
        self._idle[conn_id] = None
        return None

    def _conn_in(self, conn_id: str, state: ConnectionState, what: str) -> _Conn:
        """The connection ``conn_id``, which must be in ``state``; UnknownConnectionError "is not <what>" otherwise."""
        conn = self._conns.get(conn_id)
        if conn is None or conn.state is not state:
            raise UnknownConnectionError(f"{self.node}: {conn_id!r} is not {what}")
        return conn

    def release(self, conn_id: str, now: float, healthy: bool = True) -> Grant | None:
        """Return a leased connection. Unhealthy ones leave the pool (the adapter closes them)."""
        conn = self._conn_in(conn_id, ConnectionState.ACTIVE, "leased")
        if not healthy:
            del self._conns[conn_id]
            return None
        policy = self.config.eviction_policy
        if policy is EvictionPolicy.MAX_LIFETIME and now - conn.created_at >= self.config.max_lifetime_sec:
            del self._conns[conn_id]
            self._retired.append(conn_id)
            return None
        return self._make_available(conn_id, now)

    def cancel(self, waiter_id: int) -> bool:
        """Drop a waiter the adapter gave up on; False if it was already granted or expired."""
        return self._waiters.pop(waiter_id, None) is not None

    def expire_waiters(self, now: float) -> list[int]:
        """Waiters whose deadline has passed, removed from the queue, in FIFO order."""
        expired = [w for w, deadline in self._waiters.items() if deadline <= now]
        for w in expired:
            del self._waiters[w]
        return expired

    # ---- opening and closing ------------------------------------------------------------

    def plan_opens(self) -> int:
        """Opens to start now for queued waiters not covered by pending opens (reserved as pending)."""
        room = self.config.max_size - self.total - self.pending
        n = max(0, min(len(self._waiters) - self.pending, room))
        self.pending += n
        return n

    def warmup(self, target: int) -> WarmupPlan:
        """Plan opens to reach ``target`` connections (capped by max_size); reserves them as pending."""
        plan = plan_warmup(self.total, self.pending, target, self.config.max_size)
        self.pending += plan.to_open
        return plan

    def add_connection(self, conn_id: str, now: float) -> Grant | None:
        """An open finished (or the adapter adopts a connection): it serves the head waiter or idles."""
        if conn_id in self._conns:
            raise UnknownConnectionError(f"{self.node}: {conn_id!r} is already in the pool")
        if self.pending > 0:
            self.pending -= 1
        elif self.total >= self.config.max_size:
            raise PoolExhaustedError(f"{self.node}: pool is full ({self.config.max_size})")
        self._conns[conn_id] = _Conn(conn_id, now, now, now, ConnectionState.IDLE)
        return self._make_available(conn_id, now)

    def connect_failed(self) -> None:
        """A requested open failed; its slot is free again."""
        assert self.pending > 0, "connect_failed without a pending open"
        self.pending -= 1

    def discard(self, conn_id: str) -> None:
        """The connection died (any state); forget it. Call ``plan_opens()`` afterwards."""
        conn = self._conns.pop(conn_id, None)
        if conn is None:
            raise UnknownConnectionError(f"{self.node}: {conn_id!r} is not in the pool")
        self._idle.pop(conn_id, None)

    def close_all(self) -> list[str]:
        """Forget every connection and waiter; returns the conn ids for the adapter to close."""
        ids = [*self._retired, *self._conns]
        self._conns.clear()
        self._idle.clear()
        self._waiters.clear()
        self._retired.clear()
        self.pending = 0
        return ids

    # ---- maintenance --------------------------------------------------------------------

    def touch(self, now: float) -> None:
        """The pool's connections carried traffic at ``now`` that did not go through a lease."""
        self.last_activity = now

    def idle_since(self) -> float | None:
        """When a quiet pool was last used (-inf: never); None while a waiter, open, lease or probe is on."""
        if self._waiters or self.pending or len(self._idle) != len(self._conns):
            return None
        return float("-inf") if self.last_activity is None else self.last_activity

    def health_checks_due(self, now: float) -> list[str]:
        """Idle connections unchecked for ``health_check_interval_sec``; they move to Checking."""
        due = [
            cid for cid in self._idle
            if now - self._conns[cid].last_checked_at >= self.config.health_check_interval_sec
        ]
        for cid in due:
            del self._idle[cid]
            self._conns[cid].state = ConnectionState.CHECKING
        return due

    def health_check_result(self, conn_id: str, ok: bool, now: float) -> Grant | None:
        """A probe finished: a healthy connection becomes available, a failed one leaves the pool."""
        conn = self._conn_in(conn_id, ConnectionState.CHECKING, "being checked")
        if not ok:
            del self._conns[conn_id]
            return None
        conn.last_checked_at = now
        last_used, last_activity = conn.last_used_at, self.last_activity
        grant = self._make_available(conn_id, now)
        if grant is None:
            conn.last_used_at = last_used  # a probe is not a use; idle timeout keeps counting
            self.last_activity = last_activity
        return grant

    def evict(self, now: float) -> list[str]:
        """Connections to close now under the eviction policy; they leave the pool."""
        idle = [
            IdleConnection(cid, self._conns[cid].created_at, self._conns[cid].last_used_at) for cid in self._idle
        ]
        chosen = select_evictions(idle, self.total, now, self.config)
        for cid in chosen:
            del self._idle[cid]
            del self._conns[cid]
        out, self._retired = [*self._retired, *chosen], []
        return out

    def next_deadline(self) -> float | None:
        """Earliest time the adapter should call back (expire_waiters / health checks / evict)."""
        times = list(self._waiters.values())
        cfg = self.config
        for cid in self._idle:
            conn = self._conns[cid]
            times.append(conn.last_checked_at + cfg.health_check_interval_sec)
            if cfg.eviction_policy is EvictionPolicy.IDLE_TIMEOUT and self.total > cfg.min_size:
                times.append(conn.last_used_at + cfg.idle_timeout_sec)
            elif cfg.eviction_policy is EvictionPolicy.MAX_LIFETIME:
                times.append(conn.created_at + cfg.max_lifetime_sec)
        return min(times) if times else None

    def check_invariants(self) -> None:
        """Assert the accounting invariants (used by tests and debug builds)."""
        assert self.total + self.pending <= self.config.max_size, "pool over max_size"
        assert all(self._conns[c].state is ConnectionState.IDLE for c in self._idle), "idle set out of sync"
        idle_states = sum(1 for c in self._conns.values() if c.state is ConnectionState.IDLE)
        assert idle_states == len(self._idle), "idle set out of sync"
        assert not (self._idle and self._waiters), "a waiter is queued while a connection idles"
        assert self.pending >= 0
