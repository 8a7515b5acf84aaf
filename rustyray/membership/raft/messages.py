"""Raft wire messages and log entries (Ongaro & Ousterhout 2014, figure 2).

Every message carries ``term``, ``from_id`` and ``to_id``. Heartbeats are separate
from AppendEntries, as in etcd-io/raft: a heartbeat carries ``commit =
min(follower match, leader commit)`` so it can never commit past what the follower
is known to hold, and needs no ``prev_log_index`` that in-flight appends could race.
"""

from __future__ import annotations

import enum

import msgspec

from rustyray.protocol.messages import Message


class EntryKind(enum.Enum):
    """What a log entry carries."""

    NORMAL = "normal"
    CONF_CHANGE = "conf_change"
    NOOP = "noop"


class RaftEntry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One log entry; ``index`` starts at 1, ``data`` is opaque to Raft (except conf changes).

    ``gc=False``: an entry holds only ints, an enum and bytes (it can be in no reference
    cycle), and the whole log stays in memory, so the cyclic GC should not walk it.
    """

    term: int
    index: int
    kind: EntryKind = EntryKind.NORMAL
    data: bytes = b""


class RaftConfChange(msgspec.Struct, frozen=True, kw_only=True):
    """Payload of a ``conf_change`` entry: the change and the full member set after it.

    Carrying the whole set keeps "the configuration is the latest conf entry in the
    log" (Raft thesis §4.1) a single decode, without replaying history.
    """

    op: str  # "bootstrap" | "add" | "remove"
    node_id: str
    members: tuple[str, ...]


_conf_encoder = msgspec.msgpack.Encoder()
_conf_decoder = msgspec.msgpack.Decoder(RaftConfChange)


def encode_conf_change(cc: RaftConfChange) -> bytes:
    return _conf_encoder.encode(cc)


def decode_conf_change(data: bytes) -> RaftConfChange:
    return _conf_decoder.decode(data)


class RaftVoteRequest(Message, frozen=True, kw_only=True):
    """RequestVote RPC. With ``pre_vote`` the sender has not bumped its term: ``term`` is
    the term it *would* campaign in. ``transfer`` marks a leadership-transfer election,
    which voters honour even inside their leader lease."""

    term: int
    from_id: str
    to_id: str
    last_log_index: int
    last_log_term: int
    pre_vote: bool = False
    transfer: bool = False


class RaftVoteResponse(Message, frozen=True, kw_only=True):
    term: int
    from_id: str
    to_id: str
    granted: bool
    pre_vote: bool = False


class RaftAppendEntries(Message, frozen=True, kw_only=True):
    """AppendEntries RPC (also used, empty, to probe a follower's log)."""

    term: int
    from_id: str
    to_id: str
    prev_log_index: int
    prev_log_term: int
    entries: tuple[RaftEntry, ...] = ()
    commit: int = 0


class RaftAppendResponse(Message, frozen=True, kw_only=True):
    """Reply to AppendEntries.

    On success ``index`` is the last index the follower now matches. On rejection
    ``index`` echoes the rejected ``prev_log_index`` and (``reject_hint``,
    ``reject_hint_term``) name the follower's last entry that may still match: the
    largest index <= min(prev_log_index, last index) whose term <= the leader's
    ``prev_log_term`` (paper §5.3 "fast backtracking", etcd's findConflictByTerm).
    """

    term: int
    from_id: str
    to_id: str
    success: bool
    index: int
    reject_hint: int = 0
    reject_hint_term: int = 0


class RaftHeartbeat(Message, frozen=True, kw_only=True):
    term: int
    from_id: str
    to_id: str
    commit: int


class RaftHeartbeatResponse(Message, frozen=True, kw_only=True):
    term: int
    from_id: str
    to_id: str


class RaftTimeoutNow(Message, frozen=True, kw_only=True):
    """Leadership transfer (thesis §3.10): "start an election now, skipping pre-vote"."""

    term: int
    from_id: str
    to_id: str


RaftMessage = (
    RaftVoteRequest
    | RaftVoteResponse
    | RaftAppendEntries
    | RaftAppendResponse
    | RaftHeartbeat
    | RaftHeartbeatResponse
    | RaftTimeoutNow
)
"""Any message a RaftNode steps or emits."""
