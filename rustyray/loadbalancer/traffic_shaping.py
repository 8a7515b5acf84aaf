"""Per-node rate limiting with token buckets (NETWORKING-043).

Theory of operation: the classic token bucket (e.g. RFC 2697's committed burst, or Turner's
leaky bucket as a meter). A bucket holds at most ``burst`` tokens and refills continuously
at ``requests_per_second``; a request takes one token or is refused. Over any interval of
length ``t`` starting from a full bucket, at most ``burst + rate * t`` requests pass.
``retry_after(now)`` tells a refused caller how long until a token exists (for a
Retry-After header). ``now`` is the caller's monotonic clock in seconds; a clock that steps
back adds no tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rustyray.loadbalancer.errors import require
from rustyray.records import record


@dataclass(frozen=True)
class RateLimitConfig:
    """One node's rate limit."""

    requests_per_second: float = 1000.0
    """Sustained admission rate (requests per second); must be > 0."""
    burst_size: int = 50
    """Bucket capacity: requests admitted back-to-back from a full bucket."""

    def validate(self) -> None:
        require(self.requests_per_second > 0, "requests_per_second", "must be > 0")
        require(self.burst_size >= 1, "burst_size", "must be >= 1")


class TokenBucket:
    """Starts full. Not thread-safe: one owner drives it."""

    def __init__(self, config: RateLimitConfig, now: float | None = None) -> None:
        config.validate()
        self.config = config
        self.tokens = float(config.burst_size)
        self._last = now

    def _refill(self, now: float) -> None:
        if self._last is None:
            self._last = now
            return
        if now > self._last:
            rate, burst = self.config.requests_per_second, self.config.burst_size
            self.tokens = min(float(burst), self.tokens + (now - self._last) * rate)
            self._last = now

    def try_acquire(self, now: float, n: int = 1) -> bool:
        """Take ``n`` tokens if present."""
        require(n >= 1, "n", "must be >= 1")
        self._refill(now)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def retry_after(self, now: float, n: int = 1) -> float:
        """Seconds until ``n`` tokens are present (0.0 if now); inf if ``n`` exceeds the burst."""
        require(n >= 1, "n", "must be >= 1")
        if n > self.config.burst_size:
            return float("inf")
        self._refill(now)
        missing = n - self.tokens
        return 0.0 if missing <= 0 else missing / self.config.requests_per_second


@dataclass(frozen=True)
class RateLimitStatus:
    """The seed's rate-limit/set response."""

    applied: bool
    node: str
    rps: float
    burst: int

    def to_dict(self) -> dict[str, Any]:
        return record(self)


class RateLimiterRegistry:
    """Token buckets per node; a node without a configured limit is never throttled."""

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def set_limit(self, node: str, requests_per_second: float, burst_size: int,
                  now: float | None = None) -> RateLimitStatus:
        """Install (or replace, starting full) the node's bucket; ValueError names a bad field."""
        config = RateLimitConfig(requests_per_second=requests_per_second, burst_size=burst_size)
        self._buckets[node] = TokenBucket(config, now)
        return RateLimitStatus(applied=True, node=node, rps=requests_per_second, burst=burst_size)

    def remove(self, node: str) -> None:
        self._buckets.pop(node, None)

    def limit(self, node: str) -> RateLimitConfig | None:
        bucket = self._buckets.get(node)
        return None if bucket is None else bucket.config

    def has_token(self, node: str, now: float) -> bool:
        """Would ``try_acquire`` succeed? Takes nothing (use it to filter candidates)."""
        bucket = self._buckets.get(node)
        return bucket is None or bucket.retry_after(now) == 0.0

    def try_acquire(self, node: str, now: float) -> bool:
        bucket = self._buckets.get(node)
        return True if bucket is None else bucket.try_acquire(now)

    def retry_after(self, node: str, now: float) -> float:
        bucket = self._buckets.get(node)
        return 0.0 if bucket is None else bucket.retry_after(now)
