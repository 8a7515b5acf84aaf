"""Protocol exception tree (after h11).

    ProtocolError                 anything wrong with bytes on the wire
    ├── LocalProtocolError        we were asked to send something the protocol forbids
    └── RemoteProtocolError       the peer sent something malformed; close that one connection
        └── HandshakeRefused      version or identity not acceptable

Any other exception escaping the codec is a bug. ``code`` is a stable machine-readable
reason used in logs, counters and API errors.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every wire-protocol failure."""

    code: str = "protocol_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class LocalProtocolError(ProtocolError):
    """Raised when our side tries to encode something invalid (e.g. a frame over the limit)."""

    code = "local_protocol_error"


class RemoteProtocolError(ProtocolError):
    """Raised when bytes from the peer cannot be a valid frame; the connection must be closed."""

    code = "remote_protocol_error"


class HandshakeRefused(RemoteProtocolError):
    """The peer's hello cannot be accepted (unsupported version, wrong identity)."""

    code = "handshake_refused"
