"""Anti-entropy on a RustyRay node: sessions over node messages, the responder table, rounds (NETWORKING-030).

Theory of operation
-------------------
``AntiEntropySession`` (``anti_entropy.py``) is one side of one Merkle-tree exchange (Demers
et al., PODC 1987; Merkle 1987). ``AntiEntropyNode`` is the node-side bookkeeping around it,
still sans-I/O; the adapter moves the messages, reads the clock and applies merged entries to
the membership view.

* Wire. Each byte string of an exchange travels from the initiator in ``AESyncStep`` (with the
  session id) and comes back in ``AESyncStepReply``: node messages over the node's own mTLS
  connections, never a new socket.
* Initiator. ``begin`` snapshots this node's view into a ``MerkleTree``; ``InitiatorSync.step``
  turns each reply into the next request until the session is over; ``finish`` reports and
  hands back the entries the peer brought.
* Responder. One session per (peer, session id), kept across the exchange so that every merged
  entry is applied once; at most ``MAX_RESPONDERS`` are held, least recently used dropped
  first. A protocol error drops the session and answers ``ErrorReply(code="anti_entropy_protocol")``;
  a node with anti-entropy disabled answers ``ErrorReply(code="disabled")``.
* Rounds. Every ``interval_s * U(0.8, 1.2)`` seconds (the jitter keeps nodes out of lockstep)
  with one random connected live peer; a failed round is counted and retried at the next one.
* Source. The view synchronised is, in order: a custom source set by tests or embedders, the
  membership service when it offers ``entries()`` and ``apply_entries()``, else a view of the
  peer table. Statuses read from a source may be ``EntryStatus``es, their values or lower case.
"""

from __future__ import annotations

import collections
import contextlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rustyray.autodiscovery.anti_entropy import AEEntry, AntiEntropyConfig, AntiEntropySession, EntryStatus, MerkleTree
from rustyray.autodiscovery.errors import AutodiscoveryError
from rustyray.protocol.control import ErrorReply
from rustyray.protocol.messages import Message

__all__ = ["AESyncStep", "AESyncStepReply", "AntiEntropyNode", "InitiatorSync", "entry_status", "pick_source"]

MAX_RESPONDERS = 64
"""Responder sessions held at once (one per peer and session id)."""


class AESyncStep(Message):
    """One anti-entropy message (an encoded AE* struct) from the initiator of a sync."""

    session: int
    data: bytes


class AESyncStepReply(Message):
    """The responder's answer to one ``AESyncStep``."""

    data: bytes


def entry_status(value: Any) -> EntryStatus:
    """An ``EntryStatus`` from a membership source's spelling (the enum, its value, lower case)."""
    raw = getattr(value, "value", value)
    for cand in (raw, str(raw).capitalize()):
        with contextlib.suppress(ValueError):
            return EntryStatus(cand)
    raise ValueError(f"unknown membership status {value!r}")


def _offers_entries(obj: Any) -> bool:
    return callable(getattr(obj, "entries", None)) and callable(getattr(obj, "apply_entries", None))


def pick_source(custom: Any | None, membership: Any | None, peers: Any) -> tuple[str, Any]:
    """Which membership view anti-entropy synchronises, and its name for the status API."""
    if custom is not None:
        return "custom", custom
    if _offers_entries(membership):
        return "membership", membership
    return "peers", peers


@dataclass
class InitiatorSync:
    """One sync this node started with ``target``."""

    target: str
    tree: MerkleTree
    session: AntiEntropySession
    started: float
    entries: int

    def start(self) -> AESyncStep:
        return AESyncStep(session=self.session.session_id, data=self.session.start())

    def step(self, reply: Message) -> AESyncStep | None:
        """The next request after ``reply``, or None when the exchange is over."""
        if not isinstance(reply, AESyncStepReply):
            raise AutodiscoveryError(f"unexpected reply {type(reply).__name__}")
        data = self.session.receive(reply.data)
        return None if data is None else AESyncStep(session=self.session.session_id, data=data)


