"""Routing: priorities, delivery guarantees, the send and receive cores, fan-out accounting and handlers (sans-I/O)."""

from rustyray.routing.config import RoutingConfig
from rustyray.routing.delivery import (
    DedupSnapshot,
    DedupWindow,
    DeliveryCounters,
    DeliveryGuarantee,
    DeliveryTracker,
    Settled,
    backoff_delay,
)
from rustyray.routing.dispatch_core import (
    Broadcast,
    BroadcastResult,
    Consensus,
    NodeOutcome,
    OutcomeStatus,
    QuorumCollector,
    QuorumResult,
    QuorumStatus,
    ScatterGather,
    ScatterGatherResult,
    validate_quorum,
)
from rustyray.routing.errors import (
    DuplicateMessageIdError,
    HandlerError,
    InvalidPayloadError,
    InvalidQuorumError,
    OutboxFullError,
    RoutingError,
    UnknownMessageTypeError,
)
from rustyray.routing.handlers import (
    BUILTIN_HANDLERS,
    HandlerContext,
    HandlerRegistry,
    NodeContext,
    ShardAnswer,
    ShardQueryError,
    default_registry,
)
from rustyray.routing.messages import RouteAck, RouteEnvelope
from rustyray.routing.priority import PeerOutboxes, Priority, PriorityOutbox
from rustyray.routing.receive_core import ReceiveCore
from rustyray.routing.send_core import SendCore, SendRequest

__all__ = [
    "BUILTIN_HANDLERS",
    "Broadcast",
    "BroadcastResult",
    "Consensus",
    "DedupSnapshot",
    "DedupWindow",
    "DeliveryCounters",
    "DeliveryGuarantee",
    "DeliveryTracker",
    "DuplicateMessageIdError",
    "HandlerContext",
    "HandlerError",
    "HandlerRegistry",
    "InvalidPayloadError",
    "InvalidQuorumError",
    "NodeContext",
    "NodeOutcome",
    "OutboxFullError",
    "OutcomeStatus",
    "PeerOutboxes",
    "Priority",
    "PriorityOutbox",
    "QuorumCollector",
    "QuorumResult",
    "QuorumStatus",
    "ReceiveCore",
    "RouteAck",
    "RouteEnvelope",
    "RoutingConfig",
    "RoutingError",
    "ScatterGather",
    "ScatterGatherResult",
    "SendCore",
    "SendRequest",
    "Settled",
    "ShardAnswer",
    "ShardQueryError",
    "UnknownMessageTypeError",
    "backoff_delay",
    "default_registry",
    "validate_quorum",
]
