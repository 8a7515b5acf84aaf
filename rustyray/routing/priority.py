"""Message priorities and the bounded per-peer outbox.

Theory of operation: strict-priority queueing with FIFO order inside each class
(the "priority queueing" discipline of RFC 2475 / DiffServ's expedited
forwarding, without the weighted-fair share): ``pop`` always serves the highest
non-empty class, so a Critical ConfigUpdate overtakes a backlog of Low gossip.
The outbox is bounded: a full outbox rejects with ``OutboxFullError`` instead of
growing, which pushes back on the producer (a slow peer must not exhaust the
sender's memory). Strict priority can starve Low traffic under sustained higher
load; that is intended: Low is for traffic that may be shed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from enum import Enum
from typing import Generic, TypeVar

from rustyray.routing.errors import OutboxFullError

T = TypeVar("T")


class Priority(Enum):
    """Message priority; members compare by urgency (``LOW < CRITICAL``)."""

    LOW = "Low"
    NORMAL = "Normal"
    HIGH = "High"
    CRITICAL = "Critical"

    @property
    def rank(self) -> int:
        """0 for Low .. 3 for Critical."""
        return _RANK[self]

    @classmethod
    def parse(cls, value: str | Priority) -> Priority:
        """Accept the seed spelling case-insensitively ("high", "HIGH", "High")."""
        if isinstance(value, Priority):
            return value
        found = _BY_LOWER.get(str(value).lower())
        if found is None:
            raise ValueError(f"priority must be one of {[p.value for p in cls]}, got {value!r}")
        return found

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Priority):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Priority):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Priority):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Priority):
            return NotImplemented
        return self.rank >= other.rank


_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}
_BY_LOWER = {p.value.lower(): p for p in Priority}
_HIGHEST_FIRST = sorted(Priority, key=lambda p: -p.rank)


class PriorityOutbox(Generic[T]):
    """Bounded queue of outbound items for one peer; higher priority first, FIFO within one."""

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self._queues: dict[Priority, deque[T]] = {p: deque() for p in Priority}
        self._size = 0
        self.pushed = 0
        self.rejected = 0

    def push(self, item: T, priority: Priority | str = Priority.NORMAL) -> None:
        """Queue ``item``; raises ``OutboxFullError`` when ``max_size`` items are already queued."""
        prio = Priority.parse(priority)
        if self._size >= self.max_size:
            self.rejected += 1
            raise OutboxFullError(self.max_size, prio.value)
        self._queues[prio].append(item)
        self._size += 1
        self.pushed += 1

    def pop(self) -> tuple[Priority, T]:
        """Remove and return the most urgent, oldest item; IndexError when empty."""
        for prio in _HIGHEST_FIRST:
            queue = self._queues[prio]
            if queue:
                self._size -= 1
                return prio, queue.popleft()
        raise IndexError("pop from an empty outbox")

    def peek(self) -> tuple[Priority, T]:
        """The item ``pop`` would return, without removing it; IndexError when empty."""
        for prio in _HIGHEST_FIRST:
            queue = self._queues[prio]
            if queue:
                return prio, queue[0]
        raise IndexError("peek into an empty outbox")

    def drain(self, limit: int | None = None) -> list[tuple[Priority, T]]:
        """Pop up to ``limit`` items (all when None) in service order, e.g. to fill one write batch."""
        out: list[tuple[Priority, T]] = []
        while self._size and (limit is None or len(out) < limit):
            out.append(self.pop())
        return out

    def counts(self) -> dict[str, int]:
        """Queued items per priority, keyed by the seed spelling."""
        return {p.value: len(self._queues[p]) for p in Priority}

    def clear(self) -> list[tuple[Priority, T]]:
        """Drop everything (peer gone) and return what was queued, in service order."""
        return self.drain()

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[tuple[Priority, T]]:
        """Iterate in service order without removing anything."""
        for prio in _HIGHEST_FIRST:
            for item in self._queues[prio]:
                yield prio, item


class PeerOutboxes(Generic[T]):
    """One ``PriorityOutbox`` per peer, created on first use, all with the same bound."""

    def __init__(self, max_size: int) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self._boxes: dict[str, PriorityOutbox[T]] = {}

    def for_peer(self, peer: str) -> PriorityOutbox[T]:
        box = self._boxes.get(peer)
        if box is None:
            box = self._boxes[peer] = PriorityOutbox(self.max_size)
        return box

    def push(self, peer: str, item: T, priority: Priority | str = Priority.NORMAL) -> None:
        self.for_peer(peer).push(item, priority)

    def drop_peer(self, peer: str) -> list[tuple[Priority, T]]:
        """Forget a departed peer's outbox and return what it still held."""
        box = self._boxes.pop(peer, None)
        return box.clear() if box is not None else []

    def peers_with_backlog(self) -> list[str]:
        return [peer for peer, box in self._boxes.items() if box]

    def __len__(self) -> int:
        return sum(len(box) for box in self._boxes.values())


def frame_flags(priority: Priority | str) -> int:
    """Frame header flags carrying ``priority`` (its rank in bits 6-7); an unknown spelling counts as Normal."""
    try:
        rank = Priority.parse(priority).rank
    except ValueError:
        rank = Priority.NORMAL.rank
    return rank << 6
