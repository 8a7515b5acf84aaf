"""Configuration of health scoring, probes and recovery.

The phi detector and heartbeats keep their own settings next to them; the phi
threshold here only decides how a phi value counts towards a node's score and
should match the detector's. ``HealthConfig`` is the whole ``[health]`` table: when
the table sets no ``phi_threshold`` it takes ``[heartbeat] phi_threshold`` (and
``phi_floor`` at most half of it), see ``ClusterConfig.from_toml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rustyray.validation import at_least, positive


@dataclass(frozen=True)
class HealthConfig:
    """Knobs of ``HealthAggregator``, ``ProbeEvaluator``, ``RecoveryManager`` and the ``HealthService`` adapter."""

    # -- aggregation (NETWORKING-017) --
    phi_threshold: float = 8.0
    """Phi at or above which a node is suspected: its score is forced to 0 (Unhealthy)."""

    phi_floor: float = 4.0
    """Phi at or below which the phi signal scores 1.0; linear down to 0 at ``phi_threshold``."""

    error_rate_ceiling: float = 0.5
    """Error rate (0..1) that scores 0; the error signal is ``1 - rate / ceiling``."""

    latency_target_ms: float = 100.0
    """Latency (ms) at or below which the latency signal scores 1.0."""

    latency_max_ms: float = 1000.0
    """Latency (ms) at or above which the latency signal scores 0; linear in between."""

    weight_phi: float = 0.4
    """Weight of the failure-detector signal in the node score."""

    weight_checks: float = 0.3
    """Weight of the health-check pass ratio."""

    weight_errors: float = 0.2
    """Weight of the request error rate."""

    weight_latency: float = 0.1
    """Weight of the latency signal."""

    healthy_score: float = 0.9
    """Node score at or above which the node is Healthy (the seed example shows 0.85 as Degraded)."""

    degraded_score: float = 0.5
    """Node score at or above which a non-Healthy node is Degraded; below it is Unhealthy."""

    cluster_healthy_fraction: float = 0.6
    """Fraction of Healthy nodes needed (with a Healthy mean score) for an overall Healthy cluster."""

    # -- probes (NETWORKING-018) --
    loop_stall_s: float = 10.0
    """Age (s) of the last event-loop tick beyond which the node is Dead (a wedged process)."""

    startup_timeout_s: float = 120.0
    """Seconds after process start by which startup must be Complete, else it is Failed."""

    # -- recovery (NETWORKING-019) --
    recovery_max_attempts: int = 3
    """Recovery attempts before a node is quarantined."""

    recovery_base_delay_s: float = 2.0
    """Delay (s) before attempt 1 for ExponentialBackoff, and before every attempt for Fixed."""

    recovery_max_delay_s: float = 60.0
    """Cap (s) on the ExponentialBackoff delay."""

    recovery_multiplier: float = 2.0
    """ExponentialBackoff growth per attempt: delay_n = base * multiplier**(n-1)."""

    quarantine_s: float = 30.0
    """Seconds a node stays quarantined after ``recovery_max_attempts`` failed attempts."""

    # -- the service adapter (HealthService) --
    failed_after_ms: int = 0
    """Silence (ms) after which a peer is Failed; 0 means 3 x ``heartbeat.timeout_ms``."""

    tick_ms: int = 100
    """Period (ms) of the tick that measures event-loop lag and drives recovery timers."""

    auto_recover: bool = True
    """Start recovery (ExponentialBackoff) for a peer whose heartbeat status turns Failed."""

    probe_timeout_ms: int = 2000
    """How long (ms) to wait for a node's own probe answer before reporting it unreachable."""

    # -- heartbeat fan-out (Akka Cluster's ``monitored-by-nr-of-members``) --
    monitored_by_nr_of_members: int = 9
    """How many other nodes heartbeat-monitor each node (``monitor_ring.py``): a node sends heartbeats to,
    and runs phi accrual on, only this many peers, so its idle cost stays flat as the cluster grows.
    Akka's default 9 keeps clusters of up to 10 nodes all-pairs; SWIM membership is separate and unchanged."""

    @classmethod
    def lan(cls) -> HealthConfig:
        return cls()

    @classmethod
    def local(cls) -> HealthConfig:
        """Short timings for tests and single-host clusters."""
        return cls(
            loop_stall_s=2.0,
            startup_timeout_s=10.0,
            recovery_base_delay_s=0.1,
            recovery_max_delay_s=1.0,
            quarantine_s=2.0,
        )

    def validate(self) -> HealthConfig:
        """Raise ValueError naming the first bad field; return self for chaining."""
        positive(self, "phi_threshold")
        if not 0 <= self.phi_floor < self.phi_threshold:
            raise ValueError("phi_floor must be in [0, phi_threshold)")
        if not 0 < self.error_rate_ceiling <= 1:
            raise ValueError("error_rate_ceiling must be in (0, 1]")
        at_least(self, 0, "latency_target_ms")
        if self.latency_max_ms <= self.latency_target_ms:
            raise ValueError("latency_max_ms must be > latency_target_ms")
        at_least(self, 0, "weight_phi", "weight_checks", "weight_errors", "weight_latency")
        if self.weight_phi + self.weight_checks + self.weight_errors + self.weight_latency <= 0:
            raise ValueError("weight_phi: the weights must not all be 0")
        if not 0 < self.degraded_score < self.healthy_score <= 1:
            raise ValueError("healthy_score must be in (degraded_score, 1] and degraded_score > 0")
        if not 0 < self.cluster_healthy_fraction <= 1:
            raise ValueError("cluster_healthy_fraction must be in (0, 1]")
        positive(self, "loop_stall_s", "startup_timeout_s", "tick_ms", "probe_timeout_ms")
        at_least(self, 1, "recovery_max_attempts", "recovery_multiplier")
        at_least(self, 0, "recovery_base_delay_s", "quarantine_s", "failed_after_ms")
        if self.recovery_max_delay_s < self.recovery_base_delay_s:
            raise ValueError("recovery_max_delay_s must be >= recovery_base_delay_s")
        k = self.monitored_by_nr_of_members
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"monitored_by_nr_of_members must be an integer >= 1 (every node needs at least one "
                             f"monitor to have its failure detected), got {k!r}")
        return self
