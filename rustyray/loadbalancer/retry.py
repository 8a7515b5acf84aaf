"""Retry delay policies and a retry budget (NETWORKING-042).

Theory of operation. Delays follow "Exponential Backoff And Jitter" (Marc Brooker, AWS
Architecture Blog, 2015): for retry number ``a`` (1 = first retry),

    Fixed:              initial
    ExponentialBackoff: min(max, initial * multiplier ** (a - 1))
    JitteredBackoff:    uniform(0, min(max, initial * multiplier ** (a - 1)))   ("full jitter")

Full jitter spreads synchronised clients apart, which capped exponential alone does not.

Delays bound one client; a budget bounds the fleet. ``RetryBudget`` follows Finagle's
RetryBudget (also gRPC's retry throttling): over a sliding window of ``ttl_sec`` seconds,
retries may not exceed ``min_retries_per_sec * ttl_sec + retry_ratio * requests``. The
deposit per request makes retries at most ``retry_ratio`` extra load when a backend is
failing; the per-second floor keeps low-traffic clients able to retry at all. Time comes in
as ``now``; the window is kept in one-second buckets.
"""

from __future__ import annotations

import enum
import math
import random
from collections import deque
from dataclasses import dataclass

from rustyray.loadbalancer.errors import require


class RetryStrategy(enum.Enum):
    """Delay policies, spelled as in the seed."""

    FIXED = "Fixed"
    EXPONENTIAL_BACKOFF = "ExponentialBackoff"
    JITTERED_BACKOFF = "JitteredBackoff"


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts and how long to wait between them."""

    strategy: RetryStrategy = RetryStrategy.JITTERED_BACKOFF
    """Delay shape; full jitter is the safe default for many clients."""
    max_attempts: int = 3
    """Total attempts including the first one (1 = never retry)."""
    initial_delay_ms: float = 100.0
    """Delay before the first retry (ms); the base of the exponential."""
    max_delay_ms: float = 5000.0
    """Upper bound on any single delay (ms)."""
    multiplier: float = 2.0
    """Growth factor per retry for the exponential shapes."""

    def validate(self) -> None:
        require(isinstance(self.strategy, RetryStrategy), "strategy", "must be a RetryStrategy")
        require(self.max_attempts >= 1, "max_attempts", "must be >= 1 (it counts the first attempt)")
        require(self.initial_delay_ms > 0, "initial_delay_ms", "must be > 0")
        require(self.max_delay_ms > 0, "max_delay_ms", "must be > 0")
        require(self.initial_delay_ms <= self.max_delay_ms, "initial_delay_ms", "must be <= max_delay_ms")
        require(self.multiplier >= 1.0, "multiplier", "must be >= 1")

    @classmethod
    def from_request(cls, strategy: str, max_attempts: int, initial_delay_ms: float,
                     max_delay_ms: float) -> RetryPolicy:
        """Build and validate from the seed's configure request fields."""
        try:
            parsed = RetryStrategy(strategy)
        except ValueError:
            valid = ", ".join(repr(s.value) for s in RetryStrategy)
            require(False, "strategy", f"unknown retry strategy {strategy!r}; expected one of {valid}")
            raise AssertionError("unreachable") from None
        policy = cls(strategy=parsed, max_attempts=max_attempts, initial_delay_ms=initial_delay_ms,
                     max_delay_ms=max_delay_ms)
        policy.validate()
        return policy

    def should_retry(self, attempts_made: int) -> bool:
        """True if another attempt is allowed after ``attempts_made`` attempts."""
        return attempts_made < self.max_attempts

    def ceiling(self, attempt: int) -> float:
        """The un-jittered delay (ms) before retry number ``attempt`` (1-based)."""
        require(attempt >= 1, "attempt", "must be >= 1")
        if self.strategy is RetryStrategy.FIXED:
            return self.initial_delay_ms
        try:
            grown = self.initial_delay_ms * self.multiplier ** (attempt - 1)
        except OverflowError:
            return self.max_delay_ms
        return min(self.max_delay_ms, grown)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Delay in ms before retry number ``attempt`` (1-based); always within [0, max_delay_ms]."""
        ceiling = self.ceiling(attempt)
        if self.strategy is RetryStrategy.JITTERED_BACKOFF:
            return rng.uniform(0.0, ceiling)
        return ceiling


@dataclass(frozen=True)
class RetryBudgetConfig:
    """Fleet-wide cap on retry load."""

    retry_ratio: float = 0.2
    """Retries allowed per request in the window (0.2 = at most 20% extra load)."""
    min_retries_per_sec: float = 10.0
    """Retries always allowed per second of window, even with no traffic."""
    ttl_sec: int = 10
    """Window length in whole seconds over which requests and retries are counted."""

    def validate(self) -> None:
        require(0 <= self.retry_ratio <= 1000, "retry_ratio", "must be within [0, 1000]")
        require(self.min_retries_per_sec >= 0, "min_retries_per_sec", "must be >= 0")
        ok = isinstance(self.ttl_sec, int) and 1 <= self.ttl_sec <= 3600
        require(ok, "ttl_sec", "must be an int in 1..3600")


class RetryBudget:
    """Sliding-window token budget: each request deposits ``retry_ratio``, each retry withdraws 1."""

    def __init__(self, config: RetryBudgetConfig | None = None) -> None:
        self.config = config or RetryBudgetConfig()
        self.config.validate()
        # (second, requests, retries), oldest first
        self._buckets: deque[list[int]] = deque()
        self._requests = 0
        self._retries = 0

    def _bucket(self, now: float) -> list[int]:
        second = math.floor(now)
        horizon = second - self.config.ttl_sec
        while self._buckets and self._buckets[0][0] <= horizon:
            _, req, ret = self._buckets.popleft()
            self._requests -= req
            self._retries -= ret
        if not self._buckets or self._buckets[-1][0] < second:
            self._buckets.append([second, 0, 0])
        # A clock that steps back lands in the newest bucket instead of rewriting history.
        return self._buckets[-1]

    def balance(self, now: float) -> float:
        """Retries still allowed in the current window (may be fractional)."""
        self._bucket(now)
        cfg = self.config
        return cfg.min_retries_per_sec * cfg.ttl_sec + cfg.retry_ratio * self._requests - self._retries

    def record_request(self, now: float) -> None:
        """Deposit for one first attempt (not for retries)."""
        self._bucket(now)[1] += 1
        self._requests += 1

    def try_retry(self, now: float) -> bool:
        """Withdraw one retry if the budget allows it."""
        if self.balance(now) < 1.0:
            return False
        self._buckets[-1][2] += 1
        self._retries += 1
        return True
