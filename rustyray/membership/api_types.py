"""The membership API's contract (NETWORKING-025, 031 to 036): request and result dataclasses.

Why dataclasses: the field lists here are the API's schema, in one place a reader (and the facade's
tests) can see, instead of dict literals spread over ``api.py``. ``rustyray.api_binding.invoke`` builds
the requests from the call's keyword arguments (so the field names and defaults are the HTTP routes'
and ``serve_apps.ops``' argument names) and ``to_wire`` turns results into JSON, field by field.
Rows produced by another module (``swim_bridge.member_rows``, the view's and the SWIM core's own
bodies, the event log) stay plain dicts, so that module keeps owning their shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "BootstrapRequest",
    "BootstrapResult",
    "EventsReport",
    "EventsRequest",
    "GossipState",
    "LeaveRequest",
    "LeaveResult",
    "MembersReport",
    "MembershipViewReport",
    "RaftStatusReport",
    "RemoveRequest",
    "RemoveResult",
    "SwimStatus",
]


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class EventsRequest:
    cursor: int = 0
    timeout_s: float = 0.0


@dataclass(frozen=True)
class BootstrapRequest:
    """Checks that need the node's state (already a member, is it an initial node) stay in the facade,
    so that their order, and so which error a doubly wrong request gets, is unchanged."""

    cluster_name: str
    members: dict[str, dict[str, str]]
    replication_factor: int | None = None


@dataclass(frozen=True)
class LeaveRequest:
    reason: str = "requested"


@dataclass(frozen=True)
class RemoveRequest:
    node_id: str


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class MembersReport:
    node: str
    members: list[dict[str, Any]]
    """``swim_bridge.member_rows``: one row per SWIM member, with ``voter``."""


@dataclass(frozen=True)
class MembershipViewReport:
    """NETWORKING-033: the view's own body (``MembershipView.to_dict``) and who observed it."""

    view_version: int
    members: list[dict[str, Any]]
    total_members: int
    observer: str
    cluster_name: str | None
    cluster_id: str | None


@dataclass(frozen=True)
class SwimStatus:
    """NETWORKING-032: the SWIM core's ``status()`` plus this node's protocol settings."""

    protocol_period_ms: int
    suspect_timeout_ms: int
    members: list[dict[str, Any]]
    node: str
    incarnation: int
    awareness: int
    lifeguard: bool
    indirect_checks: int


@dataclass(frozen=True)
class GossipState:
    """NETWORKING-025: the SWIM core's ``gossip_state()``, the node and the protocol's name."""

    members: list[dict[str, Any]]
    gossip_interval_ms: int
    fanout: int
    node: str
    protocol: str


@dataclass(frozen=True)
class RaftStatusReport:
    """NETWORKING-031: the Raft core's status (``RaftStatus.to_dict()``, or the driver's ``NotStarted``
    placeholder before this node has a log; the core decides those keys) and the cluster beside it."""

    status: dict[str, Any]
    node: str
    cluster_name: str | None
    cluster_id: str | None
    election_timeout_ms: list[int]
    """The randomised election timeout's range, [low, high]."""
    configuration_log: list[dict[str, Any]]
    """The last 20 configuration entries, oldest first."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.status, "node": self.node, "cluster_name": self.cluster_name, "cluster_id": self.cluster_id,
                "election_timeout_ms": self.election_timeout_ms, "configuration_log": self.configuration_log}


@dataclass(frozen=True)
class EventsReport:
    events: list[dict[str, Any]]
    cursor: int
    node: str


@dataclass(frozen=True)
class BootstrapResult:
    """NETWORKING-036: the fields of ``formation.bootstrap_report``, which stays the one place that
    decides them (``from_report`` takes its dict as it is)."""

    bootstrapped: bool
    cluster_id: str
    cluster_name: str
    initial_leader: str | None
    members: int
    member_ids: list[str]
    acknowledged: list[str]
    unreached: list[str]
    cluster_record: str
    errors: list[str]

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> BootstrapResult:
        return cls(**report)


@dataclass(frozen=True)
class LeaveResult:
    success: bool
    node_id: str
    reason: str
    removed_from_raft: bool
    cluster_size: int
    left_at: str
    membership_version: int


@dataclass(frozen=True)
class RemoveResult:
    success: bool
    node_id: str
    members: list[str]
