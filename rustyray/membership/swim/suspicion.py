"""Lifeguard dynamic suspicion timeouts (LHA-Suspicion).

Theory of operation (Dadgar, Phillips, Currey, "Lifeguard: Local Health
Awareness for More Accurate Failure Detection", 2018, section IV-B; the maths
is memberlist's ``suspicion.go``): a member suspected by us starts with the
long timeout ``max``. Every *independent* suspicion of the same member by
another node (a ``SwimSuspect`` with a new ``from_id``) is evidence that the
problem is not on our side, so the timeout shrinks logarithmically towards
``min``; after ``k`` confirmations it is ``min``:

    timeout(n) = max(min, max - (max - min) * log(n + 1) / log(k + 1))

The node that raised the suspicion is not a confirmation. With ``k < 1`` the
timeout is simply ``min``. The object holds no timer; the caller re-arms its
timer at ``deadline`` after each ``confirm``.
"""

from __future__ import annotations

import math

__all__ = ["Suspicion", "remaining_suspicion_time"]


def remaining_suspicion_time(n: int, k: int, elapsed: float, min_t: float, max_t: float) -> float:
    """Seconds left before a suspicion with ``n`` of ``k`` confirmations expires (may be negative).

    Pure function of memberlist's ``remainingSuspicionTime``; the timeout is floored to whole ms.
    """
    frac = math.log(n + 1.0) / math.log(k + 1.0)
    raw = max_t - frac * (max_t - min_t)
    timeout = math.floor(1000.0 * raw) / 1000.0
    if timeout < min_t:
        timeout = min_t
    return timeout - elapsed


class Suspicion:
    """Timeout state of one suspected member."""

    __slots__ = ("_confirmers", "deadline", "k", "max_t", "min_t", "n", "start")

    def __init__(self, from_id: str, k: int, min_t: float, max_t: float, now: float) -> None:
        assert min_t <= max_t
        self.k = k
        self.min_t = min_t
        self.max_t = max_t
        self.start = now
        self.n = 0
        self._confirmers = {from_id}
        self.deadline = now + (min_t if k < 1 else max_t)

    def confirm(self, from_id: str, now: float) -> bool:
        """Count an independent suspicion; True (and ``deadline`` moved) if it was new and useful."""
        if self.n >= self.k or from_id in self._confirmers:
            return False
        self._confirmers.add(from_id)
        self.n += 1
        elapsed = now - self.start
        self.deadline = now + remaining_suspicion_time(self.n, self.k, elapsed, self.min_t, self.max_t)
        return True
