"""Per-node circuit breakers (NETWORKING-041).

Theory of operation (Nygard, "Release It!", 2007; the Closed/Open/Half-Open diagram used by
Hystrix and resilience4j):

    Closed --(failure_threshold consecutive failures)--> Open
    Open --(open_timeout_sec elapsed, checked lazily at the next call)--> HalfOpen
    HalfOpen --(any failure)--> Open          (opened_at reset to now)
    HalfOpen --(success_threshold successes)--> Closed (failure_count reset)

Closed admits everything and a success resets the consecutive-failure count. Open admits
nothing. HalfOpen admits at most ``half_open_max_requests`` trial requests at a time; each
recorded result frees its trial slot. Results that arrive while Open (late replies to
requests sent before the trip) are ignored. Time is always passed in as ``now`` (seconds
on the caller's monotonic clock); ``opened_at`` is on that same clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rustyray.loadbalancer.errors import require
from rustyray.per_node import PerNode


class CircuitState(enum.Enum):
    """Breaker states, spelled as in the seed."""

    CLOSED = "Closed"
    OPEN = "Open"
    HALF_OPEN = "HalfOpen"


@dataclass(frozen=True)
class CircuitBreakerConfig:
    """Trip and recovery thresholds."""

    failure_threshold: int = 5
    """Consecutive failures in Closed that trip the breaker to Open."""
    open_timeout_sec: float = 30.0
    """Seconds a breaker stays Open before letting trial requests through (HalfOpen)."""
    half_open_max_requests: int = 1
    """Trial requests allowed in flight at once while HalfOpen (1..3 is typical)."""
    success_threshold: int = 1
    """Successful trials in HalfOpen needed to close the breaker again."""

    def validate(self) -> None:
        require(self.failure_threshold >= 1, "failure_threshold", "must be >= 1")
        require(self.open_timeout_sec > 0, "open_timeout_sec", "must be > 0")
        require(1 <= self.half_open_max_requests <= 10, "half_open_max_requests", "must be within 1..10")
        require(self.success_threshold >= 1, "success_threshold", "must be >= 1")

    @classmethod
    def lan(cls) -> CircuitBreakerConfig:
        """Defaults for a data-centre cluster."""
        return cls()

    @classmethod
    def local(cls) -> CircuitBreakerConfig:
        """Fast recovery for single-host tests and demos."""
        return cls(failure_threshold=3, open_timeout_sec=1.0, half_open_max_requests=1, success_threshold=1)


@dataclass(frozen=True)
class CircuitStatus:
    """One row of the seed's circuit-breaker status response."""

    node: str
    state: CircuitState
    failure_count: int
    opened_at: float | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "node": self.node, "state": self.state.value, "failure_count": self.failure_count
        }
        if self.opened_at is not None:
            out["opened_at"] = self.opened_at
        return out


class CircuitBreaker:
    """One node's breaker."""

    def __init__(self, config: CircuitBreakerConfig | None = None) -> None:
        self.config = config or CircuitBreakerConfig()
        self.config.validate()
        self._state = CircuitState.CLOSED
        self.failure_count = 0
        """Consecutive failures (kept while Open, reset on closing)."""
        self.opened_at: float | None = None
        """``now`` of the last trip to Open; None once closed."""
        self.half_open_in_flight = 0
        self.half_open_successes = 0

    def _advance(self, now: float) -> None:
        if self._state is CircuitState.OPEN:
            assert self.opened_at is not None
            if now >= self.opened_at + self.config.open_timeout_sec:
                self._state = CircuitState.HALF_OPEN
                self.half_open_in_flight = 0
                self.half_open_successes = 0

    def state(self, now: float) -> CircuitState:
        self._advance(now)
        return self._state

    def can_attempt(self, now: float) -> bool:
        """Would ``allow(now)`` say yes? Does not take a trial slot (use it to filter candidates)."""
        self._advance(now)
        if self._state is CircuitState.CLOSED:
            return True
        if self._state is CircuitState.OPEN:
            return False
        return self.half_open_in_flight < self.config.half_open_max_requests

    def allow(self, now: float) -> bool:
        """Admit one request now; in HalfOpen this takes a trial slot that the result frees."""
        if not self.can_attempt(now):
            return False
        if self._state is CircuitState.HALF_OPEN:
            self.half_open_in_flight += 1
        return True

    def record_success(self, now: float) -> None:
        self._advance(now)
        if self._state is CircuitState.CLOSED:
            self.failure_count = 0
        elif self._state is CircuitState.HALF_OPEN:
            self.half_open_in_flight = max(0, self.half_open_in_flight - 1)
            self.half_open_successes += 1
            if self.half_open_successes >= self.config.success_threshold:
                self._close()

    def record_failure(self, now: float) -> None:
        self._advance(now)
        if self._state is CircuitState.CLOSED:
            self.failure_count += 1
            if self.failure_count >= self.config.failure_threshold:
                self._trip(now)
        elif self._state is CircuitState.HALF_OPEN:
            self.failure_count += 1
            self._trip(now)

    def _trip(self, now: float) -> None:
        self._state = CircuitState.OPEN
        self.opened_at = now
        self.half_open_in_flight = 0
        self.half_open_successes = 0

    def _close(self) -> None:
        self._state = CircuitState.CLOSED
        self.failure_count = 0
        self.opened_at = None
        self.half_open_in_flight = 0
        self.half_open_successes = 0

    def reset(self) -> None:
        """Force Closed (operator action)."""
        self._close()

    def status(self, node: str, now: float) -> CircuitStatus:
        return CircuitStatus(node=node, state=self.state(now), failure_count=self.failure_count,
                             opened_at=self.opened_at)


class BreakerRegistry(PerNode[CircuitBreaker]):
    """Breakers for many nodes, created lazily with one shared config."""

    def __init__(self, config: CircuitBreakerConfig | None = None) -> None:
        super().__init__(config or CircuitBreakerConfig())

    def _make(self, node: str) -> CircuitBreaker:
        return CircuitBreaker(self.config)

    def allow(self, node: str, now: float) -> bool:
        return self.get(node).allow(now)

    def record_success(self, node: str, now: float) -> None:
        self.get(node).record_success(now)

    def record_failure(self, node: str, now: float) -> None:
        self.get(node).record_failure(now)

    def record(self, node: str, now: float, ok: bool) -> None:
        """The outcome of a request the node's breaker admitted: a success or a failure."""
        if ok:
            self.record_success(node, now)
        else:
            self.record_failure(node, now)

    def state(self, node: str, now: float) -> CircuitState:
        return self.get(node).state(now)

    def available(self, candidates: Iterable[str], now: float) -> list[str]:
        """Candidates whose breaker would admit a request now (takes no trial slots)."""
        return [n for n in candidates if n not in self._by_node or self._by_node[n].can_attempt(now)]

    def remove(self, node: str) -> None:
        self._by_node.pop(node, None)

    def statuses(self, now: float) -> list[CircuitStatus]:
        return [b.status(node, now) for node, b in sorted(self._by_node.items())]
