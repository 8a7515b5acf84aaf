"""Value types a RaftNode hands to its driver: roles, hard/soft state, Ready, status."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import msgspec

from rustyray.membership.raft.messages import RaftEntry, RaftMessage


class Role(enum.Enum):
    FOLLOWER = "Follower"
    PRE_CANDIDATE = "PreCandidate"
    CANDIDATE = "Candidate"
    LEADER = "Leader"


class HardState(msgspec.Struct, frozen=True, kw_only=True):
    """What must be durable before any message that depends on it is sent (paper fig. 2:
    currentTerm, votedFor; plus commit so a restart can re-apply without a new leader)."""

    term: int = 0
    vote: str | None = None
    commit: int = 0


@dataclass(frozen=True)
class StorageState:
    """What ``Storage.load()`` returns and ``RaftNode.restore`` needs."""

    hard_state: HardState
    entries: tuple[RaftEntry, ...]


@dataclass(frozen=True)
class SoftState:
    """Volatile state worth telling the driver about (it need not be persisted)."""

    role: Role
    leader: str | None


@dataclass(frozen=True)
class Ready:
    """Work for the driver, processed in this order (as etcd-io/raft documents it):

    1. Persist ``entries`` (append; an entry whose index is already stored replaces it
       and everything after it), then ``hard_state`` if not None, and fsync.
    2. Send ``messages`` (only now: votes and append acks promise durability).
    3. Apply ``committed_entries`` to the state machine, in order.
    4. Call ``RaftNode.advance(ready)``.

    ``soft_state`` (role, leader) is informational and is set only when it changed.

    ``messages[:early]`` may instead be sent *before* step 1 (Raft thesis §10.2.1, etcd's
    leader messages): they are a leader's AppendEntries and heartbeats, which promise
    nothing about its own disk (its copy counts toward commit only after ``advance``), so
    the followers' fsync overlaps the leader's. Sending everything after step 1 is correct too.
    """

    hard_state: HardState | None
    soft_state: SoftState | None
    entries: tuple[RaftEntry, ...]
    messages: tuple[RaftMessage, ...]
    committed_entries: tuple[RaftEntry, ...]
    early: int = 0


@dataclass(frozen=True)
class RaftStatus(Mapping[str, Any]):
    """A snapshot of a node, e.g. for ``GET .../membership/raft/status``.

    Attribute access gives typed values; as a Mapping (``dict(status)``) it yields the
    JSON shape of NETWORKING-031 (``state`` is the role's spelling, e.g. "Leader").
    """

    id: str
    role: Role
    term: int
    leader: str | None
    members: list[str]
    commit_index: int
    applied_index: int
    last_index: int
    vote: str | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["role"] = self.role.value
        out["state"] = self.role.value
        out["members"] = list(self.members)
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())
