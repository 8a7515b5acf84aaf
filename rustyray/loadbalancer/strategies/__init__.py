"""Load-balancing strategies (NETWORKING-037..040): one ``Strategy`` interface, four policies."""

from rustyray.loadbalancer.strategies.adaptive import Adaptive, AdaptiveConfig
from rustyray.loadbalancer.strategies.base import IDLE, NodeLoad, Selection, Strategy, StrategyName
from rustyray.loadbalancer.strategies.consistent_hash import (
    ConsistentHash,
    ConsistentHashConfig,
    HashRing,
    stable_hash64,
)
from rustyray.loadbalancer.strategies.factory import create_strategy, parse_strategy_name
from rustyray.loadbalancer.strategies.least_connections import LeastConnections
from rustyray.loadbalancer.strategies.round_robin import RoundRobin

__all__ = [
    "IDLE",
    "Adaptive",
    "AdaptiveConfig",
    "ConsistentHash",
    "ConsistentHashConfig",
    "HashRing",
    "LeastConnections",
    "NodeLoad",
    "RoundRobin",
    "Selection",
    "Strategy",
    "StrategyName",
    "create_strategy",
    "parse_strategy_name",
    "stable_hash64",
]
