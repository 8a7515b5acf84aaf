"""Which members to ask for their load this round: a bounded set, not every member (issue 12), sans-I/O.

Theory of operation: polling every live member every round makes each node's idle cost grow
with the cluster (N-1 queries per round, and N-1 answers to give). What a node needs is the
load of the members it actually sends to, plus enough fresh information about the others for
load-aware picks to find a better node, the insight of Mitzenmacher's power of two choices
(2001): a couple of sampled candidates already balance nearly as well as seeing everyone. So
each round ``plan(members, now)`` returns

1. the *recently used* members (``used(node, now)``: a routed send or a selection touched it
   within ``recent_sec``), most recent first, at most ``max_recent`` of them, then
2. ``sample_size`` of the remaining members, those polled longest ago first (never-polled
   ones before all others; ties broken by the seeded ``rng``), so every member's report is at
   most about ``ceil(others / sample_size)`` rounds old even when this node never uses it.

The set is thus at most ``max_recent + sample_size`` whatever the cluster size, it always
holds every recently used member while there are no more than ``max_recent`` of them, and with
the same seed and inputs it is the same set. ``polled(nodes, now)`` records a round's targets;
``forget(node)`` drops a departed member. Time is passed in (monotonic seconds).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from rustyray.loadbalancer.errors import require


@dataclass(frozen=True)
class LoadPollConfig:
    """How many members one load-poll round asks."""

    sample_size: int = 2
    """Members beyond the recently used ones asked each round (the longest-unpolled first); 0 polls
    only the used ones. 2, as in power-of-two choices."""
    recent_sec: float = 30.0
    """Seconds a routed send or a selection keeps a member in the recently used set."""
    max_recent: int = 16
    """Cap on recently used members polled per round (the most recent win)."""

    def validate(self) -> None:
        require(self.sample_size >= 0, "load_poll_sample_size", "must be >= 0")
        require(self.recent_sec > 0, "load_poll_recent_sec", "must be > 0")
        require(self.max_recent >= 0, "load_poll_max_recent", "must be >= 0")


class LoadPollPlanner:
    """Chooses each round's load-poll targets (see the module docstring)."""

    def __init__(self, config: LoadPollConfig | None = None, rng: random.Random | None = None) -> None:
        self.config = config or LoadPollConfig()
        self.config.validate()
        self.rng = rng or random.Random(0)
        self._last_used: dict[str, float] = {}
        self._last_polled: dict[str, float] = {}

    def used(self, node: str, now: float) -> None:
        """``node`` was sent to or selected at ``now``: poll it while it stays recent."""
        self._last_used[node] = max(now, self._last_used.get(node, now))

    def recent(self, now: float) -> list[str]:
        """Members used within ``recent_sec``, most recent first (ties by id)."""
        horizon = now - self.config.recent_sec
        for node in [n for n, t in self._last_used.items() if t < horizon]:
            del self._last_used[node]
        return sorted(self._last_used, key=lambda n: (-self._last_used[n], n))

    def plan(self, members: Iterable[str], now: float) -> list[str]:
        """The members to ask this round: recent ones first, then the sample (no duplicates)."""
        pool = sorted(set(members))
        present = set(pool)
        chosen = [n for n in self.recent(now) if n in present][: self.config.max_recent]
        taken = set(chosen)
        others = [n for n in pool if n not in taken]
        self.rng.shuffle(others)  # the tie-break among equally stale members
        others.sort(key=lambda n: self._last_polled.get(n, float("-inf")))  # stable: keeps the shuffle's order
        return chosen + others[: self.config.sample_size]

    def polled(self, nodes: Iterable[str], now: float) -> None:
        """The round asked ``nodes`` at ``now``."""
        for node in nodes:
            self._last_polled[node] = now

    def forget(self, node: str) -> None:
        """``node`` left the cluster."""
        self._last_used.pop(node, None)
        self._last_polled.pop(node, None)

    def forget_absent(self, members: Iterable[str]) -> None:
        """Drop the bookkeeping of every node not in ``members`` (keeps memory bounded by the membership)."""
        keep = set(members)
        for node in [n for n in {*self._last_used, *self._last_polled} if n not in keep]:
            self.forget(node)
