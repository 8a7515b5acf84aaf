"""The strategy interface shared by every load-balancing policy.

Theory of operation: a strategy is a pure decision procedure. The caller hands it the
candidate node ids (already filtered by circuit breakers and rate limits, see
``rustyray.loadbalancer.balancer``), an optional routing key, and a snapshot of per-node
load (``NodeLoad``) taken from the live pools and health reports. It returns a
``Selection`` whose optional fields mirror the seed's NETWORKING-037..040 responses
(``request_count``, ``node_connections``, ``hash_value``, ``load_scores``). Strategies never
read the clock or do I/O; randomised ones take an injected ``random.Random``.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from rustyray.loadbalancer.errors import NoAvailableNodeError


class StrategyName(enum.Enum):
    """Strategy names, spelled as in the seed's REST examples."""

    ROUND_ROBIN = "RoundRobin"
    LEAST_CONNECTIONS = "LeastConnections"
    CONSISTENT_HASH = "ConsistentHash"
    ADAPTIVE = "Adaptive"


class NodeLoad(msgspec.Struct, frozen=True, kw_only=True):
    """One node's load as seen by the balancer at selection time.

    A node missing from the stats mapping is treated as ``NodeLoad()`` (idle, healthy).
    """

    active_connections: int = 0
    """Open connections currently leased from the node's pool (count)."""
    in_flight: int = 0
    """Requests sent and not yet answered (count)."""
    latency_ewma_ms: float = 0.0
    """Exponentially weighted moving average of response latency (milliseconds)."""
    error_rate: float = 0.0
    """Recent fraction of failed requests, 0..1."""
    cpu_load: float = 0.0
    """Reported CPU utilisation, 0..1."""
    mem_load: float = 0.0
    """Reported memory utilisation, 0..1."""

    def __post_init__(self) -> None:
        if self.active_connections < 0 or self.in_flight < 0:
            raise ValueError("active_connections and in_flight must be >= 0")
        if self.latency_ewma_ms < 0:
            raise ValueError("latency_ewma_ms must be >= 0")
        for name in ("error_rate", "cpu_load", "mem_load"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")


IDLE = NodeLoad()


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one selection; optional fields are set only by the strategy that owns them."""

    selected_node: str
    strategy: StrategyName
    request_count: int | None = None
    node_connections: dict[str, int] | None = None
    hash_value: int | None = None
    load_scores: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The seed's JSON response shape: unset optional fields are omitted."""
        out: dict[str, Any] = {"selected_node": self.selected_node, "strategy": self.strategy.value}
        for name in ("request_count", "node_connections", "hash_value", "load_scores"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


class Strategy(ABC):
    """One load-balancing policy. Subclasses set ``name``."""

    name: StrategyName

    @abstractmethod
    def select(self, candidates: Sequence[str], key: str | None, stats: Mapping[str, NodeLoad]) -> Selection:
        """Pick one of ``candidates``; raise NoAvailableNodeError if there is none."""

    def on_complete(self, node: str) -> None:  # noqa: B027 - optional hook, no-op by default
        """Tell the strategy a request it routed to ``node`` finished (used by stateful strategies)."""


def require_candidates(candidates: Sequence[str]) -> None:
    """Raise NoAvailableNodeError for an empty candidate list."""
    if not candidates:
        raise NoAvailableNodeError("no candidate nodes to select from")
