"""Phi accrual failure detector.

Theory of operation (Hayashibara, Defago, Yared, Katayama, "The phi Accrual
Failure Detector", SRDS 2004; the variant below is Akka's
``PhiAccrualFailureDetector``): instead of a yes/no verdict, the detector
outputs a suspicion level ``phi = -log10(P_later(t))`` where ``P_later(t)`` is
the probability that a heartbeat arrives more than ``t`` seconds after the
previous one, given the inter-arrival times seen so far. The inter-arrival
times are modelled as a normal distribution whose mean and standard deviation
come from a sliding window of the last ``max_sample_size`` intervals. ``phi``
of 1 means roughly a 10 % chance the peer is still fine, 8 means 1e-8.

Like Akka we use the logistic approximation of the normal CDF,
``P_later = 1 / (1 + exp(s))`` with ``s = y * (1.5976 + 0.070566 * y**2)`` and
``y = (t - mean) / std``, so ``phi = log10(1 + exp(s))``; we evaluate it as a
softplus so that it neither overflows nor returns ``inf``. ``std`` is clamped
below by ``min_std_deviation`` so a perfectly regular peer does not make phi
jump to infinity on the first late millisecond, and ``acceptable_heartbeat_pause``
is added to the mean to tolerate known pauses (GC, restarts).

Time is injected (seconds, float); the detector never reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from rustyray.validation import at_least, positive

__all__ = ["PhiAccrualDetector", "PhiConfig", "phi_value"]

_LN10 = math.log(10.0)


@dataclass(frozen=True)
class PhiConfig:
    """Tuning of one ``PhiAccrualDetector`` (Akka's defaults, times in seconds)."""

    threshold: float = 8.0
    """phi at or above which the peer is considered unavailable (seed NETWORKING-015: 8.0)."""

    max_sample_size: int = 1000
    """Inter-arrival samples kept in the sliding window; older ones are forgotten."""

    min_std_deviation: float = 0.1
    """Seconds; lower clamp of the standard deviation so regular heartbeats do not make phi explode."""

    acceptable_heartbeat_pause: float = 0.0
    """Seconds of silence added to the mean before phi starts to grow (tolerated pauses)."""

    first_heartbeat_estimate: float = 1.0
    """Seconds; the expected interval used to seed the window at the first heartbeat (mean = it,
    std = it / 4), so phi is meaningful before real samples exist."""

    def validate(self) -> PhiConfig:
        """Raise ValueError naming the first bad field; return self."""
        positive(self, "threshold", "min_std_deviation", "first_heartbeat_estimate")
        at_least(self, 2, "max_sample_size")
        at_least(self, 0, "acceptable_heartbeat_pause")
        return self


def phi_value(time_diff: float, mean: float, std_deviation: float) -> float:
    """phi for a silence of ``time_diff`` seconds given the interval distribution (pure).

    Monotone non-decreasing in ``time_diff``; never negative, never ``inf``.
    """
    y = (time_diff - mean) / std_deviation
    s = y * (1.5976 + 0.070566 * y * y)
    # log10(1 + exp(s)) as a numerically stable softplus.
    return (max(s, 0.0) + math.log1p(math.exp(-abs(s)))) / _LN10


class PhiAccrualDetector:
    """Suspicion level of one peer from its heartbeat arrival times."""

    __slots__ = ("_config", "_intervals", "_last", "_sum", "_sum_sq")

    def __init__(self, config: PhiConfig | None = None) -> None:
        self._config = (config or PhiConfig()).validate()
        self._intervals: deque[float] = deque()
        self._sum = 0.0
        self._sum_sq = 0.0
        self._last: float | None = None

    @property
    def config(self) -> PhiConfig:
        return self._config

    @property
    def last_heartbeat(self) -> float | None:
        """Time of the latest heartbeat, or None before the first."""
        return self._last

    @property
    def sample_count(self) -> int:
        return len(self._intervals)

    def _add(self, interval: float) -> None:
        if len(self._intervals) >= self._config.max_sample_size:
            old = self._intervals.popleft()
            self._sum -= old
            self._sum_sq -= old * old
        self._intervals.append(interval)
        self._sum += interval
        self._sum_sq += interval * interval

    def heartbeat(self, now: float) -> None:
        """Record a heartbeat received at ``now``."""
        last = self._last
        if last is None:
            est = self._config.first_heartbeat_estimate
            std = est / 4.0
            self._add(est - std)
            self._add(est + std)
        elif now >= last:
            # Like Akka: the first heartbeat after the peer was deemed unavailable
            # is not a sample, or one long outage would skew the distribution for good.
            if self.is_available(now):
                self._add(now - last)
        else:
            return  # out-of-order timestamp: ignore rather than go back in time
        self._last = now

    def mean(self) -> float:
        return self._sum / len(self._intervals) if self._intervals else 0.0

    def std_deviation(self) -> float:
        n = len(self._intervals)
        if n == 0:
            return 0.0
        m = self._sum / n
        return math.sqrt(max(self._sum_sq / n - m * m, 0.0))

    def phi(self, now: float) -> float:
        """Suspicion level at ``now``; 0.0 before the first heartbeat."""
        if self._last is None:
            return 0.0
        cfg = self._config
        mean = self.mean() + cfg.acceptable_heartbeat_pause
        std = max(self.std_deviation(), cfg.min_std_deviation)
        return phi_value(max(now - self._last, 0.0), mean, std)

    def is_available(self, now: float) -> bool:
        """True while ``phi(now)`` is below the configured threshold."""
        return self.phi(now) < self._config.threshold
