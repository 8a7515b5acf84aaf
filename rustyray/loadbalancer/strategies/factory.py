"""Build a strategy from its seed spelling ("RoundRobin", ...)."""

from __future__ import annotations

import random

from rustyray.loadbalancer.errors import UnknownStrategyError
from rustyray.loadbalancer.strategies.adaptive import Adaptive, AdaptiveConfig
from rustyray.loadbalancer.strategies.base import Strategy, StrategyName
from rustyray.loadbalancer.strategies.consistent_hash import ConsistentHash, ConsistentHashConfig
from rustyray.loadbalancer.strategies.least_connections import LeastConnections
from rustyray.loadbalancer.strategies.round_robin import RoundRobin


def parse_strategy_name(name: str | StrategyName) -> StrategyName:
    """The enum member for ``name``; UnknownStrategyError lists the valid spellings."""
    if isinstance(name, StrategyName):
        return name
    try:
        return StrategyName(name)
    except ValueError:
        valid = ", ".join(repr(s.value) for s in StrategyName)
        msg = f"unknown load-balancing strategy {name!r}; expected one of {valid}"
        raise UnknownStrategyError(msg) from None


def create_strategy(
    name: str | StrategyName,
    *,
    rng: random.Random | None = None,
    hash_config: ConsistentHashConfig | None = None,
    adaptive_config: AdaptiveConfig | None = None,
) -> Strategy:
    """A fresh strategy. ``rng`` is required for Adaptive (inject a seeded one in tests)."""
    match parse_strategy_name(name):
        case StrategyName.ROUND_ROBIN:
            return RoundRobin()
        case StrategyName.LEAST_CONNECTIONS:
            return LeastConnections()
        case StrategyName.CONSISTENT_HASH:
            return ConsistentHash(hash_config)
        case StrategyName.ADAPTIVE:
            if rng is None:
                raise ValueError("rng: Adaptive needs an injected random.Random")
            return Adaptive(rng, adaptive_config)
    raise AssertionError("unreachable")  # pragma: no cover
