"""Exception tree of the load-balancer package.

    LoadBalancerError
    ├── NoAvailableNodeError      no candidate is left after breakers / rate limits
    ├── UnknownStrategyError      (also ValueError) a strategy name that the factory does not know
    ├── MissingRoutingKeyError    (also ValueError) a key-based strategy was called without a key
    ├── RetryBudgetExhaustedError a retry the budget refuses (raised only by callers that want it)
    └── LoadBalancerConfigError   (also ValueError) a config field out of range; the message names it

Anything else raised from this package is a bug.
"""

from __future__ import annotations


class LoadBalancerError(Exception):
    """Base of every error this package raises on purpose."""


class NoAvailableNodeError(LoadBalancerError):
    """Every candidate was filtered out (empty list, open breakers or rate limits)."""


class UnknownStrategyError(LoadBalancerError, ValueError):
    """The factory was asked for a strategy name it does not know."""


class MissingRoutingKeyError(LoadBalancerError, ValueError):
    """ConsistentHash needs a routing key and was given none."""


class RetryBudgetExhaustedError(LoadBalancerError):
    """The retry budget refuses another retry right now."""


class LoadBalancerConfigError(LoadBalancerError, ValueError):
    """A configuration value is out of range; the message names the field."""


def require(ok: bool, field: str, why: str) -> None:
    """Raise LoadBalancerConfigError naming ``field`` unless ``ok``."""
    if not ok:
        raise LoadBalancerConfigError(f"{field}: {why}")
