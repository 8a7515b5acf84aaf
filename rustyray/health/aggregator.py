"""Health aggregation: one score per node, one verdict for the cluster (NETWORKING-017).

Theory of operation. Each node has up to four signals, each mapped to [0, 1]:

* phi (Hayashibara et al. 2004, phi accrual): 1.0 up to ``phi_floor``, falling
  linearly to 0 at ``phi_threshold``. At or above the threshold the failure
  detector suspects the node and that overrides everything: score 0.
* checks: passing checks / total checks (``checker.HealthChecker.summary()``).
* error rate: ``1 - rate / error_rate_ceiling``, clamped.
* latency: 1.0 up to ``latency_target_ms``, linear to 0 at ``latency_max_ms``.

The node score is the weighted mean of the signals present (absent signals are
left out and the weights renormalised); a node with no signal at all scores 0,
since nothing vouches for it. Node health: Healthy if score >= ``healthy_score``
(0.9), Degraded if >= ``degraded_score`` (0.5), else Unhealthy.

Cluster: ``cluster_score`` is the mean node score. Overall health is
* Unhealthy if there are no nodes, if more than half the nodes are Unhealthy
  (a majority is down, so quorum operations stall), or if the cluster score is
  below ``degraded_score``;
* Healthy if at least ``cluster_healthy_fraction`` (0.6) of the nodes are
  Healthy and the cluster score is at least ``healthy_score``;
* Degraded otherwise.
So the seed example (scores 1.0, 0.98, 0.85; mean 0.94) is Healthy overall
with node3 Degraded.

Pure functions of their inputs; no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from rustyray.health.config import HealthConfig


class HealthState(Enum):
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    UNHEALTHY = "Unhealthy"


@dataclass(frozen=True)
class NodeSignals:
    """Inputs for one node; leave a field None when that signal is unknown."""

    node: str
    phi: float | None = None
    checks_passed: int | None = None
    checks_total: int | None = None
    error_rate: float | None = None
    """Fraction of failed requests, 0..1."""
    latency_ms: float | None = None


@dataclass(frozen=True)
class NodeHealth:
    node: str
    score: float
    health: HealthState
    components: dict[str, float]
    """The signal scores that went into ``score`` (phi, checks, errors, latency)."""

    def to_dict(self, detail: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node, "score": round(self.score, 3), "health": self.health.value}
        if detail:
            out["components"] = {k: round(v, 3) for k, v in self.components.items()}
        return out


@dataclass(frozen=True)
class ClusterHealth:
    overall_health: HealthState
    cluster_score: float
    nodes: list[NodeHealth]

    def to_dict(self, detail: bool = False) -> dict[str, Any]:
        """NETWORKING-017 shape."""
        return {
            "overall_health": self.overall_health.value,
            "cluster_score": round(self.cluster_score, 3),
            "nodes": [n.to_dict(detail) for n in self.nodes],
        }


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _ramp_down(value: float, good: float, bad: float) -> float:
    """1 at or below ``good``, 0 at or above ``bad``, linear between."""
    return _clamp((bad - value) / (bad - good))


def signal_scores(signals: NodeSignals, config: HealthConfig) -> dict[str, float]:
    """Per-signal scores in [0, 1] for the signals present."""
    out: dict[str, float] = {}
    if signals.phi is not None:
        out["phi"] = _ramp_down(signals.phi, config.phi_floor, config.phi_threshold)
    if signals.checks_total:
        passed = signals.checks_passed or 0
        if not 0 <= passed <= signals.checks_total:
            raise ValueError("checks_passed must be in 0..checks_total")
        out["checks"] = passed / signals.checks_total
    if signals.error_rate is not None:
        if not 0.0 <= signals.error_rate <= 1.0:
            raise ValueError("error_rate must be in [0, 1]")
        out["errors"] = _clamp(1.0 - signals.error_rate / config.error_rate_ceiling)
    if signals.latency_ms is not None:
        out["latency"] = _ramp_down(signals.latency_ms, config.latency_target_ms, config.latency_max_ms)
    return out


def classify(score: float, config: HealthConfig) -> HealthState:
    if score >= config.healthy_score:
        return HealthState.HEALTHY
    if score >= config.degraded_score:
        return HealthState.DEGRADED
    return HealthState.UNHEALTHY


class HealthAggregator:
    """Scores nodes and the cluster according to the module docstring."""

    def __init__(self, config: HealthConfig | None = None) -> None:
        self.config = (config or HealthConfig()).validate()
        c = self.config
        self._weights = {
            "phi": c.weight_phi,
            "checks": c.weight_checks,
            "errors": c.weight_errors,
            "latency": c.weight_latency,
        }

    def score_node(self, signals: NodeSignals) -> NodeHealth:
        components = signal_scores(signals, self.config)
        total_weight = sum(self._weights[k] for k in components)
        suspected = signals.phi is not None and signals.phi >= self.config.phi_threshold
        score = 0.0
        if total_weight > 0 and not suspected:
            score = _clamp(sum(self._weights[k] * v for k, v in components.items()) / total_weight)
        return NodeHealth(signals.node, score, classify(score, self.config), components)

    def aggregate(self, nodes: Iterable[NodeSignals]) -> ClusterHealth:
        scored = [self.score_node(s) for s in nodes]
        return ClusterHealth(overall(scored, self.config), cluster_score(scored), scored)


def cluster_score(nodes: list[NodeHealth]) -> float:
    return sum(n.score for n in nodes) / len(nodes) if nodes else 0.0


def overall(nodes: list[NodeHealth], config: HealthConfig) -> HealthState:
    """The cluster verdict (rules in the module docstring)."""
    if not nodes:
        return HealthState.UNHEALTHY
    n = len(nodes)
    unhealthy = sum(1 for x in nodes if x.health is HealthState.UNHEALTHY)
    healthy = sum(1 for x in nodes if x.health is HealthState.HEALTHY)
    mean = cluster_score(nodes)
    if unhealthy * 2 > n or mean < config.degraded_score:
        return HealthState.UNHEALTHY
    if healthy >= config.cluster_healthy_fraction * n and mean >= config.healthy_score:
        return HealthState.HEALTHY
    return HealthState.DEGRADED
