"""Delivery guarantees: the sender's retry tracker and the receiver's dedup window.

Theory of operation. Over a lossy transport, "exactly once" is at-least-once
delivery plus idempotent processing (Birrell & Nelson 1984, at-most-once RPC
semantics via a duplicate-suppression table; Helland 2012, "Idempotence is not a
medical condition"). The sender side is ``DeliveryTracker``: it remembers every
message until an acknowledgement or its deadline, and for AtLeastOnce and
ExactlyOnce tells the caller when to retransmit, with capped exponential backoff
and jitter (the AWS "exponential backoff and jitter" scheme). AtMostOnce messages
are sent once and never retried; they are still tracked so that a reply can be
matched and a missing one reported when the deadline passes. The receiver side
is ``DedupWindow``: a bounded, age-limited set of keys already processed; for
ExactlyOnce the key is the sender's idempotency key (or ``source/message_id``),
and the handler's answer is remembered so a redelivery is acknowledged with the
same result without running the handler again. The window serialises to bytes
so that it survives a reconnect or an actor restart.

Both classes are sans-I/O: time comes in as ``now`` (seconds) and randomness from
an injected ``random.Random``.
"""

from __future__ import annotations

import heapq
import random
from collections import OrderedDict
from dataclasses import asdict, dataclass
from enum import Enum

import msgspec

from rustyray.routing.config import RoutingConfig
from rustyray.routing.errors import DuplicateMessageIdError


class DeliveryGuarantee(Enum):
    AT_MOST_ONCE = "AtMostOnce"
    AT_LEAST_ONCE = "AtLeastOnce"
    EXACTLY_ONCE = "ExactlyOnce"

    @property
    def retries(self) -> bool:
        """Whether unacknowledged messages are retransmitted."""
        return self is not DeliveryGuarantee.AT_MOST_ONCE

    @classmethod
    def parse(cls, value: str | DeliveryGuarantee) -> DeliveryGuarantee:
        """Accept the seed spelling case-insensitively, also with separators ("at-least-once")."""
        if isinstance(value, DeliveryGuarantee):
            return value
        norm = str(value).replace("-", "").replace("_", "").lower()
        for member in cls:
            if member.value.lower() == norm:
                return member
        raise ValueError(f"delivery must be one of {[g.value for g in cls]}, got {value!r}")


def backoff_delay(attempt: int, config: RoutingConfig, u: float) -> float:
    """Gap in seconds after send number ``attempt`` (1-based) before the next one.

    ``min(retry_max_s, retry_initial_s * retry_multiplier**(attempt-1))`` scaled by
    ``1 + retry_jitter * (2u - 1)`` for ``u`` uniform in [0, 1).
    """
    assert attempt >= 1
    base = min(config.retry_max_s, config.retry_initial_s * config.retry_multiplier ** (attempt - 1))
    return base * (1.0 + config.retry_jitter * (2.0 * u - 1.0))


@dataclass
class DeliveryCounters:
    """Per-guarantee totals. ``sent`` counts distinct messages (first sends), ``retried``
    retransmissions, ``deduplicated`` acks in which the receiver reported a duplicate."""

    sent: int = 0
    acknowledged: int = 0
    retried: int = 0
    deduplicated: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Settled:
    """What ``on_ack`` reports for a message it was waiting for."""

    message_id: int
    guarantee: DeliveryGuarantee
    attempts: int
    latency_s: float
    """Seconds from the first send to the acknowledgement."""


@dataclass
class _InFlight:
    message_id: int
    guarantee: DeliveryGuarantee
    first_sent: float
    deadline: float
    attempt: int
    next_retry: float | None
    token: int


