"""Small control messages every node understands, independent of any subsystem."""

from __future__ import annotations

from rustyray.protocol.messages import Message


class Heartbeat(Message):
    """Periodic liveness signal; feeds the receiver's phi accrual detector."""

    node_id: str
    timestamp: float
    seq: int = 0
    incarnation: int = 0


class Echo(Message):
    """Request/response probe used for latency measurement and benchmarks."""

    data: bytes = b""


class EchoReply(Message):
    data: bytes = b""


class Oneway(Message):
    """A fire-and-forget payload (benchmarks, tests): counted, never answered."""

    data: bytes = b""


class ErrorReply(Message):
    """Answer to a request whose handler failed; ``code`` is machine-readable."""

    code: str
    message: str


class Goodbye(Message):
    """Sent before a graceful close so the peer does not count the close as a failure."""

    node_id: str
    reason: str = ""


class AppMessage(Message):
    """An application-level message (QueryRequest, ConfigUpdate, ...) with a JSON-like body."""

    message_type: str
    data: dict[str, object] = {}
