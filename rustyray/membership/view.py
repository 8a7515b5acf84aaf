"""Versioned membership view fed by SWIM events (seed NETWORKING-033/034/035).

Theory of operation: SWIM (``rustyray.membership.swim``) is the source of
truth about who is alive; this view folds its events into the table the
management API shows. Every change bumps ``version`` by one and is appended
to a bounded change log, so a reader that remembers the version it last saw
can ask for ``changes_since(version)`` (GraphQL subscriptions, long polls)
and registered listeners are called synchronously with each change. Events
that change nothing (a repeated suspicion, a stale update) do not bump the
version. ``joined_at`` is a wall-clock time given by the caller, because the
SWIM core only knows monotonic time; the view itself reads no clock.

Status spelling follows the seed: ``Active`` for an alive member, then
``Suspect``, ``Dead`` and ``Left``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from rustyray.membership.swim.events import (
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    NodeSuspected,
    NodeUpdated,
)
from rustyray.records import record

__all__ = ["MembershipView", "ViewChange", "ViewMember", "ViewStatus", "iso_utc"]


class ViewStatus(enum.Enum):
    ACTIVE = "Active"
    SUSPECT = "Suspect"
    DEAD = "Dead"
    LEFT = "Left"


def iso_utc(ts: float) -> str:
    """Unix seconds -> ``2025-12-11T10:00:00Z`` (the seed's timestamp format)."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ViewMember:
    id: str
    status: ViewStatus
    joined_at: float
    """Wall-clock unix seconds at which this member (last) joined, as supplied to ``apply``."""
    incarnation: int = 0
    tcp_address: str = ""
    quic_address: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)
    updated_at: float = 0.0
    """Wall-clock unix seconds of the last change."""

    def to_dict(self) -> dict[str, Any]:
        return record(self, exclude=("meta", "updated_at"), joined_at=iso_utc(self.joined_at))


@dataclass(frozen=True, slots=True)
class ViewChange:
    """One entry of the change log: the member after the change and the version it produced."""

    version: int
    kind: str
    """``joined``, ``recovered``, ``updated``, ``suspected``, ``failed``, ``left`` or ``removed``."""
    member: ViewMember
    wall_time: float


Listener = Callable[[ViewChange], None]

_KIND = {
    NodeJoined: ("joined", ViewStatus.ACTIVE),
    NodeRecovered: ("recovered", ViewStatus.ACTIVE),
    NodeUpdated: ("updated", ViewStatus.ACTIVE),
    NodeSuspected: ("suspected", ViewStatus.SUSPECT),
    NodeFailed: ("failed", ViewStatus.DEAD),
    NodeLeft: ("left", ViewStatus.LEFT),
}


class MembershipView:
    """Members by id with a monotonically increasing ``version`` and a change log."""

    def __init__(self, *, log_size: int = 1024, version: int = 0) -> None:
        if log_size < 1:
            raise ValueError("log_size must be >= 1")
        self._members: dict[str, ViewMember] = {}
        self._log: deque[ViewChange] = deque(maxlen=log_size)
        self._listeners: list[Listener] = []
        self.version = version

    # -- reading -----------------------------------------------------------------------------------

    def get(self, node_id: str) -> ViewMember | None:
        return self._members.get(node_id)

    def members(self, *, include_departed: bool = True) -> list[ViewMember]:
        """Members sorted by id; ``include_departed=False`` hides Dead and Left ones."""
        out = sorted(self._members.values(), key=lambda m: m.id)
        if not include_departed:
            out = [m for m in out if m.status in (ViewStatus.ACTIVE, ViewStatus.SUSPECT)]
        return out

    @property
    def size(self) -> int:
        """Members that are Active or Suspect (the seed's ``cluster_size``)."""
        return sum(1 for m in self._members.values() if m.status in (ViewStatus.ACTIVE, ViewStatus.SUSPECT))

    def to_dict(self, *, include_departed: bool = False) -> dict[str, Any]:
        """NETWORKING-033 body: ``view_version``, ``members``, ``total_members``."""
        ms = self.members(include_departed=include_departed)
        return {"view_version": self.version, "members": [m.to_dict() for m in ms], "total_members": len(ms)}

    def changes_since(self, version: int) -> list[ViewChange] | None:
        """Changes with a version above ``version``, oldest first; None if the log no longer reaches
        back that far (the reader must re-read the whole view)."""
        if version >= self.version:
            return []
        log = self._log
        if not log or log[0].version > version + 1:
            return None
        return [c for c in log if c.version > version]

    # -- listening ---------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(change)`` after every change; returns an unsubscribe function.
        Listeners run synchronously and should not raise (an exception propagates to ``apply``'s
        caller after the view is already updated)."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    # -- writing -----------------------------------------------------------------------------------

    def add_local(
        self, node_id: str, wall_time: float, *, incarnation: int = 0, tcp_address: str = "",
        quic_address: str = "", meta: Mapping[str, str] | None = None,
    ) -> ViewChange | None:
        """Record the local node itself (SWIM emits no event about its own node)."""
        ev = NodeJoined(node_id, 0.0, incarnation, tcp_address, quic_address, dict(meta or {}))
        return self.apply(ev, wall_time)

    def apply(self, event: Any, wall_time: float) -> ViewChange | None:
        """Fold one SWIM event in; returns the change, or None if it changed nothing."""
        try:
            kind, status = _KIND[type(event)]
        except KeyError:
            raise TypeError(f"not a membership event: {type(event).__name__}") from None
        nid = event.node_id
        old = self._members.get(nid)
        if status is ViewStatus.ACTIVE:
            addr = {"tcp_address": event.tcp_address, "quic_address": event.quic_address,
                    "meta": dict(event.meta)}
            if old is None or old.status is ViewStatus.LEFT:
                kind = "joined"
                new = ViewMember(nid, status, wall_time, event.incarnation, updated_at=wall_time, **addr)
            else:
                new = replace(old, status=status, incarnation=event.incarnation, updated_at=wall_time, **addr)
        else:
            if old is None:
                return None  # we never saw it alive; nothing to show
            new = replace(old, status=status, incarnation=max(old.incarnation, event.incarnation),
                          updated_at=wall_time)
        if old is not None and replace(old, updated_at=0.0, joined_at=0.0) == replace(
            new, updated_at=0.0, joined_at=0.0
        ):
            return None
        self._members[nid] = new
        return self._record(kind, new, wall_time)

    def remove(self, node_id: str, wall_time: float) -> ViewChange | None:
        """Forget a member (e.g. a Dead/Left one after a reap interval)."""
        old = self._members.pop(node_id, None)
        if old is None:
            return None
        return self._record("removed", old, wall_time)

    def _record(self, kind: str, member: ViewMember, wall_time: float) -> ViewChange:
        self.version += 1
        change = ViewChange(self.version, kind, member, wall_time)
        self._log.append(change)
        for listener in list(self._listeners):
            listener(change)
        return change