class DeliveryTracker:
    """Sender-side bookkeeping of unacknowledged messages.

    Call ``track`` right after the first send, ``due(now)`` and ``expired(now)``
    whenever the timer from ``next_deadline()`` fires, and ``on_ack`` when a
    ``RouteAck`` arrives. Message ids must be unique among messages in flight.
    """

    def __init__(self, config: RoutingConfig | None = None, rng: random.Random | None = None) -> None:
        self.config = (config or RoutingConfig()).validate()
        self._rng = rng if rng is not None else random.Random()
        self._inflight: dict[int, _InFlight] = {}
        self._retry_heap: list[tuple[float, int, int]] = []  # (when, token, message_id)
        self._deadline_heap: list[tuple[float, int, int]] = []
        self._token = 0
        self._counters = {g: DeliveryCounters() for g in DeliveryGuarantee}
        self.stray_acks = 0
        """Acks for ids not in flight (already settled, expired or never sent)."""

    # -- events -----------------------------------------------------------------------------------

    def track(
        self,
        message_id: int,
        guarantee: DeliveryGuarantee | str,
        now: float,
        deadline: float | None = None,
    ) -> None:
        """Record that ``message_id`` was just sent for the first time.

        ``deadline`` is absolute (same clock as ``now``); None means
        ``now + config.default_deadline_s``.
        """
        if message_id in self._inflight:
            raise DuplicateMessageIdError(f"message {message_id} is already in flight")
        g = DeliveryGuarantee.parse(guarantee)
        if deadline is None:
            deadline = now + self.config.default_deadline_s
        self._token += 1
        entry = _InFlight(message_id, g, now, deadline, 1, None, self._token)
        self._inflight[message_id] = entry
        heapq.heappush(self._deadline_heap, (deadline, entry.token, message_id))
        self._counters[g].sent += 1
        self._schedule_retry(entry, now)

    def on_ack(self, message_id: int, now: float, duplicate: bool = False) -> Settled | None:
        """Settle ``message_id``; None when it was not in flight (a stray or late ack)."""
        entry = self._inflight.pop(message_id, None)
        if entry is None:
            self.stray_acks += 1
            return None
        counters = self._counters[entry.guarantee]
        counters.acknowledged += 1
        if duplicate:
            counters.deduplicated += 1
        return Settled(message_id, entry.guarantee, entry.attempt, now - entry.first_sent)

    def cancel(self, message_id: int) -> bool:
        """Stop tracking without counting success or failure (e.g. the caller gave up)."""
        return self._inflight.pop(message_id, None) is not None

    # -- timers -----------------------------------------------------------------------------------

    def due(self, now: float) -> list[int]:
        """Ids to retransmit now, oldest schedule first; each call counts as one more attempt.

        Read the new attempt number with ``attempt(message_id)`` to stamp the envelope.
        """
        out: list[int] = []
        heap = self._retry_heap
        while heap and heap[0][0] <= now:
            when, token, message_id = heapq.heappop(heap)
            entry = self._inflight.get(message_id)
            if entry is None or entry.token != token or entry.next_retry != when:
                continue
            if now >= entry.deadline:
                entry.next_retry = None  # expired() reports it
                continue
            entry.attempt += 1
            self._counters[entry.guarantee].retried += 1
            self._schedule_retry(entry, now)
            out.append(message_id)
        return out

    def expired(self, now: float) -> list[int]:
        """Ids whose deadline passed without an ack; they are forgotten and counted failed."""
        out: list[int] = []
        heap = self._deadline_heap
        while heap and heap[0][0] <= now:
            _, token, message_id = heapq.heappop(heap)
            entry = self._inflight.get(message_id)
            if entry is None or entry.token != token:
                continue
            del self._inflight[message_id]
            self._counters[entry.guarantee].failed += 1
            out.append(message_id)
        return out

    def next_deadline(self) -> float | None:
        """Earliest time at which ``due`` or ``expired`` has something to do."""
        self._clean(self._retry_heap, retry=True)
        self._clean(self._deadline_heap, retry=False)
        times = [h[0][0] for h in (self._retry_heap, self._deadline_heap) if h]
        return min(times) if times else None

    # -- queries ----------------------------------------------------------------------------------

    def attempt(self, message_id: int) -> int:
        """Number of sends so far (1 after ``track``); KeyError when not in flight."""
        return self._inflight[message_id].attempt

    def is_in_flight(self, message_id: int) -> bool:
        return message_id in self._inflight

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def counters(self, guarantee: DeliveryGuarantee | str) -> DeliveryCounters:
        return self._counters[DeliveryGuarantee.parse(guarantee)]

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per guarantee, keyed by the seed spelling."""
        return {g.value: c.as_dict() for g, c in self._counters.items()}

    # -- internals --------------------------------------------------------------------------------

    def _schedule_retry(self, entry: _InFlight, now: float) -> None:
        entry.next_retry = None
        if not entry.guarantee.retries:
            return
        when = now + backoff_delay(entry.attempt, self.config, self._rng.random())
        if when >= entry.deadline:
            return
        entry.next_retry = when
        heapq.heappush(self._retry_heap, (when, entry.token, entry.message_id))

    def _clean(self, heap: list[tuple[float, int, int]], retry: bool) -> None:
        while heap:
            when, token, message_id = heap[0]
            entry = self._inflight.get(message_id)
            if entry is not None and entry.token == token and (not retry or entry.next_retry == when):
                return
            heapq.heappop(heap)


# ---------------------------------------------------------------------------------------------------
# Receiver side


class DedupSnapshot(msgspec.Struct, frozen=True, array_like=True):
    """Persisted form of a ``DedupWindow``. Ages, not timestamps, so it survives a clock change."""

    version: int
    max_entries: int
    max_age_s: float
    entries: list[tuple[str, float, bytes | None]]
    """(key, age in seconds at snapshot time, remembered result), oldest first."""


_SNAPSHOT_VERSION = 1
_snapshot_encoder = msgspec.msgpack.Encoder()
_snapshot_decoder = msgspec.msgpack.Decoder(DedupSnapshot)


@dataclass
class _Seen:
    first_seen: float
    result: bytes | None = None


class DedupWindow:
    """Keys a receiver has processed, bounded by count and by age.

    ``now`` passed to one window should not go backwards; eviction by age scans
    from the oldest insertion. Evicting by count while a key is still younger than
    ``max_age_s`` weakens exactly-once for that key; ``evicted_by_count`` makes it
    visible.
    """

    def __init__(self, max_entries: int = 100_000, max_age_s: float = 600.0) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        if max_age_s <= 0:
            raise ValueError("max_age_s must be > 0")
        self.max_entries = max_entries
        self.max_age_s = max_age_s
        self._keys: OrderedDict[str, _Seen] = OrderedDict()
        self.unique = 0
        self.duplicates = 0
        self.evicted_by_age = 0
        self.evicted_by_count = 0

    @classmethod
    def from_config(cls, config: RoutingConfig) -> DedupWindow:
        return cls(config.dedup_max_entries, config.dedup_max_age_s)

    @staticmethod
    def key_for(source: str, message_id: int, idempotency_key: str | None = None) -> str:
        """The dedup key of a message: its idempotency key when given, else ``source/message_id``."""
        if idempotency_key is not None:
            return f"k:{idempotency_key}"
        return f"m:{source}/{message_id}"

    def seen(self, key: str, now: float) -> bool:
        """True when ``key`` was already seen inside the window (a duplicate); else remember it."""
        self.expire(now)
        if key in self._keys:
            self.duplicates += 1
            return True
        self._keys[key] = _Seen(now)
        self.unique += 1
        while len(self._keys) > self.max_entries:
            self._keys.popitem(last=False)
            self.evicted_by_count += 1
        return False

    def remember_result(self, key: str, result: bytes | None) -> None:
        """Store the handler's answer so a redelivery can be acknowledged with it."""
        entry = self._keys.get(key)
        if entry is not None:
            entry.result = result

    def result(self, key: str) -> bytes | None:
        entry = self._keys.get(key)
        return entry.result if entry is not None else None

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def expire(self, now: float) -> int:
        """Forget keys older than ``max_age_s``; returns how many went."""
        dropped = 0
        horizon = now - self.max_age_s
        while self._keys:
            key, entry = next(iter(self._keys.items()))
            if entry.first_seen > horizon:
                break
            del self._keys[key]
            dropped += 1
        self.evicted_by_age += dropped
        return dropped

    def stats(self) -> dict[str, int]:
        return {
            "size": len(self._keys),
            "unique": self.unique,
            "duplicates": self.duplicates,
            "evicted_by_age": self.evicted_by_age,
            "evicted_by_count": self.evicted_by_count,
        }

    def to_bytes(self, now: float) -> bytes:
        """Serialise with ages relative to ``now`` (so the restoring process may use another clock)."""
        self.expire(now)
        entries = [(k, now - e.first_seen, e.result) for k, e in self._keys.items()]
        return _snapshot_encoder.encode(
            DedupSnapshot(_SNAPSHOT_VERSION, self.max_entries, self.max_age_s, entries)
        )

    @classmethod
    def from_bytes(cls, data: bytes, now: float) -> DedupWindow:
        """Rebuild a window saved by ``to_bytes``; ``now`` is the restoring clock's current time.

        Raises ``msgspec.DecodeError``/``ValidationError`` on corrupt input and
        ValueError on an unknown snapshot version.
        """
        snap = _snapshot_decoder.decode(data)
        if snap.version != _SNAPSHOT_VERSION:
            raise ValueError(f"version: unsupported dedup snapshot version {snap.version}")
        window = cls(snap.max_entries, snap.max_age_s)
        for key, age, result in snap.entries:
            if age < snap.max_age_s:
                window._keys[key] = _Seen(now - age, result)
        return window