class AntiEntropyNode:
    """Anti-entropy sessions, statistics and rounds of one node (see the module docstring)."""

    def __init__(self, config: AntiEntropyConfig, *, node_id: str, enabled: bool, interval_s: float,
                 rng: random.Random) -> None:
        """``interval_s`` is shown by the status API as configured (an int stays an int)."""
        self.config = config
        self.node_id = node_id
        self.enabled = enabled
        self.interval_s = interval_s
        self.rng = rng
        self.stats = {"syncs_completed": 0, "syncs_failed": 0, "syncs_answered": 0, "entries_repaired": 0}
        self.last: dict[str, Any] | None = None
        self._responders: collections.OrderedDict[tuple[str | None, int], tuple[AntiEntropySession, int]] = (
            collections.OrderedDict())

    def tree(self, entries: Mapping[str, tuple[Any, Any]]) -> MerkleTree:
        """A Merkle tree of ``node_id -> (incarnation, status)`` as a membership source gives it."""
        tree = MerkleTree(self.config)
        for nid, (inc, st) in entries.items():
            tree.set(nid, int(inc), entry_status(st))
        return tree

    def _repaired(self, entries: list[AEEntry]) -> list[AEEntry]:
        self.stats["entries_repaired"] += len(entries)
        return entries

    # ------------------------------------------------------------ responder
    def answer(self, peer: str | None, msg: AESyncStep,
               tree: Callable[[], MerkleTree]) -> tuple[Message, list[AEEntry]]:
        """The reply to one step from ``peer``, and the entries it brought that this node must apply.
        ``tree`` builds the current view; it is called only when a session starts."""
        if not self.enabled:
            return ErrorReply(code="disabled", message=f"anti-entropy is disabled on {self.node_id}"), []
        key = (peer, msg.session)
        held = self._responders.get(key)
        if held is None:
            held = (AntiEntropySession(tree(), initiator=False, session_id=msg.session), 0)
            self.stats["syncs_answered"] += 1
        session, applied = held
        try:
            reply = session.receive(msg.data)
        except AutodiscoveryError as exc:
            self._responders.pop(key, None)
            return ErrorReply(code="anti_entropy_protocol", message=str(exc)), []
        self._responders[key] = (session, len(session.applied))
        self._responders.move_to_end(key)
        while len(self._responders) > MAX_RESPONDERS:
            self._responders.popitem(last=False)
        assert reply is not None, "a responder always answers"
        return AESyncStepReply(data=reply), self._repaired(session.applied[applied:])

    # ------------------------------------------------------------ initiator
    def begin(self, target: str, tree: MerkleTree, now: float) -> InitiatorSync:
        session = AntiEntropySession(tree, initiator=True, rng=self.rng)
        return InitiatorSync(target, tree, session, now, len(tree))

    def finish(self, sync: InitiatorSync, now: float, wall: float) -> tuple[dict[str, Any], list[AEEntry]]:
        """The sync's report (the API's response body) and the entries this node must apply."""
        report = {**sync.session.report().as_dict(), "node": self.node_id, "target_node": sync.target,
                  "entries": sync.entries, "root": sync.tree.root.hex(),
                  "duration_ms": round((now - sync.started) * 1000, 3)}
        self.stats["syncs_completed"] += 1
        self.last = {**report, "at": wall}
        return report, self._repaired(sync.session.applied)

    def failed(self) -> None:
        self.stats["syncs_failed"] += 1

    # ------------------------------------------------------------ rounds
    def round_delay(self) -> float:
        return float(self.interval_s) * self.rng.uniform(0.8, 1.2)

    def pick_target(self, connected: Mapping[str, bool], live: frozenset[str]) -> str | None:
        """A random connected live peer, or None."""
        peers = sorted(p for p, up in connected.items() if up and p in live)
        return self.rng.choice(peers) if peers else None

    def status(self, tree: MerkleTree, source: str) -> dict[str, Any]:
        return {"node": self.node_id, "entries": len(tree), "root": tree.root.hex(),
                "view": {nid: {"incarnation": inc, "status": st.value} for nid, (inc, st) in tree.items()},
                "source": source, "interval_s": self.interval_s, **self.stats, "last_sync": self.last}
