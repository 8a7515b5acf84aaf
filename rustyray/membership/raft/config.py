"""Configuration of one Raft node.

Time inside the core is counted in *ticks*: the adapter calls ``RaftNode.tick()``
once every ``tick_interval`` seconds, so every timeout below is a number of ticks
and the core never reads a clock. With the default 50 ms tick, ``election_tick=10``
gives randomized election timeouts of 500-1000 ms (``lan()`` heartbeats every 100 ms);
``RaftConfig.fast()`` (15 ms tick) gives the Raft paper's 150-300 ms timeouts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RaftConfig:
    """Static settings of one Raft node (etcd-io/raft ``Config``, trimmed)."""

    id: str
    """This node's id (unique in the cluster, stable across restarts)."""

    election_tick: int = 10
    """Ticks. A follower that hears nothing from a leader for a randomized timeout in
    ``[election_tick, 2*election_tick)`` starts an election. It is also the leader-lease
    length (a node that heard from a leader within it ignores vote requests) and the
    check-quorum period (a leader that did not hear from a quorum within it steps down)."""

    heartbeat_tick: int = 1
    """Ticks between leader heartbeats; must be well below ``election_tick`` (the paper
    wants broadcast time << election timeout)."""

    pre_vote: bool = True
    """Run a pre-vote round (Raft thesis §9.6) before bumping the term, so a node that was
    partitioned cannot disrupt a healthy leader when it rejoins."""

    check_quorum: bool = True
    """Leader steps down when it has not heard from a quorum within ``election_tick``; with
    it, followers honour a leader lease and ignore (pre)votes while their leader is fresh."""

    max_inflight: int = 256
    """Append messages a leader may have unacknowledged per follower while replicating
    optimistically (flow control); reaching it pauses that follower until acks arrive."""

    max_entries_per_append: int = 256
    """Entries at most in one append message (bounds message size and catch-up bursts). With
    group commit a leader sends everything proposed since its last Ready in as few appends as
    this allows (256 rather than 64 gave about a third more commits/s at 1,000-2,000 in
    flight in bench/raft_commits.py)."""

    tick_interval: float = 0.05
    """Seconds per tick. Only the adapter uses it (to schedule ``tick()``); the core counts
    ticks. 50 ms x election_tick 10 => 500-1000 ms election timeouts."""

    @classmethod
    def fast(cls, id: str) -> RaftConfig:
        """Paper-style timeouts: 15 ms ticks, 150-300 ms elections, 45 ms heartbeats."""
        return cls(id=id, election_tick=10, heartbeat_tick=3, tick_interval=0.015)

    @classmethod
    def lan(cls, id: str) -> RaftConfig:
        """What a node runs (``[raft] preset = "lan"``): 50 ms ticks, 500-1000 ms elections, 100 ms heartbeats.

        100 ms is etcd's heartbeat interval: five heartbeats per shortest election timeout, so one lost
        heartbeat never starts an election, at half the idle traffic of one per tick (Raft's heartbeats
        were the largest share of an idle node actor's CPU in bench/scale_out.py's idle phase).
        """
        return cls(id=id, heartbeat_tick=2)

    def validate(self) -> RaftConfig:
        """Raise ValueError naming the first bad field; return self for chaining."""
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("id: must be a non-empty string")
        if self.heartbeat_tick < 1:
            raise ValueError("heartbeat_tick: must be >= 1")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick: must be greater than heartbeat_tick")
        if self.max_inflight < 1:
            raise ValueError("max_inflight: must be >= 1")
        if self.max_entries_per_append < 1:
            raise ValueError("max_entries_per_append: must be >= 1")
        if not self.tick_interval > 0:
            raise ValueError("tick_interval: must be > 0 seconds")
        return self

    def randomized_election_timeout(self, rng: random.Random) -> int:
        """A fresh timeout in ``[election_tick, 2*election_tick)`` ticks (paper §5.2)."""
        return rng.randrange(self.election_tick, 2 * self.election_tick)
