"""Connection pooling (NETWORKING-003, -044..047), sans-I/O.

The cores count and decide; an asyncio adapter owns the real connections, which the cores
know only as opaque conn ids.
"""

from rustyray.pool.config import EvictionPolicy, PoolConfig
from rustyray.pool.errors import (
    FlowControlError,
    MultiplexError,
    PoolConfigError,
    PoolError,
    PoolExhaustedError,
    StreamLimitError,
    UnknownConnectionError,
    UnknownStreamError,
)
from rustyray.pool.eviction import IdleConnection, select_evictions
from rustyray.pool.exchange_slots import ExchangeSlots, SlotGrant, SlotOutcome
from rustyray.pool.manager import PoolManager
from rustyray.pool.multiplexing import MultiplexConfig, MultiplexedConnection, MultiplexStats
from rustyray.pool.node_pool import AcquireOutcome, ConnectionState, Grant, NodePool, PoolStats
from rustyray.pool.peer_pools import PeerPools
from rustyray.pool.warmup import WarmupPlan, plan_warmup

__all__ = [
    "AcquireOutcome",
    "ConnectionState",
    "EvictionPolicy",
    "ExchangeSlots",
    "FlowControlError",
    "Grant",
    "IdleConnection",
    "MultiplexConfig",
    "MultiplexError",
    "MultiplexStats",
    "MultiplexedConnection",
    "NodePool",
    "PeerPools",
    "PoolConfig",
    "PoolConfigError",
    "PoolError",
    "PoolExhaustedError",
    "PoolManager",
    "PoolStats",
    "SlotGrant",
    "SlotOutcome",
    "StreamLimitError",
    "UnknownConnectionError",
    "UnknownStreamError",
    "WarmupPlan",
    "plan_warmup",
    "select_evictions",
]
