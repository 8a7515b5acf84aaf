"""Exceptions of the Raft package.

    RaftError
    ├── NotLeader            propose/transfer on a node that is not the leader
    ├── ProposalDropped      leader cannot take proposals now (transfer, being removed)
    ├── ConfChangeRejected   conf change invalid, or another one is still uncommitted
    ├── TransferRejected     leadership transfer to a node that is not a member
    ├── RaftUsageError       the Ready/Advance protocol was driven out of order
    └── StorageCorrupt       persisted state cannot be read back

A broken protocol invariant is an ``assert``, never one of these.
"""

from __future__ import annotations


class RaftError(Exception):
    """Base of every Raft error."""


class NotLeader(RaftError):
    """Raised by leader-only operations; carries the leader this node knows, if any."""

    def __init__(self, leader_id: str | None) -> None:
        super().__init__(f"not the leader (known leader: {leader_id})")
        self.leader_id = leader_id


class ProposalDropped(RaftError):
    """The leader cannot accept proposals right now; retry later or elsewhere."""


class ConfChangeRejected(RaftError):
    """A membership change was refused (invalid, or one is already in progress)."""


class TransferRejected(RaftError):
    """Leadership cannot be handed to that node (it is not in the configuration)."""


class RaftUsageError(RaftError):
    """The caller broke the ready()/advance() protocol."""


class StorageCorrupt(RaftError):
    """Persisted Raft state is unreadable beyond a torn tail."""
