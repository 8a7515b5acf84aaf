"""Exceptions of the SWIM package.

    SwimError
    └── SwimUnexpectedMessage   -- ``receive`` got something that is not a SWIM message

Protocol anomalies from peers (stale incarnations, acks for unknown probes,
pings meant for another node) are not errors: SWIM tolerates them by design
and drops them silently.
"""

from __future__ import annotations

__all__ = ["SwimError", "SwimUnexpectedMessage"]


class SwimError(Exception):
    """Base of every error raised by ``rustyray.membership.swim``."""


class SwimUnexpectedMessage(SwimError, TypeError):
    """The adapter handed ``receive`` an object that is not a SWIM message."""
