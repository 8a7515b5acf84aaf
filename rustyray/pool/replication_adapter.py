"""Replication of the pool's settings between nodes (``eviction/configure`` with ``scope="cluster"``).

Kept apart, as it was, so that it can be swapped for the cluster-wide settings mechanism in
one piece: the wire messages, the handler that applies an update on this node, and the
broadcast to every live member with its acks folded into the API response
(``applied_nodes`` / ``failed_nodes``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.errors import ApiError
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext


class PoolConfigUpdate(Message):
    """Apply an eviction configuration on a peer (cluster-wide ``eviction/configure``)."""

    policy: str
    idle_timeout_sec: float
    max_lifetime_sec: float
    max_idle: int | None = None
    origin: str = ""


class PoolConfigAck(Message):
    node_id: str
    applied: bool
    error: str = ""


class PoolConfigReplication:
    """Pushes eviction settings to the live members and applies theirs here."""

    def __init__(self, node: Host, apply_eviction: Callable[[str, float, float, int | None], object]) -> None:
        self.node = node
        self.apply_eviction = apply_eviction
        """Validates and installs an eviction config on this node (raises ApiError)."""
        node.on(PoolConfigUpdate, self._on_config_update)

    async def push_eviction(self, policy: str, idle_timeout_sec: float, max_lifetime_sec: float,
                            max_idle: int | None, out: dict[str, Any]) -> None:
        """Send the config to every live member; their acks extend ``applied_nodes`` / ``failed_nodes``."""
        msg = PoolConfigUpdate(policy=policy, idle_timeout_sec=idle_timeout_sec,
                               max_lifetime_sec=max_lifetime_sec, max_idle=max_idle,
                               origin=self.node.node_id)
        await self._broadcast(msg, out)

    def _on_config_update(self, ctx: RequestContext, msg: PoolConfigUpdate) -> PoolConfigAck:
        try:
            self.apply_eviction(msg.policy, msg.idle_timeout_sec, msg.max_lifetime_sec, msg.max_idle)
        except ApiError as exc:
            return PoolConfigAck(node_id=self.node.node_id, applied=False, error=exc.message)
        return PoolConfigAck(node_id=self.node.node_id, applied=True)

    async def _broadcast(self, msg: Message, out: dict[str, Any]) -> None:
        for peer_id, ack in (await self.node.request_members(msg)).items():
            if isinstance(ack, PoolConfigAck) and ack.applied:
                out["applied_nodes"].append(peer_id)
            else:
                out["failed_nodes"][peer_id] = _ack_error(ack)


def _ack_error(ack: Message | Exception) -> str:
    if isinstance(ack, Exception):
        return f"{type(ack).__name__}: {ack}"
    return getattr(ack, "error", "") or "unexpected reply"
