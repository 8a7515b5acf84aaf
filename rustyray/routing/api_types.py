"""The routing API's contract for the fan-out and fault-injection operations (NETWORKING-009, 010).

Why dataclasses: the field lists here are the API's schema, in one place a reader (and the facade's
tests) can see, instead of dict literals spread over ``api.py``. Requests check the fields they can
check alone in ``__post_init__`` (a ``DomainError`` naming the field); checks that need the node (is a
target known?) or that turn a field into what is sent (priority, timeout, the encoded ``data``) stay
in the facade, shared with ``send`` and ``broadcast``. ``rustyray.api_binding.invoke`` builds the
requests from the call's keyword arguments and ``to_wire`` turns results into JSON, field by field.

``send``, ``broadcast``, ``delivery_stats`` and ``receive_log`` are not typed yet: the manager and
health services and the integration tests call them with keyword (or positional) arguments and read
their results as dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rustyray.errors import unprocessable

__all__ = [
    "FaultInjectionReport",
    "FaultInjectionRequest",
    "QuorumReport",
    "QuorumRequest",
    "ScatterGatherReport",
    "ScatterGatherRequest",
]


def _probability(name: str, value: Any) -> None:
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise unprocessable(f"{name} must be a probability in [0, 1]", name)


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class ScatterGatherRequest:
    target_nodes: list[str]
    message_type: str
    data: dict[str, Any] | None = None
    timeout_ms: float = 5000
    priority: str = "Normal"


@dataclass(frozen=True)
class QuorumRequest:
    nodes: list[str]
    quorum_size: int
    message_type: str
    data: dict[str, Any] | None = None
    timeout_ms: float = 3000
    priority: str = "Normal"


@dataclass(frozen=True)
class FaultInjectionRequest:
    """Probabilities of dropping, duplicating and delaying each outbound routed frame; all zero: off."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "delay"):
            _probability(name, getattr(self, name))
        if self.drop + self.duplicate + self.delay > 1.0:
            raise unprocessable("drop + duplicate + delay must be at most 1", "drop")

    @property
    def enabled(self) -> bool:
        return self.drop > 0 or self.duplicate > 0 or self.delay > 0


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ScatterGatherReport:
    """NETWORKING-009. ``responses`` are ``NodeOutcome.to_dict()`` rows (the answer's fields inlined),
    in target order; ``timed_out`` names the targets whose answer did not come in time."""

    responses_received: int
    total_sent: int
    responses: list[dict[str, Any]]
    response_time_ms: float
    timed_out: list[str]


@dataclass(frozen=True)
class QuorumReport:
    """NETWORKING-010. ``outcomes`` are ``NodeOutcome.to_dict()`` rows of the targets that answered or failed."""

    quorum_reached: bool
    quorum_size: int
    responses: int
    consensus: str
    votes: dict[str, int]
    failed_nodes: list[str]
    timed_out_nodes: list[str]
    response_time_ms: float
    outcomes: list[dict[str, Any]]


@dataclass(frozen=True)
class FaultInjectionReport:
    """The injector now in force, and what the one it replaced did (None: there was none)."""

    node: str
    enabled: bool
    drop: float
    duplicate: float
    delay: float
    seed: int | None
    previous_counters: dict[str, int] | None
