"""Adaptive balancing: a load score per node and the power of two choices.

Theory of operation: each node gets a score in [0, 100] (lower is better), a weighted sum
of five signals each squashed into [0, 1]: latency EWMA as ``l / (l + latency_ref_ms)``,
error rate, in-flight requests as ``q / (q + in_flight_ref)``, and reported CPU and memory
load. The node is then picked by the power of two choices (Mitzenmacher, "The Power of Two
Choices in Randomized Load Balancing", IEEE TPDS 2001): sample two distinct candidates with
the injected RNG and take the lower score. Sampling instead of always taking the global
minimum keeps many balancers working from the same stale snapshot from stampeding onto one
node, while still giving an exponentially better maximum load than a random pick.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rustyray.loadbalancer.errors import require
from rustyray.loadbalancer.strategies.base import (
    IDLE,
    NodeLoad,
    Selection,
    Strategy,
    StrategyName,
    require_candidates,
)


@dataclass(frozen=True)
class AdaptiveConfig:
    """Score weights (summing to 1) and the scales that squash unbounded signals."""

    latency_weight: float = 0.35
    """Share of the score driven by latency EWMA."""
    error_weight: float = 0.25
    """Share driven by the recent error rate."""
    in_flight_weight: float = 0.2
    """Share driven by outstanding requests."""
    cpu_weight: float = 0.1
    """Share driven by reported CPU load."""
    mem_weight: float = 0.1
    """Share driven by reported memory load."""
    latency_ref_ms: float = 50.0
    """Latency (ms) that scores half of the latency share; sets what counts as slow."""
    in_flight_ref: float = 16.0
    """In-flight count that scores half of the in-flight share."""

    def validate(self) -> None:
        weights = {
            "latency_weight": self.latency_weight,
            "error_weight": self.error_weight,
            "in_flight_weight": self.in_flight_weight,
            "cpu_weight": self.cpu_weight,
            "mem_weight": self.mem_weight,
        }
        for field, value in weights.items():
            require(value >= 0, field, "must be >= 0")
        require(abs(sum(weights.values()) - 1.0) < 1e-9, "latency_weight", "the five weights must sum to 1")
        require(self.latency_ref_ms > 0, "latency_ref_ms", "must be > 0")
        require(self.in_flight_ref > 0, "in_flight_ref", "must be > 0")

    def score(self, load: NodeLoad) -> float:
        """Load score in [0, 100]; lower means the node should get the next request."""
        latency = load.latency_ewma_ms / (load.latency_ewma_ms + self.latency_ref_ms)
        in_flight = load.in_flight / (load.in_flight + self.in_flight_ref)
        raw = (
            self.latency_weight * latency
            + self.error_weight * load.error_rate
            + self.in_flight_weight * in_flight
            + self.cpu_weight * load.cpu_load
            + self.mem_weight * load.mem_load
        )
        return 100.0 * raw


class Adaptive(Strategy):
    """Power of two choices over load scores; ``load_scores`` reports every candidate's score."""

    name = StrategyName.ADAPTIVE

    def __init__(self, rng: random.Random, config: AdaptiveConfig | None = None) -> None:
        self.rng = rng
        self.config = config or AdaptiveConfig()
        self.config.validate()

    def load_scores(self, candidates: Sequence[str], stats: Mapping[str, NodeLoad]) -> dict[str, float]:
        return {node: round(self.config.score(stats.get(node, IDLE)), 3) for node in candidates}

    def select(self, candidates: Sequence[str], key: str | None, stats: Mapping[str, NodeLoad]) -> Selection:
        require_candidates(candidates)
        scores = self.load_scores(candidates, stats)
        if len(candidates) == 1:
            node = candidates[0]
        else:
            a, b = self.rng.sample(range(len(candidates)), 2)
            node = min(candidates[a], candidates[b], key=lambda n: (scores[n], n))
        return Selection(selected_node=node, strategy=self.name, load_scores=scores)
