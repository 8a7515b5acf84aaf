"""Node-side load generation (``RoutingApi.load_run``): the tally of one run and its summary.

Why inside the node: routed throughput between node actors must be generated where the sends
start. Driving every send from a Ray driver through actor calls measures the Ray calls, not
routing. The facade keeps ``in_flight`` sends outstanding from the node's own event loop; what is
counted, and how the latency percentiles are taken, is decided here, without I/O, so it is tested
without a cluster.

Latencies are kept as a bounded uniform sample (reservoir sampling, ``max_samples``), so a long run
at a high rate does not grow the node's memory without bound; the counts are exact.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any

MAX_LATENCY_SAMPLES = 50_000
"""Latencies kept per run for the percentiles (a uniform sample beyond that)."""

MAX_ERROR_KINDS = 20
"""Distinct error texts counted per run (the rest are counted under ``"other"``)."""


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank ``q`` quantile (0..1) of already sorted values; None when there are none."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values) - 1e-9))  # the smallest value with >= q of them at or below
    return sorted_values[min(len(sorted_values), rank) - 1]


@dataclass
class LoadTally:
    """Counts of one load run: every send that was tried, acknowledged or failed, and their latencies."""

    max_samples: int = MAX_LATENCY_SAMPLES
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    sent: int = 0
    acknowledged: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    _acked_seen: int = 0

    def record(self, acknowledged: bool, latency_ms: float, error: str | None = None) -> None:
        """One finished send: acknowledged (its latency joins the sample) or failed (its error is counted)."""
        self.sent += 1
        if acknowledged:
            self.acknowledged += 1
            self._sample(float(latency_ms))
            return
        self.failed += 1
        why = error or "failed"
        if why not in self.errors and len(self.errors) >= MAX_ERROR_KINDS:
            why = "other"
        self.errors[why] = self.errors.get(why, 0) + 1

    def _sample(self, value: float) -> None:
        self._acked_seen += 1
        if len(self.latencies_ms) < self.max_samples:
            self.latencies_ms.append(value)
            return
        slot = self.rng.randrange(self._acked_seen)  # Algorithm R: every latency kept with equal probability
        if slot < self.max_samples:
            self.latencies_ms[slot] = value

    def summary(self, elapsed_s: float) -> dict[str, Any]:
        """The counts, acknowledged sends per second over ``elapsed_s``, and latency p50 / p99 / max (ms)."""
        lat = sorted(self.latencies_ms)
        p50, p99 = percentile(lat, 0.50), percentile(lat, 0.99)
        return {
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "failed": self.failed,
            "elapsed_s": round(elapsed_s, 4),
            "acked_per_s": round(self.acknowledged / elapsed_s, 1) if elapsed_s > 0 else 0.0,
            "latency_p50_ms": None if p50 is None else round(p50, 3),
            "latency_p99_ms": None if p99 is None else round(p99, 3),
            "latency_max_ms": round(lat[-1], 3) if lat else None,
            "errors": dict(self.errors),
        }
