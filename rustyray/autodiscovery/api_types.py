"""The autodiscovery API's contract (NETWORKING-026 to 030): request and result dataclasses.

Why dataclasses: the field lists here are the API's schema, in one place a reader (and the facade's
tests) can see, instead of dict literals spread over ``api.py`` and the sans-I/O cores it reads.
``rustyray.api_binding.invoke`` builds the requests from the call's keyword arguments and ``to_wire``
turns results into JSON, field by field. The checks stay in the operations: each is ordered after a
service-state check (is Serf enabled, is the address allowed) whose answer must win, as it did before.
Rows a core produces whole (candidates, members, events) stay dicts: their shape is that core's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rustyray.records import extended

__all__ = [
    "AntiEntropyStatus",
    "AntiEntropySyncReport",
    "AntiEntropySyncRequest",
    "BeaconDisabled",
    "BeaconStatus",
    "BroadcastAnnounceRequest",
    "BroadcastAnnounced",
    "BroadcastCandidates",
    "MdnsDiscovered",
    "SerfClocks",
    "SerfEventRequest",
    "SerfEventSent",
    "SerfEvents",
    "SerfEventsRequest",
    "SerfJoinRequest",
    "SerfJoined",
    "SerfMembers",
    "SerfQueryRequest",
    "SerfQueryResponse",
    "SerfQueryResult",
    "ViewEntry",
]


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class BroadcastAnnounceRequest:
    broadcast_address: str
    port: int
    wait_ms: int | None = None


@dataclass(frozen=True)
class SerfEventRequest:
    name: str
    payload: str = ""
    coalesce: bool = True


@dataclass(frozen=True)
class SerfEventsRequest:
    limit: int = 100


@dataclass(frozen=True)
class SerfQueryRequest:
    name: str
    payload: str = ""
    timeout_ms: int | None = None
    filter_nodes: list[str] | None = None
    """Only these members answer (Serf's ``-node``)."""
    filter_tags: dict[str, str] | None = None
    """Tag name -> regexp; only members whose tags match all answer (Serf's ``-tag``)."""
    relay_factor: int = 0
    """Agents also relay their answers through this many other members (Serf's ``-relay-factor``, 0..5)."""


@dataclass(frozen=True)
class AntiEntropySyncRequest:
    target_node: str


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class MdnsDiscovered:
    """NETWORKING-026. ``discovered_nodes`` are the mDNS adapter's rows."""

    node: str
    enabled: bool
    registered: bool
    service_type: str
    interfaces: list[str]
    cluster_tag: str
    discovered_nodes: list[dict[str, Any]]
    total: int
    peers_learned: int


@dataclass(frozen=True)
class BroadcastAnnounced:
    """NETWORKING-027: one announce round (the first two fields are the broadcast core's result)."""

    broadcast_sent: bool
    listeners_notified: int
    node: str
    broadcast_address: str
    port: int
    wait_ms: int
    candidates: list[str]
    peers_learned: int


@dataclass(frozen=True)
class BroadcastCandidates:
    """``candidates`` and ``stats`` are the broadcast core's."""

    node: str
    candidates: list[dict[str, Any]]
    stats: dict[str, int]
    peers_learned: int


@dataclass(frozen=True)
class BeaconDisabled:
    """NETWORKING-028 on a node without beacons: a 200 that says how to enable them, not an error,
    because the status page is read on every node whatever it runs."""

    node: str
    enabled: bool
    how_to_enable: str
    message: str


@dataclass(frozen=True)
class BeaconStatus:
    """NETWORKING-028 with beacons on; ``candidates`` are the beacon core's rows."""

    node: str
    enabled: bool
    interval_ms: int
    ttl_ms: int
    beacons_sent: int
    beacons_received: int
    candidates: list[dict[str, Any]]
    candidates_expired: int
    dropped: int
    peers_learned: int


@dataclass(frozen=True)
class SerfClocks:
    member: int
    event: int
    query: int


@dataclass(frozen=True)
class SerfMembers:
    """NETWORKING-029. A member row has ``incarnation`` only when it is known, so rows stay dicts."""

    node: str
    members: list[dict[str, Any]]
    total: int
    alive: int
    clocks: SerfClocks


@dataclass(frozen=True)
class SerfJoinRequest:
    address: str  # host:port of a Serf agent's memberlist port


@dataclass(frozen=True)
class SerfJoined:
    joined: bool
    node: str
    address: str
    members_learned: int
    members: list[dict[str, Any]]  # the memberlist member's view after the push-pull


@dataclass(frozen=True)
class SerfEventSent:
    event_sent: bool
    ltime: int
    node: str
    name: str
    coalesce: bool
    gossiped_to: int


@dataclass(frozen=True)
class SerfEvents:
    node: str
    events: list[dict[str, Any]]
    total_delivered: int
    event_clock: int
    stats: dict[str, int]


@dataclass(frozen=True)
class SerfQueryResponse:
    node: str
    payload: str


@dataclass(frozen=True)
class SerfQueryResult:
    """The first four fields are the query state's result (``QueryState.result``)."""

    query_id: int
    responses: list[SerfQueryResponse]
    acks: int
    timed_out: bool
    node: str
    name: str
    responses_received: int
    expected: list[str]
    timeout_ms: int
    duration_ms: float


@dataclass(frozen=True)
class AntiEntropySyncReport:
    """NETWORKING-030: the session's ``SyncReport`` as the adapter reports it (``base``: its fields and
    ``sync_initiated``), then where and how much."""

    base: dict[str, Any]
    node: str
    target_node: str
    entries: int
    root: str
    duration_ms: float

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> AntiEntropySyncReport:
        """Split the core's report (``AntiEntropy.finish``) into its session part and where/how much."""
        own = ("node", "target_node", "entries", "root", "duration_ms")
        return cls({k: v for k, v in report.items() if k not in own}, *(report[k] for k in own))

    def to_dict(self) -> dict[str, Any]:
        return extended(self)


@dataclass(frozen=True)
class ViewEntry:
    incarnation: int
    status: str


@dataclass(frozen=True)
class AntiEntropyStatus:
    """``last_sync`` is the last ``AntiEntropySyncReport`` with its wall-clock ``at``, or None."""

    node: str
    entries: int
    root: str
    view: dict[str, ViewEntry]
    source: str
    interval_s: float
    syncs_completed: int
    syncs_failed: int
    syncs_answered: int
    entries_repaired: int
    last_sync: dict[str, Any] | None
