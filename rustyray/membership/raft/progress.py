"""What a leader knows about each follower's log (etcd-io/raft ``tracker.Progress``).

A follower is in one of two states:

* probe: we do not know where its log diverges; send one append at a time and
  wait for the reply (or the next heartbeat reply) before sending another.
* replicate: its log is known to match up to ``match``; stream appends
  optimistically, at most ``max_inflight`` of them unacknowledged.

``next`` is the next index to send; ``match`` the highest index known replicated.
"""

from __future__ import annotations

import enum
from collections import deque


class ProgressState(enum.Enum):
    PROBE = "Probe"
    REPLICATE = "Replicate"


class Progress:
    __slots__ = ("inflights", "match", "max_inflight", "next", "probe_sent", "recent_active", "state")

    def __init__(self, next_index: int, max_inflight: int) -> None:
        self.match = 0
        self.next = max(1, next_index)
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.recent_active = False
        self.max_inflight = max_inflight
        self.inflights: deque[int] = deque()

    def is_paused(self) -> bool:
        if self.state is ProgressState.PROBE:
            return self.probe_sent
        return len(self.inflights) >= self.max_inflight

    def become_probe(self) -> None:
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.inflights.clear()
        self.next = self.match + 1

    def become_replicate(self) -> None:
        self.state = ProgressState.REPLICATE
        self.probe_sent = False
        self.inflights.clear()
        self.next = self.match + 1

    def sent(self, last_index: int | None) -> None:
        """An append ending at ``last_index`` (None: empty) went out."""
        if last_index is None:
            return
        if self.state is ProgressState.REPLICATE:
            self.next = last_index + 1
            self.inflights.append(last_index)
        else:
            self.probe_sent = True

    def maybe_update(self, index: int) -> bool:
        """The follower acknowledged matching up to ``index``; False if that is old news."""
        updated = False
        if self.match < index:
            self.match = index
            updated = True
            self.probe_sent = False
        self.next = max(self.next, index + 1)
        while self.inflights and self.inflights[0] <= index:
            self.inflights.popleft()
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """The follower rejected an append whose prev index was ``rejected``; move ``next``
        back. Returns False for a stale rejection (one we have already acted on)."""
        if self.state is ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def free_first_inflight(self) -> None:
        """A heartbeat reply proves the follower is reachable: let one more append go so a
        lost one cannot stall a full window forever."""
        if self.inflights:
            self.inflights.popleft()


def quorum(n: int) -> int:
    """Votes needed among n voters: a strict majority."""
    return n // 2 + 1


def committed_index(matches: list[int]) -> int:
    """Largest index replicated on a majority of ``matches`` (one per voter)."""
    assert matches, "no voters"
    ordered = sorted(matches, reverse=True)
    return ordered[quorum(len(ordered)) - 1]
