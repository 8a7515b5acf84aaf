"""Between SWIM's member table and the rest of the node, sans-I/O.

Theory of operation. The SWIM core (``swim/core.py``, SWIM 2002 with Lifeguard 2018) knows members
by id with a state and an incarnation. Around it, the node's peer table knows peers by id with
their addresses, the peer-event stream knows event names, anti-entropy (autodiscovery) trades
``(incarnation, status)`` pairs, and the API and the metrics want rows and counts. This module is
those translations, so the adapters only carry out what they return:

* ``peer_update``: a member that joined, recovered or announced new addresses is a peer to learn
  (the node dials it and keeps its address); one that left gracefully is a peer to forget. A Dead
  member is kept: the node keeps dialling it, so that a healed partition merges by itself.
* ``joins_through``: a peer the node learnt some other way (discovery, an inbound hello) that SWIM
  does not know yet is a member to join through.
* ``EVENT_NAMES``: the peer-event type of each SWIM event (``NodeUpdated`` has none).
* ``repair_update``: an entry repaired by anti-entropy becomes the SWIM update that claims it; the
  core's own precedence rules (incarnations) decide whether it wins.
* ``live_members``, ``state_counts``, ``entries``, ``member_rows``: read-outs of ``members()``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rustyray.membership.swim.events import (
    MemberInfo,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    NodeSuspected,
    NodeUpdated,
)
from rustyray.membership.swim.messages import SwimAlive, SwimDead, SwimLeft, SwimSuspect

__all__ = [
    "EVENT_NAMES",
    "ForgetPeer",
    "LearnPeer",
    "entries",
    "joins_through",
    "live_members",
    "member_rows",
    "peer_update",
    "repair_update",
    "state_counts",
]

EVENT_NAMES = {NodeJoined: "NodeJoined", NodeRecovered: "NodeRecovered", NodeSuspected: "NodeSuspected",
               NodeFailed: "NodeFailed", NodeLeft: "NodeLeft"}
"""SWIM event class -> ``eventType`` of the peer-event stream."""

SwimUpdate = SwimAlive | SwimSuspect | SwimDead | SwimLeft


@dataclass(frozen=True)
class LearnPeer:
    """Action: learn (and so dial) this peer at these addresses."""

    node_id: str
    tcp_address: str
    quic_address: str
    incarnation: int


@dataclass(frozen=True)
class ForgetPeer:
    """Action: drop this peer from the node's peer table."""

    node_id: str


def peer_update(event: Any) -> LearnPeer | ForgetPeer | None:
    """What one SWIM event changes in the node's peer table."""
    if isinstance(event, NodeJoined | NodeRecovered | NodeUpdated) and event.tcp_address:
        return LearnPeer(event.node_id, event.tcp_address, event.quic_address, event.incarnation)
    if isinstance(event, NodeLeft):
        return ForgetPeer(event.node_id)
    return None


def joins_through(event: str, member: MemberInfo | None) -> bool:
    """A peer event (``learned``, ``connected``, ...) about a peer SWIM holds as ``member``: join through it?"""
    return event in ("learned", "connected") and member is None


def repair_update(own_id: str, node_id: str, incarnation: int, status: str,
                  member: MemberInfo | None) -> SwimUpdate | None:
    """The SWIM update that claims anti-entropy's ``(node_id, incarnation, status)``; ``member`` is SWIM's
    record of ``node_id``. None: nothing to claim (this node itself, an unknown status, or Alive for a
    member whose addresses SWIM does not know)."""
    if node_id == own_id:
        return None
    if status == "Alive":
        if member is None:
            return None
        return SwimAlive(node_id=node_id, incarnation=incarnation, tcp_address=member.tcp_address,
                         quic_address=member.quic_address)
    if status == "Suspect":
        return SwimSuspect(node_id=node_id, incarnation=incarnation, from_id=own_id)
    if status == "Dead":
        return SwimDead(node_id=node_id, incarnation=incarnation, from_id=own_id)
    if status == "Left":
        return SwimLeft(node_id=node_id, incarnation=incarnation)
    return None


def live_members(members: Iterable[MemberInfo]) -> list[str]:
    """Ids of the members that are Alive or Suspect (not yet declared Dead), sorted."""
    return sorted(m.node_id for m in members if m.state in (MemberState.ALIVE, MemberState.SUSPECT))


def state_counts(members: Iterable[MemberInfo]) -> dict[str, int]:
    """Members per state, every state listed (the metrics' ``rustyray_members``)."""
    counts = dict.fromkeys((s.value for s in MemberState), 0)
    for member in members:
        counts[member.state.value] += 1
    return counts


def entries(members: Iterable[MemberInfo]) -> dict[str, tuple[int, str]]:
    """SWIM state as ``(incarnation, status)`` per node, for anti-entropy."""
    return {m.node_id: (m.incarnation, m.state.value) for m in members}


def member_rows(members: Iterable[MemberInfo], voters: Iterable[str]) -> list[dict[str, Any]]:
    """The API's member rows; ``voter``: in the Raft configuration ``voters``."""
    raft_members = set(voters)
    return [{"node": m.node_id, "state": m.state.value, "incarnation": m.incarnation, "address": m.tcp_address,
             "quic_address": m.quic_address, "suspect_count": m.suspect_count, "voter": m.node_id in raft_members}
            for m in members]
