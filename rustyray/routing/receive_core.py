"""The receive side of routing as a sans-I/O core: what an arriving ``RouteEnvelope`` comes to.

Theory of operation. Exactly-once processing over an at-least-once channel is a
duplicate-suppression table in front of the handler (Birrell & Nelson 1984, at-most-once RPC;
Helland 2012, "Idempotence is not a medical condition"): the receiver keys each message, runs the
handler for the first copy only and answers every later copy with the remembered result. The rules:

* Keys. ExactlyOnce: the sender's idempotency key, else ``source/message_id``
  (``DedupWindow.key_for``). AtMostOnce is never retried, but the transport may still deliver a
  frame twice, so it is keyed by ``source/message_id/sent_at`` (the first send time qualifies the
  id). AtLeastOnce is not keyed: every copy runs the handler, as its name allows.
* In progress. A copy that arrives while the first copy's handler still runs waits for that run
  (``AwaitFirst``) rather than running the handler a second time.
* Journal before ack. A new key's stored result is handed out as ``Handled.journal`` to be
  appended to the write-ahead journal *before* ``Handled.ack`` leaves, so a node killed right after
  acknowledging still knows the key when it comes back (the window itself is snapshotted only every
  ``dedup_persist_interval_s``, and the snapshot makes the journal redundant).
* What a duplicate is answered: ``duplicate=True`` with the first run's result and error.
* Refused at once: a message for another node (``misrouted``) or with an unknown delivery
  guarantee (``invalid_delivery``); the handler does not run.

The receive log (counts per type, handler errors, the newest message ids) is kept here as well.

Time. ``now`` is wall-clock seconds: the window's ages must survive a process restart, which a
monotonic clock does not. The adapter reads the clock once per event and passes it in.

Event flow, in the adapter's order::

    d = core.on_envelope(env, now)
    Reply(ack)       -> write d.ack
    AwaitFirst(key)  -> wait for the first run's stored result, write core.duplicate_ack(env, stored)
    Run(key)         -> data, error = core.payload(env); unless error: run the handler
                        (an exception becomes handler_error(exc));
                        h = core.on_handled(env, key, result, error, now)
                        append h.journal (if any), release the waiters with h.stored, write h.ack
                        (core.abandon(key) when the run is cancelled instead)
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from rustyray.routing.config import RoutingConfig
from rustyray.routing.delivery import DedupWindow, DeliveryGuarantee
from rustyray.routing.errors import HandlerError, InvalidPayloadError, UnknownMessageTypeError
from rustyray.routing.messages import RouteAck, RouteEnvelope, ack_error


@dataclass(frozen=True)
class Reply:
    """Answer with ``ack`` now; the handler does not run."""

    ack: RouteAck


@dataclass(frozen=True)
class AwaitFirst:
    """A copy of a message whose first run is still in progress: wait for it, then ``duplicate_ack``."""

    key: str


@dataclass(frozen=True)
class Run:
    """Run the handler; ``key`` is the dedup key it runs under (None: AtLeastOnce, not deduplicated)."""

    key: str | None


Decision = Reply | AwaitFirst | Run


@dataclass(frozen=True)
class JournalEntry:
    """One write-ahead journal record: a key processed at ``wall_time`` with its stored result."""

    key: str
    wall_time: float
    stored: bytes


@dataclass(frozen=True)
class Handled:
    """What a finished run comes to; append ``journal`` (if any) before ``ack`` leaves."""

    stored: bytes
    """The run's answer as kept for redeliveries: JSON ``{"result", "error"}``."""
    journal: JournalEntry | None
    ack: RouteAck


def handler_error(exc: Exception) -> str:
    """The ``RouteAck.error`` that a handler's exception becomes (any exception, not only ``HandlerError``)."""
    if isinstance(exc, InvalidPayloadError):
        return ack_error("invalid_payload", str(exc), f"data.{exc.field}" if exc.field else "data")
    if isinstance(exc, UnknownMessageTypeError):
        return ack_error("unknown_message_type", str(exc), "message_type")
    if isinstance(exc, HandlerError):
        return ack_error("handler_error", str(exc))
    return ack_error("handler_error", f"{type(exc).__name__}: {exc}")


def ack_for(env: RouteEnvelope, stored: bytes | None, duplicate: bool) -> RouteAck:
    """The acknowledgement of ``env`` carrying a stored answer (None: a key restored without one)."""
    if stored is None:
        return RouteAck(message_id=env.message_id, duplicate=duplicate)
    body = msgspec.json.decode(stored)
    result = None if body.get("result") is None else msgspec.json.encode(body["result"])
    return RouteAck(message_id=env.message_id, duplicate=duplicate, result=result, error=body.get("error"))


def dedup_key(env: RouteEnvelope, guarantee: DeliveryGuarantee) -> str | None:
    """The key ``env`` is deduplicated under; None for AtLeastOnce (see the module docstring)."""
    if guarantee is DeliveryGuarantee.AT_LEAST_ONCE:
        return None
    if guarantee is DeliveryGuarantee.AT_MOST_ONCE:
        return f"amo:{env.source}/{env.message_id}/{env.sent_at!r}"
    return DedupWindow.key_for(env.source, env.message_id, env.idempotency_key)


