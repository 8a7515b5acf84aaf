"""Warm-up planning (NETWORKING-046): how many connections to open to reach a target.

Theory of operation: the target is capped by ``max_size``; connections already open or
being opened count toward it, so repeated warm-up calls never over-open. The adapter opens
``to_open`` connections and reports each with ``NodePool.add_connection`` or
``connect_failed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rustyray.records import record


@dataclass(frozen=True)
class WarmupPlan:
    """The seed's warm-up response plus the work to do."""

    target_connections: int
    """The requested target, capped by max_size."""
    established: int
    """Connections open when the plan was made."""
    to_open: int
    """New connections the adapter should start now."""

    def to_dict(self) -> dict[str, Any]:
        return {"warmup_initiated": True, **record(self, exclude=("to_open",))}


def plan_warmup(established: int, pending: int, target: int, max_size: int) -> WarmupPlan:
    """Connections to open so that open + opening reaches min(target, max_size)."""
    if target < 0:
        raise ValueError("target: must be >= 0")
    capped = min(target, max_size)
    to_open = max(0, capped - established - pending)
    return WarmupPlan(target_connections=capped, established=established, to_open=to_open)
