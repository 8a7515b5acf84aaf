"""Exception tree of the health package (aggregator, probes, recovery, checker).

    HealthError
    ├── UnsupportedCheckError   the check type cannot run here (e.g. gRPC without grpcio)
    ├── UnknownCheckError       no check with this id / no custom check with this name
    └── RecoveryError           a recovery call that does not fit the node's state

Invalid arguments (bad endpoint, negative interval) raise ValueError naming the field.
"""

from __future__ import annotations


class HealthError(Exception):
    """Base of every error raised on purpose by the health package."""


class UnsupportedCheckError(HealthError):
    """The check type is not available in this process."""


class UnknownCheckError(HealthError, KeyError):
    """No check (or custom check function) is registered under this name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RecoveryError(HealthError):
    """A recovery event arrived for a node that is not in a state to take it."""
