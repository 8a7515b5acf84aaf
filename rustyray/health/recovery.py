"""Automatic recovery of failing nodes, with quarantine (NETWORKING-019).

Theory of operation: a per-node state machine in the style of a circuit breaker
(Nygard, "Release It!", 2007) combined with capped exponential backoff.

    (none) --trigger--> Waiting --due(now)--> Attempting --result ok--> (none, recovered)
                          ^                        |
                          +----result failed-------+  (attempt < max_attempts)
                                                   |
                                                   +--result failed, attempt == max--> Quarantined
    Quarantined --quarantine_s elapsed (due/status)--> (none)     Quarantined --result ok--> (none)

Delay before attempt n: Immediate 0; Fixed ``base``; ExponentialBackoff
``min(max_delay, base * multiplier**(n-1))`` (2 s, 4 s, 8 s with the defaults,
so the seed's first answer reports ``next_retry_ms: 2000``). A success reported
in any state ends recovery (the node came back by itself). After quarantine the
node is forgotten; a new ``trigger`` starts again at attempt 1.

Sans-I/O: the caller performs each attempt returned by ``due(now)`` (reconnect,
restart an actor, ...) and reports back with ``on_attempt_result``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from rustyray.health.config import HealthConfig
from rustyray.health.errors import RecoveryError
from rustyray.records import record


class RecoveryStrategy(Enum):
    EXPONENTIAL_BACKOFF = "ExponentialBackoff"
    FIXED = "Fixed"
    IMMEDIATE = "Immediate"

    @classmethod
    def parse(cls, value: str | RecoveryStrategy) -> RecoveryStrategy:
        if isinstance(value, RecoveryStrategy):
            return value
        for member in cls:
            if member.value.lower() == str(value).lower():
                return member
        raise ValueError(f"strategy must be one of {[s.value for s in cls]}, got {value!r}")


class RecoveryPhase(Enum):
    IDLE = "Idle"
    WAITING = "Waiting"
    ATTEMPTING = "Attempting"
    QUARANTINED = "Quarantined"


@dataclass(frozen=True)
class RecoveryStatus:
    recovery_initiated: bool
    """True only on the ``trigger`` call that started a new recovery."""
    node: str
    attempt: int
    """The current (or next scheduled) attempt number, 0 when idle."""
    max_attempts: int
    next_retry_ms: float | None
    """Milliseconds until the next attempt (or until quarantine ends); None when nothing is scheduled."""
    phase: RecoveryPhase

    def to_dict(self) -> dict[str, Any]:
        """NETWORKING-019 shape plus ``phase``."""
        return record(self, next_retry_ms=None if self.next_retry_ms is None else round(self.next_retry_ms, 3))


@dataclass(frozen=True)
class RecoveryAttempt:
    """One attempt the caller should make now."""

    node: str
    attempt: int
    strategy: RecoveryStrategy


@dataclass
class _Node:
    strategy: RecoveryStrategy
    attempt: int
    phase: RecoveryPhase
    at: float
    """Waiting: when the attempt is due. Quarantined: when quarantine ends. Attempting: unused."""


class RecoveryManager:
    def __init__(self, config: HealthConfig | None = None) -> None:
        self.config = (config or HealthConfig()).validate()
        self._nodes: dict[str, _Node] = {}
        self.recovered = 0
        self.quarantines = 0

    @property
    def max_attempts(self) -> int:
        return self.config.recovery_max_attempts

    def delay(self, strategy: RecoveryStrategy, attempt: int) -> float:
        """Seconds to wait before ``attempt`` (1-based)."""
        c = self.config
        if strategy is RecoveryStrategy.IMMEDIATE:
            return 0.0
        if strategy is RecoveryStrategy.FIXED:
            return c.recovery_base_delay_s
        return min(c.recovery_max_delay_s, c.recovery_base_delay_s * c.recovery_multiplier ** (attempt - 1))

    def trigger(
        self,
        node: str,
        strategy: RecoveryStrategy | str = RecoveryStrategy.EXPONENTIAL_BACKOFF,
        now: float = 0.0,
    ) -> RecoveryStatus:
        """Start recovering ``node`` unless it already is (or is quarantined): then report its state."""
        self._release(node, now)
        if node in self._nodes:
            return self.status(node, now)
        s = RecoveryStrategy.parse(strategy)
        self._nodes[node] = _Node(s, 1, RecoveryPhase.WAITING, now + self.delay(s, 1))
        return self._status(node, now, initiated=True)

    def due(self, now: float) -> list[RecoveryAttempt]:
        """Attempts to make now (each moves to Attempting); also ends expired quarantines."""
        out: list[RecoveryAttempt] = []
        for node in list(self._nodes):
            self._release(node, now)
            st = self._nodes.get(node)
            if st is not None and st.phase is RecoveryPhase.WAITING and st.at <= now:
                st.phase = RecoveryPhase.ATTEMPTING
                out.append(RecoveryAttempt(node, st.attempt, st.strategy))
        return out

    def on_attempt_result(self, node: str, ok: bool, now: float) -> RecoveryStatus:
        """Report the outcome of the current attempt; ``ok=True`` is accepted in any state."""
        st = self._nodes.get(node)
        if ok:
            if st is not None:
                del self._nodes[node]
                self.recovered += 1
            return self._status(node, now)
        if st is None or st.phase is RecoveryPhase.QUARANTINED:
            raise RecoveryError(f"node {node!r} has no recovery attempt in progress")
        if st.attempt >= self.max_attempts:
            st.phase = RecoveryPhase.QUARANTINED
            st.at = now + self.config.quarantine_s
            self.quarantines += 1
        else:
            st.attempt += 1
            st.phase = RecoveryPhase.WAITING
            st.at = now + self.delay(st.strategy, st.attempt)
        return self._status(node, now)

    def cancel(self, node: str) -> bool:
        """Forget ``node`` (it left the cluster)."""
        return self._nodes.pop(node, None) is not None

    def status(self, node: str, now: float) -> RecoveryStatus:
        self._release(node, now)
        return self._status(node, now)

    def is_quarantined(self, node: str, now: float) -> bool:
        self._release(node, now)
        st = self._nodes.get(node)
        return st is not None and st.phase is RecoveryPhase.QUARANTINED

    def quarantined(self, now: float) -> list[str]:
        return [n for n in list(self._nodes) if self.is_quarantined(n, now)]

    def next_deadline(self) -> float | None:
        """Earliest time at which ``due`` has something to do."""
        times = [st.at for st in self._nodes.values() if st.phase is not RecoveryPhase.ATTEMPTING]
        return min(times) if times else None

    def _release(self, node: str, now: float) -> None:
        st = self._nodes.get(node)
        if st is not None and st.phase is RecoveryPhase.QUARANTINED and now >= st.at:
            del self._nodes[node]

    def _status(self, node: str, now: float, initiated: bool = False) -> RecoveryStatus:
        st = self._nodes.get(node)
        if st is None:
            return RecoveryStatus(False, node, 0, self.max_attempts, None, RecoveryPhase.IDLE)
        next_ms = None if st.phase is RecoveryPhase.ATTEMPTING else max(0.0, st.at - now) * 1000.0
        return RecoveryStatus(initiated, node, st.attempt, self.max_attempts, next_ms, st.phase)
