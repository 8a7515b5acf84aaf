"""Reconnection schedule: exponential backoff with full jitter (sans-I/O).

Why full jitter: after a node restart every peer redials at once; spreading the
attempts uniformly over [0, min(cap, base * 2**n)] (Brooker, "Exponential Backoff
and Jitter", AWS 2015) avoids a synchronized thundering herd while keeping the
expected delay close to the plain exponential schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class ReconnectConfig:
    base_ms: float = 100.0
    """First retry delay ceiling, in milliseconds."""
    cap_ms: float = 5_000.0
    """Largest delay between two attempts, in milliseconds."""
    max_attempts: int = 0
    """Attempts before giving up; 0 means retry forever (peers come back after restarts)."""
    jitter: bool = True
    """Full jitter; False gives the deterministic exponential ceiling (used in tests)."""

    def validate(self) -> None:
        if self.base_ms <= 0:
            raise ValueError("base_ms must be positive")
        if self.cap_ms < self.base_ms:
            raise ValueError("cap_ms must be >= base_ms")
        if self.max_attempts < 0:
            raise ValueError("max_attempts must be >= 0")


class Backoff:
    """Tracks consecutive failures for one peer and says when to try next."""

    def __init__(self, config: ReconnectConfig, rng: random.Random | None = None) -> None:
        config.validate()
        self.config = config
        self.rng = rng or random.Random()
        self.attempts = 0
        self.next_at = 0.0

    def ceiling_ms(self, attempt: int) -> float:
        """Delay ceiling before retry ``attempt`` (1-based), in ms."""
        return min(self.config.cap_ms, self.config.base_ms * (2 ** max(0, attempt - 1)))

    def failed(self, now: float) -> float | None:
        """Record a failure at ``now`` (s); return the time of the next attempt, or None to give up."""
        self.attempts += 1
        if self.config.max_attempts and self.attempts >= self.config.max_attempts:
            return None
        ceiling = self.ceiling_ms(self.attempts)
        delay = self.rng.uniform(0, ceiling) if self.config.jitter else ceiling
        self.next_at = now + delay / 1000.0
        return self.next_at

    def succeeded(self) -> None:
        self.attempts = 0
        self.next_at = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.next_at
