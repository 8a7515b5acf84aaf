"""Member states, events emitted by ``SwimNode`` and read-only member records."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "MemberInfo",
    "MemberState",
    "NodeFailed",
    "NodeJoined",
    "NodeLeft",
    "NodeRecovered",
    "NodeSuspected",
    "NodeUpdated",
    "SwimEvent",
]


class MemberState(enum.Enum):
    ALIVE = "Alive"
    SUSPECT = "Suspect"
    DEAD = "Dead"
    LEFT = "Left"


@dataclass(frozen=True, slots=True)
class _AliveAnnounced:
    """What the three alive events carry: the member's incarnation, addresses and metadata."""

    node_id: str
    time: float
    incarnation: int = 0
    tcp_address: str = ""
    quic_address: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeJoined(_AliveAnnounced):
    """A member we did not know (or that had left) is alive."""


@dataclass(frozen=True, slots=True)
class NodeRecovered(_AliveAnnounced):
    """A Suspect or Dead member is alive again at a higher incarnation (refutation or restart)."""


@dataclass(frozen=True, slots=True)
class NodeUpdated(_AliveAnnounced):
    """An Alive member announced new addresses or metadata at a higher incarnation."""


@dataclass(frozen=True, slots=True)
class NodeSuspected:
    node_id: str
    time: float
    incarnation: int = 0
    from_id: str = ""
    """The member whose failed probe raised the suspicion."""


@dataclass(frozen=True, slots=True)
class NodeFailed:
    """The member is declared Dead (its suspicion timed out here, or a Dead update arrived)."""

    node_id: str
    time: float
    incarnation: int = 0
    from_id: str = ""


@dataclass(frozen=True, slots=True)
class NodeLeft:
    node_id: str
    time: float
    incarnation: int = 0


SwimEvent = NodeJoined | NodeRecovered | NodeUpdated | NodeSuspected | NodeFailed | NodeLeft


@dataclass(frozen=True, slots=True)
class MemberInfo:
    """Snapshot of one member as seen by a node (``members()``)."""

    node_id: str
    state: MemberState
    incarnation: int
    tcp_address: str
    quic_address: str
    meta: Mapping[str, str]
    suspect_count: int
    """Distinct members whose suspicion of this member we have seen in its current Suspect/Dead spell
    (0 while Alive)."""
    state_change: float
    """``now`` at which the current state was entered."""
