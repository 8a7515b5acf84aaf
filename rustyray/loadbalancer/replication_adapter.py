"""Settings replication between nodes for the load balancer: retry policies and rate limits (``scope="cluster"``).

The swap point for the cluster-wide settings mechanism, unchanged from the service it was
part of: ``LbConfigUpdate`` carries one change (``kind`` "retry" or "rate_limit") to every
live member, each applies it with the same validation as a local call and answers
``LbConfigAck``; the acks become the response's ``applied_nodes`` and ``failed_nodes``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.errors import ApiError
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext


class LbConfigUpdate(Message):
    """A cluster-wide configuration change: ``kind`` is "rate_limit" or "retry"."""

    kind: str
    data: dict[str, Any]
    origin: str = ""


class LbConfigAck(Message):
    node_id: str
    applied: bool
    error: str = ""


class LbConfigReplication:
    """Pushes retry policies and rate limits to the live members and applies theirs here."""

    def __init__(self, node: Host, *, apply_rate_limit: Callable[..., object],
                 apply_retry: Callable[..., object]) -> None:
        self.node = node
        self.apply_rate_limit = apply_rate_limit
        """Validates and installs a rate limit on this node (raises ApiError)."""
        self.apply_retry = apply_retry
        """Validates and installs a retry policy on this node (raises ApiError)."""
        node.on(LbConfigUpdate, self._on_config_update)

    async def push_retry(self, strategy: str, max_attempts: int, initial_delay_ms: float, max_delay_ms: float,
                         multiplier: float | None, out: dict[str, Any]) -> None:
        """Send the retry policy to every live member; their acks extend ``out``."""
        data = {"strategy": strategy, "max_attempts": max_attempts, "initial_delay_ms": initial_delay_ms,
                "max_delay_ms": max_delay_ms, "multiplier": multiplier}
        await self._broadcast(LbConfigUpdate(kind="retry", data=data, origin=self.node.node_id), out)

    async def push_rate_limit(self, node: str, requests_per_second: float, burst_size: int,
                              out: dict[str, Any]) -> None:
        """Send the rate limit to every live member; their acks extend ``out``."""
        data = {"node": node, "requests_per_second": requests_per_second, "burst_size": burst_size}
        await self._broadcast(LbConfigUpdate(kind="rate_limit", data=data, origin=self.node.node_id), out)

    def _on_config_update(self, ctx: RequestContext, msg: LbConfigUpdate) -> LbConfigAck:
        try:
            if msg.kind == "rate_limit":
                self.apply_rate_limit(**msg.data)
            elif msg.kind == "retry":
                self.apply_retry(**msg.data)
            else:
                raise ApiError(422, f"unknown config kind {msg.kind!r}", "kind")
        except (ApiError, TypeError) as exc:
            return LbConfigAck(node_id=self.node.node_id, applied=False, error=str(exc))
        return LbConfigAck(node_id=self.node.node_id, applied=True)

    async def _broadcast(self, msg: LbConfigUpdate, out: dict[str, Any]) -> None:
        for peer_id, ack in (await self.node.request_members(msg)).items():
            if isinstance(ack, LbConfigAck) and ack.applied:
                out["applied_nodes"].append(peer_id)
            elif isinstance(ack, Exception):
                out["failed_nodes"][peer_id] = f"{type(ack).__name__}: {ack}"
            else:
                out["failed_nodes"][peer_id] = getattr(ack, "error", "") or "unexpected reply"
