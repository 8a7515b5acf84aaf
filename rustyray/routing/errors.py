"""The routing package's exception tree.

    RoutingError
    ├── OutboxFullError            a peer's bounded outbox refused a message
    ├── DuplicateMessageIdError    the sender tracked the same message id twice
    ├── InvalidQuorumError         quorum_size outside 1..len(targets) (also a ValueError)
    └── HandlerError               a handler could not process a message
        ├── UnknownMessageTypeError  no handler registered for the message type
        └── InvalidPayloadError      the payload misses a field or has a wrong type

Anything else escaping a routing core is a bug.
"""

from __future__ import annotations


class RoutingError(Exception):
    """Base of every error raised on purpose by ``rustyray.routing``."""


class OutboxFullError(RoutingError):
    """The outbox is at ``max_size``; the caller must shed load or retry later."""

    def __init__(self, max_size: int, priority: str) -> None:
        super().__init__(f"outbox full ({max_size} messages); rejected a {priority} message")
        self.max_size = max_size
        self.priority = priority


class DuplicateMessageIdError(RoutingError):
    """A message id is already in flight; ids must be unique per sender."""


class InvalidQuorumError(RoutingError, ValueError):
    """The quorum size or the target list cannot form a quorum."""


class HandlerError(RoutingError):
    """A message handler rejected its input."""


class UnknownMessageTypeError(HandlerError):
    """No handler is registered for this message type."""

    def __init__(self, message_type: str) -> None:
        super().__init__(f"no handler for message type {message_type!r}")
        self.message_type = message_type


class InvalidPayloadError(HandlerError):
    """The payload lacks a required field or a field has the wrong type."""

    def __init__(self, message_type: str, field: str, problem: str) -> None:
        super().__init__(f"{message_type}: data.{field} {problem}")
        self.message_type = message_type
        self.field = field