class ReceiveCore:
    """One node's receive rules and receive log; see the module docstring for the event flow."""

    def __init__(self, node_id: str, config: RoutingConfig, log_size: int) -> None:
        self.node_id = node_id
        self.config = config
        self.dedup = DedupWindow.from_config(config)
        self.dirty = False
        """The window changed since the last ``snapshot``."""
        self._in_progress: set[str] = set()
        self.received = 0
        self.processed_by_type: Counter[str] = Counter()
        self.duplicates_suppressed = 0
        self.handler_errors = 0
        self.recent: deque[dict[str, Any]] = deque(maxlen=log_size)

    # -- events -----------------------------------------------------------------------------------

    def on_envelope(self, env: RouteEnvelope, now: float) -> Decision:
        """Decide what an arriving envelope gets; a ``Run(key)`` with a key marks it in progress."""
        self.received += 1
        if env.target != self.node_id:
            return Reply(RouteAck(message_id=env.message_id, error=ack_error("misrouted", f"this is {self.node_id}")))
        try:
            guarantee = DeliveryGuarantee.parse(env.delivery)
        except ValueError as exc:
            return Reply(RouteAck(message_id=env.message_id, error=ack_error("invalid_delivery", str(exc), "delivery")))
        key = dedup_key(env, guarantee)
        if key is None:
            return Run(None)
        if key in self._in_progress:
            self.duplicates_suppressed += 1
            return AwaitFirst(key)
        if self.dedup.seen(key, now):
            self.duplicates_suppressed += 1
            return Reply(ack_for(env, self.dedup.result(key), duplicate=True))
        self._in_progress.add(key)
        return Run(key)

    @staticmethod
    def payload(env: RouteEnvelope) -> tuple[Any, str | None]:
        """``(data, None)`` to hand to the handler, or ``(None, error)`` when ``env.data`` is not JSON."""
        try:
            return (msgspec.json.decode(env.data) if env.data else {}), None
        except msgspec.DecodeError as exc:
            return None, ack_error("invalid_payload", f"data is not JSON: {exc}", "data")

    def on_handled(
        self, env: RouteEnvelope, key: str | None, result: dict[str, Any] | None, error: str | None, now: float
    ) -> Handled:
        """The run of ``env`` under ``key`` finished with ``result`` or ``error``: log, remember, acknowledge."""
        if error is None or not error.startswith("unknown_message_type"):
            self.processed_by_type[env.message_type] += 1
            self.recent.append({
                "message_id": f"{env.source}/msg-{env.message_id}",
                "type": env.message_type,
                "priority": env.priority,
                "delivery": env.delivery,
                "attempt": env.attempt,
            })
        if error is not None:
            self.handler_errors += 1
        stored = msgspec.json.encode({"result": result, "error": error})
        journal = None
        if key is not None:
            self._in_progress.discard(key)
            self.dedup.remember_result(key, stored)
            journal = JournalEntry(key, now, stored)
            self.dirty = True
        return Handled(stored, journal, ack_for(env, stored, duplicate=False))

    def abandon(self, key: str | None) -> None:
        """The run under ``key`` ended without an answer (cancelled); the key stays seen, without a result."""
        if key is not None:
            self._in_progress.discard(key)

    @staticmethod
    def duplicate_ack(env: RouteEnvelope, stored: bytes | None) -> RouteAck:
        """The answer to a copy that waited for the first run (``AwaitFirst``)."""
        return ack_for(env, stored, duplicate=True)

    def in_progress(self, key: str) -> bool:
        return key in self._in_progress

    # -- persistence (the adapter does the file I/O) ----------------------------------------------

    def restore(self, raw: bytes, now: float) -> None:
        """Adopt a saved window under this node's bounds; ``msgspec`` errors or ValueError when it is corrupt."""
        window = DedupWindow.from_bytes(raw, now)
        window.max_entries = self.config.dedup_max_entries
        window.max_age_s = self.config.dedup_max_age_s
        self.dedup = window

    def replay(self, entries: Iterable[tuple[str, float, bytes | None]]) -> int:
        """Keys journaled after the last snapshot rejoin the window; returns how many were new."""
        replayed = 0
        for key, wall_time, stored in entries:
            if key not in self.dedup:
                self.dedup.seen(key, wall_time)
                self.dedup.remember_result(key, stored)
                replayed += 1
        if replayed:
            self.dirty = True
        return replayed

    def snapshot(self, now: float) -> bytes:
        """The window to save (ages relative to ``now``); clears ``dirty`` (a failed save is not retried)."""
        self.dirty = False
        return self.dedup.to_bytes(now)

    # -- views ------------------------------------------------------------------------------------

    @property
    def processed(self) -> int:
        return sum(self.processed_by_type.values())

    def stats(self) -> dict[str, Any]:
        """The receiver's part of the delivery stats."""
        return {
            "received": self.received,
            "processed": self.processed,
            "duplicates_suppressed": self.duplicates_suppressed,
            "handler_errors": self.handler_errors,
            "dedup": self.dedup.stats(),
        }
