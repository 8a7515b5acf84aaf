"""Configuration of the membership service: the ``[membership]`` and ``[raft]`` tables.

``[swim]`` maps straight onto ``SwimConfig`` (starting from ``SwimConfig.lan()``, the live
service's preset). ``[raft]`` cannot map onto ``RaftConfig`` directly: a ``RaftConfig``
names one node (``id``) and its defaults depend on the chosen preset, so the table is
``RaftSettings``: a preset plus optional overrides, turned into each node's
``RaftConfig`` by ``for_node``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from rustyray.membership.raft.config import RaftConfig

__all__ = ["RAFT_PRESETS", "MembershipConfig", "RaftSettings"]

RAFT_PRESETS = ("lan", "fast")
"""``RaftConfig.lan`` (50 ms ticks, 500-1000 ms elections, 100 ms heartbeats) and ``RaftConfig.fast`` (15 ms
ticks, 150-300 ms elections)."""


@dataclass(frozen=True)
class MembershipConfig:
    """The ``[membership]`` table."""

    bootstrap_expect: int = 0
    """Members (count) that must see each other before Raft bootstraps on its own (Consul's
    ``bootstrap_expect``); 0 waits for an explicit bootstrap. ``launch`` sets it to ``--nodes``
    when the cluster forms through a discovery backend."""

    def validate(self) -> None:
        if self.bootstrap_expect < 0:
            raise ValueError("bootstrap_expect must be >= 0")


@dataclass(frozen=True)
class RaftSettings:
    """The ``[raft]`` table: a ``RaftConfig`` preset and the fields it overrides (None keeps the preset's)."""

    preset: str = "lan"
    """``"lan"`` or ``"fast"`` (see ``RAFT_PRESETS``)."""
    election_tick: int | None = None
    """Ticks before a follower without a leader starts an election (randomized up to twice that)."""
    heartbeat_tick: int | None = None
    """Ticks between leader heartbeats."""
    pre_vote: bool | None = None
    """Run a pre-vote round before an election (Raft thesis 9.6)."""
    check_quorum: bool | None = None
    """Leader steps down without a quorum's contact within ``election_tick``."""
    max_inflight: int | None = None
    """Unacknowledged append messages per follower."""
    max_entries_per_append: int | None = None
    """Entries at most in one append message."""
    tick_interval: float | None = None
    """Seconds per tick."""

    def for_node(self, node_id: str) -> RaftConfig:
        """The validated ``RaftConfig`` of ``node_id``: the preset with this table's overrides."""
        base = RaftConfig.fast(node_id) if self.preset == "fast" else RaftConfig.lan(node_id)
        overrides = {f.name: getattr(self, f.name) for f in fields(self)
                     if f.name != "preset" and getattr(self, f.name) is not None}
        return replace(base, **overrides).validate()

    def validate(self) -> None:
        if self.preset not in RAFT_PRESETS:
            raise ValueError(f"preset must be one of {', '.join(RAFT_PRESETS)}, got {self.preset!r}")
        self.for_node("validate")
