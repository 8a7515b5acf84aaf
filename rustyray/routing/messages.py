"""Routing wire messages: one envelope per routed message and its acknowledgement."""

from __future__ import annotations

from rustyray.protocol.messages import Message


class RouteEnvelope(Message, frozen=True, kw_only=True):
    """A routed application message.

    ``priority`` and ``delivery`` carry the seed spellings of ``Priority`` and
    ``DeliveryGuarantee``; ``data`` is the handler payload, opaque to routing
    (msgpack or JSON of a dict); ``attempt`` is 1 on the first send and grows on
    each retransmission so the receiver can tell retries from fresh sends.
    """

    message_id: int
    source: str
    target: str
    message_type: str
    priority: str = "Normal"
    delivery: str = "AtMostOnce"
    idempotency_key: str | None = None
    data: bytes = b""
    attempt: int = 1
    sent_at: float = 0.0


class RouteAck(Message, frozen=True, kw_only=True):
    """Acknowledgement of a ``RouteEnvelope``.

    ``duplicate`` is True when the receiver recognised a redelivery (for
    ExactlyOnce it then did not run the handler again and ``result`` is the
    remembered answer of the first run). ``error`` is set when the handler failed.
    """

    message_id: int
    duplicate: bool = False
    result: bytes | None = None
    error: str | None = None


# -- RouteAck.error carries "code|field|message" ---------------------------------------------------


def ack_error(code: str, message: str, field: str = "") -> str:
    """The ``RouteAck.error`` text for a failure ``code`` (e.g. ``invalid_payload``), naming ``field``."""
    return f"{code}|{field}|{message}"


def parse_ack_error(text: str) -> tuple[str, str | None, str]:
    """``(code, field or None, message)`` of a ``RouteAck.error``; text in another shape is code ``error``."""
    parts = text.split("|", 2)
    if len(parts) != 3:
        return "error", None, text
    return parts[0], parts[1] or None, parts[2]
