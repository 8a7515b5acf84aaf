"""Kubernetes-style probes per node: liveness, readiness, startup (NETWORKING-018).

Theory of operation, after the Kubernetes probe model (liveness restarts a
wedged process, readiness gates traffic, startup holds the other two off while
the node boots):

* startup: Failed if the node reported a startup error, or it is still not
  complete ``startup_timeout_s`` after process start; Complete once the node
  has started and joined the cluster; Pending otherwise.
* liveness: Dead if startup Failed or the event loop's last tick is older than
  ``loop_stall_s`` (a stuck loop cannot serve anything), or startup is Complete
  but the loop never ticked; Alive otherwise (so a booting node without ticks
  yet is Alive).
* readiness: Ready only when startup is Complete, the node is Alive, and it is
  connected to at least one peer, or the cluster has a single node; NotReady
  otherwise.

Pure: the caller passes the observed facts, including ages in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from rustyray.health.config import HealthConfig
from rustyray.records import record


class Liveness(Enum):
    ALIVE = "Alive"
    DEAD = "Dead"


class Readiness(Enum):
    READY = "Ready"
    NOT_READY = "NotReady"


class Startup(Enum):
    COMPLETE = "Complete"
    PENDING = "Pending"
    FAILED = "Failed"


@dataclass(frozen=True)
class ProbeInputs:
    node: str
    started: bool
    """The node's services are up (transport listening, actor initialised)."""
    joined: bool
    """The node is a member of the cluster view."""
    connected_peers: int
    cluster_size: int
    """Members in the node's view, itself included."""
    last_tick_age_s: float | None
    """Seconds since the event loop last ticked; None if it has not ticked yet."""
    uptime_s: float
    """Seconds since the process started."""
    startup_error: str | None = None


@dataclass(frozen=True)
class ProbeReport:
    node: str
    liveness: Liveness
    readiness: Readiness
    startup: Startup
    reason: str
    """Why the least favourable probe has its value (for operators)."""

    def to_dict(self) -> dict[str, Any]:
        """NETWORKING-018 shape plus ``reason``."""
        return record(self)

    @property
    def liveness_http_status(self) -> int:
        return 200 if self.liveness is Liveness.ALIVE else 503

    @property
    def readiness_http_status(self) -> int:
        return 200 if self.readiness is Readiness.READY else 503


def evaluate_probes(inputs: ProbeInputs, config: HealthConfig | None = None) -> ProbeReport:
    """Apply the rules in the module docstring."""
    c = config or HealthConfig()
    if inputs.startup_error is not None:
        startup, why_start = Startup.FAILED, f"startup error: {inputs.startup_error}"
    elif inputs.started and inputs.joined:
        startup, why_start = Startup.COMPLETE, "started and joined"
    elif inputs.uptime_s >= c.startup_timeout_s:
        missing = "start" if not inputs.started else "join"
        startup, why_start = Startup.FAILED, f"did not {missing} within {c.startup_timeout_s:g}s"
    else:
        startup, why_start = Startup.PENDING, "not started" if not inputs.started else "not joined yet"

    stalled = inputs.last_tick_age_s is not None and inputs.last_tick_age_s > c.loop_stall_s
    if startup is Startup.FAILED:
        liveness, why_live = Liveness.DEAD, why_start
    elif stalled:
        liveness, why_live = Liveness.DEAD, f"event loop stalled for {inputs.last_tick_age_s:g}s"
    elif inputs.last_tick_age_s is None and startup is Startup.COMPLETE:
        liveness, why_live = Liveness.DEAD, "event loop never ticked"
    else:
        liveness, why_live = Liveness.ALIVE, "event loop ticking"

    single = inputs.cluster_size <= 1
    if liveness is Liveness.DEAD:
        readiness, reason = Readiness.NOT_READY, why_live
    elif startup is not Startup.COMPLETE:
        readiness, reason = Readiness.NOT_READY, why_start
    elif inputs.connected_peers < 1 and not single:
        readiness, reason = Readiness.NOT_READY, "no connected peers"
    else:
        readiness, reason = Readiness.READY, "single-node cluster" if single else "joined and connected"
    return ProbeReport(inputs.node, liveness, readiness, startup, reason)
