"""The network manager API's contract (NETWORKING-055 to 058): request and result dataclasses.

See ``rustyray.api_binding`` for how requests are built and results serialised. ``StatsReport``
flattens the node's live counters next to its id, as the seed's ``/stats`` shows them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rustyray.api_base import omit_none

__all__ = [
    "BroadcastRequest",
    "BroadcastResult",
    "ComponentStatus",
    "InitializeReport",
    "MetricSamples",
    "SendRequest",
    "SendResult",
    "StatsReport",
]


@dataclass(frozen=True)
class SendRequest:
    target_node: str
    message_type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class BroadcastRequest:
    message_type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    status: str  # healthy | degraded | failed | unavailable
    detail: str


@dataclass(frozen=True)
class InitializeReport:
    initialized: bool
    already_initialized: bool
    node: str
    initialized_at: float | None
    components: list[ComponentStatus]


@dataclass(frozen=True)
class StatsReport:
    node: str
    stats: dict[str, Any]  # Mesh.stats_snapshot(): the live counters

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, **self.stats}


@dataclass(frozen=True)
class MetricSamples:
    node: str
    stats: dict[str, Any]
    samples: list[dict[str, Any]]


@dataclass(frozen=True)
class SendResult:
    sent: bool
    message_id: Any
    latency_ms: float | None
    target_node: str
    error: str | None = None  # present only when the send failed

    def to_dict(self) -> dict[str, Any]:
        return omit_none(self, "error")


@dataclass(frozen=True)
class BroadcastResult:
    sent_to: Any
    failed: Any
    broadcast_time_ms: float
    nodes_reached: Any
    total_nodes: int
