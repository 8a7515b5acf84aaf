"""The peer-event stream behind GraphQL subscriptions and ``/membership/events``, sans-I/O.

Theory of operation. Each peer event (NodeJoined, NodeLeft, NodeSuspected, NodeFailed,
NodeRecovered) gets the next sequence number, starting at 1, and is kept in a ring of the last
``size`` events. A reader remembers the highest ``seq`` it saw (its cursor) and asks for the
events ``after`` it; a cursor at ``seq`` or beyond means nothing new (the adapter may then long-poll).
Readers that fall further behind than the ring reaches lose the oldest events: the stream is
a notification channel, the membership view is the state. Timestamps are wall-clock seconds
given by the caller.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from rustyray.membership.view import iso_utc

__all__ = ["EventLog"]


class EventLog:
    """The last ``size`` peer events seen by ``observer``, numbered from 1."""

    def __init__(self, observer: str, *, size: int = 2000) -> None:
        if size < 1:
            raise ValueError("size must be >= 1")
        self.observer = observer
        self.seq = 0
        """Sequence number of the newest event (0: none yet)."""
        self._events: deque[dict[str, Any]] = deque(maxlen=size)

    def append(self, event_type: str, node_id: str, wall_time: float) -> dict[str, Any]:
        """Record one event (``wall_time``: unix seconds) and return it."""
        self.seq += 1
        event = {"seq": self.seq, "eventType": event_type, "nodeId": node_id, "timestamp": iso_utc(wall_time),
                 "observer": self.observer}
        self._events.append(event)
        return event

    def after(self, cursor: int) -> list[dict[str, Any]]:
        """The kept events with a ``seq`` above ``cursor``, oldest first."""
        return [e for e in self._events if e["seq"] > cursor]
