"""Which idle connections to close (NETWORKING-047).

Theory of operation: eviction only ever picks idle connections (a leased one belongs to its
borrower), and returns them in the order they should be closed:

- IdleTimeout (the HikariCP / Go ``database/sql`` ``SetConnMaxIdleTime`` rule): idle at least
  ``idle_timeout_sec``, oldest use first, never taking the pool below ``min_size``.
- MaxLifetime (``SetConnMaxLifetime``): open at least ``max_lifetime_sec``, whatever
  ``min_size``, so long-lived connections get rebalanced across DNS / load-balancer changes;
  warm-up opens replacements.
- LRU: keep the ``max_idle`` most recently used idle connections, close the rest (least
  recently used first), never below ``min_size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rustyray.pool.config import EvictionPolicy, PoolConfig


@dataclass(frozen=True)
class IdleConnection:
    """What eviction needs to know about one idle connection."""

    conn_id: str
    created_at: float
    last_used_at: float


def select_evictions(idle: Sequence[IdleConnection], total: int, now: float, config: PoolConfig) -> list[str]:
    """Conn ids to close now, in closing order; ``total`` counts every open connection."""
    by_use = sorted(idle, key=lambda c: (c.last_used_at, c.conn_id))
    out: list[str] = []
    match config.eviction_policy:
        case EvictionPolicy.MAX_LIFETIME:
            out = [c.conn_id for c in by_use if now - c.created_at >= config.max_lifetime_sec]
        case EvictionPolicy.IDLE_TIMEOUT:
            for c in by_use:
                if total - len(out) <= config.min_size:
                    break
                if now - c.last_used_at >= config.idle_timeout_sec:
                    out.append(c.conn_id)
        case EvictionPolicy.LRU:
            excess = len(by_use) - config.max_idle
            for c in by_use[: max(0, excess)]:
                if total - len(out) <= config.min_size:
                    break
                out.append(c.conn_id)
    return out
