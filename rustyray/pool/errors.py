"""Exception tree of the pool package.

    PoolError
    ├── PoolConfigError        (also ValueError) a config field out of range; the message names it
    ├── PoolExhaustedError     the waiter queue is full (back-pressure: fail fast)
    ├── UnknownConnectionError a conn id the pool does not hold, or one in the wrong state
    └── MultiplexError
        ├── StreamLimitError   max_streams streams are already open
        ├── UnknownStreamError a stream id that is not open
        └── FlowControlError   a send beyond the window, or a WINDOW_UPDATE past 2**31 - 1

Anything else raised from this package is a bug.
"""

from __future__ import annotations


class PoolError(Exception):
    """Base of every error this package raises on purpose."""


class PoolConfigError(PoolError, ValueError):
    """A configuration value is out of range; the message names the field."""


class PoolExhaustedError(PoolError):
    """No connection is free, none can be opened and the waiter queue is full."""


class UnknownConnectionError(PoolError):
    """The connection id is not in the pool, or not in the state the call needs."""


class MultiplexError(PoolError):
    """Base of multiplexing errors."""


class StreamLimitError(MultiplexError):
    """Opening another stream would exceed max_streams."""


class UnknownStreamError(MultiplexError):
    """The stream id is not open on this connection."""


class FlowControlError(MultiplexError):
    """A flow-control window would be overrun (RFC 9113 section 6.9)."""


def require(ok: bool, field: str, why: str) -> None:
    """Raise PoolConfigError naming ``field`` unless ``ok``."""
    if not ok:
        raise PoolConfigError(f"{field}: {why}")
