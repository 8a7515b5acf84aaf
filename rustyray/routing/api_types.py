"""The routing API's contract (NETWORKING-007 to 013): request and result dataclasses per operation.

Why dataclasses: the field lists here are the API's schema, in one place a reader (and the facade's
tests) can see, instead of dict literals spread over ``api.py``. Requests check the fields they can
check alone in ``__post_init__`` (a ``DomainError`` naming the field); checks that need the node (is a
target known?) or that turn a field into what is sent (priority, timeout, the encoded ``data``) stay
in the facade, shared with ``send`` and ``broadcast``. ``rustyray.api_binding.invoke`` builds the
requests from the call's keyword arguments and ``to_wire`` turns results into JSON, field by field.

Callers inside the node (the manager, custom health checks) reach ``send`` and ``broadcast`` through
``invoke`` with keyword arguments, as the API does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rustyray.api_base import omit_none
from rustyray.errors import unprocessable
from rustyray.records import record

__all__ = [
    "BroadcastReport",
    "BroadcastRequest",
    "DeliveryStats",
    "FaultInjectionReport",
    "FaultInjectionRequest",
    "LoadRunReport",
    "LoadRunRequest",
    "QuorumReport",
    "QuorumRequest",
    "ReceiveLog",
    "ReceiveLogRequest",
    "RouteSendRequest",
    "ScatterGatherReport",
    "ScatterGatherRequest",
    "SendReport",
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


@dataclass(frozen=True)
class RouteSendRequest:
    """NETWORKING-007 (named apart from the send core's own ``SendRequest``, which carries encoded data)."""

    target_node: str
    message_type: str
    data: dict[str, Any] | None = None
    priority: str = "Normal"
    delivery: str = "AtLeastOnce"
    idempotency_key: str | None = None
    timeout_ms: float = 5000


@dataclass(frozen=True)
class BroadcastRequest:
    message_type: str
    data: dict[str, Any] | None = None
    priority: str = "Normal"
    timeout_ms: float = 5000
    delivery: str = "AtLeastOnce"


@dataclass(frozen=True)
class ReceiveLogRequest:
    after: int | None = None  # records with a higher index; None: the newest ``limit``
    limit: int = 1000

    def __post_init__(self) -> None:
        if self.after is not None and (not isinstance(self.after, int) or self.after < -1):
            raise unprocessable("after must be an integer >= -1", "after")
        if not isinstance(self.limit, int) or not 1 <= self.limit <= 10_000:
            raise unprocessable("limit must be 1..10000", "limit")


MAX_LOAD_SECONDS = 600.0
MAX_LOAD_IN_FLIGHT = 4096


@dataclass(frozen=True)
class LoadRunRequest:
    """A load run from this node: ``in_flight`` routed sends kept outstanding to ``target_node`` for
    ``seconds``, generated inside the node (each send's ``data`` is ``{"pad": "x" * payload_bytes}``)."""

    target_node: str
    seconds: float = 5.0
    in_flight: int = 8
    delivery: str = "AtLeastOnce"
    message_type: str = "Heartbeat"
    payload_bytes: int = 0
    priority: str = "Normal"
    timeout_ms: float = 5000

    def __post_init__(self) -> None:
        if not isinstance(self.target_node, str) or not self.target_node:
            raise unprocessable("target_node must be a non-empty node id", "target_node")
        if (isinstance(self.seconds, bool) or not isinstance(self.seconds, int | float)
                or not 0 < self.seconds <= MAX_LOAD_SECONDS):
            raise unprocessable(f"seconds must be a number in (0, {MAX_LOAD_SECONDS:g}]", "seconds")
        if (isinstance(self.in_flight, bool) or not isinstance(self.in_flight, int)
                or not 1 <= self.in_flight <= MAX_LOAD_IN_FLIGHT):
            raise unprocessable(f"in_flight must be an integer 1..{MAX_LOAD_IN_FLIGHT}", "in_flight")
        if isinstance(self.payload_bytes, bool) or not isinstance(self.payload_bytes, int) or self.payload_bytes < 0:
            raise unprocessable("payload_bytes must be an integer >= 0", "payload_bytes")


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class SendReport:
    """NETWORKING-007; ``error`` only when the send failed."""

    success: bool
    message_id: Any
    routed_to: str
    latency_ms: float | None
    priority: str
    delivery: str
    acknowledged: bool
    duplicate: bool
    attempts: int
    response: Any
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return omit_none(self, "error")


@dataclass(frozen=True)
class BroadcastReport:
    """NETWORKING-008; ``failures`` (node -> error) only when some send failed."""

    total_nodes: int
    successful_sends: int
    failed_sends: int
    nodes_reached: list[str]
    broadcast_latency_ms: float
    message_type: str
    priority: str
    delivery: str
    results: list[dict[str, Any]]
    failures: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = record(self, exclude=("failures",))
        if self.failures is not None:  # the seed's order: failures right after the latency
            keys = list(out)
            at = keys.index("broadcast_latency_ms") + 1
            out = {**{k: out[k] for k in keys[:at]}, "failures": self.failures, **{k: out[k] for k in keys[at:]}}
        return out


@dataclass(frozen=True)
class DeliveryStats:
    """Per guarantee (sender counters, flattened as the endpoint has always shown them) plus the receiver's."""

    node: str
    sender: dict[str, Any]
    receiver: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, **self.sender, "receiver": self.receiver}


@dataclass(frozen=True)
class ReceiveLog:
    node: str
    received: int
    processed: int
    processed_by_type: dict[str, int]
    duplicates_suppressed: int
    handler_errors: int
    recent: list[dict[str, Any]]
    config: dict[str, Any]
    counters: dict[str, Any]
    message_types: list[str]
    records: Any  # a page of the durable record log (RecordLog.read)


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


@dataclass(frozen=True)
class LoadRunReport:
    """What one load run came to: sends finished in the window (``sent`` = ``acknowledged`` + ``failed``),
    acknowledged sends per second over ``elapsed_s`` (until the last in-flight send settled), the
    latency percentiles of the acknowledged ones (ms, a uniform sample of at most 50,000), and the
    failures by error. ``started_at`` is the wall-clock start, to line up runs on several nodes."""

    node: str
    target_node: str
    delivery: str
    message_type: str
    priority: str
    in_flight: int
    seconds: float
    data_bytes: int
    started_at: float
    elapsed_s: float
    sent: int
    acknowledged: int
    failed: int
    acked_per_s: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None
    errors: dict[str, int]
