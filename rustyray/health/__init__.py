"""Health: scoring, probes and recovery (sans-I/O cores); ``health.checker`` is the asyncio adapter.

The checker is not imported here so that importing a core never pulls in asyncio.
"""

from rustyray.health.aggregator import (
    ClusterHealth,
    HealthAggregator,
    HealthState,
    NodeHealth,
    NodeSignals,
)
from rustyray.health.config import HealthConfig
from rustyray.health.errors import HealthError, RecoveryError, UnknownCheckError, UnsupportedCheckError
from rustyray.health.liveness import (
    Liveness,
    ProbeInputs,
    ProbeReport,
    Readiness,
    Startup,
    evaluate_probes,
)
from rustyray.health.recovery import (
    RecoveryAttempt,
    RecoveryManager,
    RecoveryPhase,
    RecoveryStatus,
    RecoveryStrategy,
)

__all__ = [
    "ClusterHealth",
    "HealthAggregator",
    "HealthConfig",
    "HealthError",
    "HealthState",
    "Liveness",
    "NodeHealth",
    "NodeSignals",
    "ProbeInputs",
    "ProbeReport",
    "Readiness",
    "RecoveryAttempt",
    "RecoveryError",
    "RecoveryManager",
    "RecoveryPhase",
    "RecoveryStatus",
    "RecoveryStrategy",
    "Startup",
    "UnknownCheckError",
    "UnsupportedCheckError",
    "evaluate_probes",
]
