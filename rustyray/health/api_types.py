"""The health API's contract (NETWORKING-016 to 019): request and result dataclasses.

Why dataclasses: the field lists here are the API's schema, in one place a reader (and the facade's
tests) can see, instead of dict literals spread over ``api.py``. ``rustyray.api_binding.invoke`` builds
the requests from the call's keyword arguments (so field names and defaults are the HTTP routes'
argument names) and ``to_wire`` turns results into JSON, field by field. Results that extend a core
record (``HealthCheckSpec``, ``ClusterHealth``, ``ProbeReport``, ``RecoveryStatus``) are built from that
record's ``to_dict()``, so the core keeps deciding how its values are spelled and rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rustyray.errors import unprocessable
from rustyray.health.recovery import RecoveryStrategy
from rustyray.records import extended

__all__ = [
    "AddCheckRequest",
    "CheckAdded",
    "CheckRemoved",
    "ChecksReport",
    "ClusterHealthReport",
    "HeartbeatStatus",
    "PhiValue",
    "PhiValues",
    "ProbeRequest",
    "ProbeResult",
    "RecoveryReport",
    "RecoveryStatusRequest",
    "RecoveryTriggerRequest",
    "RecoveryTriggered",
    "RemoveCheckRequest",
]


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class AddCheckRequest:
    node_id: str
    check_type: str
    endpoint: str
    interval_ms: float = 5000.0
    timeout_ms: float = 2000.0


@dataclass(frozen=True)
class RemoveCheckRequest:
    check_id: str


@dataclass(frozen=True)
class ProbeRequest:
    node_id: str


@dataclass(frozen=True)
class RecoveryTriggerRequest:
    node_id: str
    strategy: str = "ExponentialBackoff"

    def __post_init__(self) -> None:
        # The strategy was checked before the node, so a request wrong in both still blames ``strategy``.
        try:
            RecoveryStrategy.parse(self.strategy)
        except ValueError as exc:
            raise unprocessable(str(exc), "strategy") from None


@dataclass(frozen=True)
class RecoveryStatusRequest:
    node_id: str


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class HeartbeatStatus:
    """NETWORKING-014: the heartbeat settings and one row per known peer."""

    local_node: str
    interval_ms: int
    timeout_ms: int
    failed_after_ms: int
    peers: list[dict[str, Any]]
    """``PeerHeartbeat.to_dict()`` with the ``heartbeats`` count and whether the peer is ``connected``."""


@dataclass(frozen=True)
class PhiValue:
    node: str
    phi: float
    status: str


@dataclass(frozen=True)
class PhiValues:
    """NETWORKING-015: each peer's suspicion level against the threshold that marks it failed."""

    local_node: str
    phi_values: list[PhiValue]
    threshold: float


@dataclass(frozen=True)
class CheckAdded:
    """NETWORKING-016: the registered ``HealthCheckSpec`` with ``endpoint`` as the caller wrote it."""

    success: bool
    check_id: str
    status: str
    node_id: str
    check_type: str
    endpoint: str
    interval_ms: float
    timeout_ms: float
    resolved_endpoint: str


@dataclass(frozen=True)
class ChecksReport:
    node: str
    checks: list[dict[str, Any]]
    """Each check's spec merged with its latest ``CheckResult`` (the checker's records)."""
    total: int
    custom_checks: list[str]


@dataclass(frozen=True)
class CheckRemoved:
    success: bool
    check_id: str
    removed: bool


@dataclass(frozen=True)
class ClusterHealthReport:
    """NETWORKING-017: ``ClusterHealth.to_dict(detail=True)`` and who aggregated it."""

    overall_health: str
    cluster_score: float
    nodes: list[dict[str, Any]]
    observed_by: str
    phi_threshold: float


@dataclass(frozen=True)
class ProbeResult:
    """NETWORKING-018: the same fields whether the node answered, is this node, or is unreachable."""

    node: str
    liveness: str
    readiness: str
    startup: str
    reason: str
    observed_by: str


@dataclass(frozen=True)
class RecoveryTriggered:
    """NETWORKING-019: ``RecoveryStatus.to_dict()`` (``base``) and the strategy in its canonical spelling."""

    base: dict[str, Any]
    strategy: str

    def to_dict(self) -> dict[str, Any]:
        return extended(self)


@dataclass(frozen=True)
class RecoveryReport:
    """``RecoveryStatus.to_dict()`` (``base``) plus quarantine, connection and the recorded attempts."""

    base: dict[str, Any]
    quarantined: bool
    connected: bool
    recovered_total: int
    quarantines_total: int
    attempts: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return extended(self)
