"""Membership service (placeholder stage): bootstrap spreads the member list.

This first stage only makes every node learn every other node; SWIM and Raft
take over member states and the configuration log in the next stage.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from rustyray.errors import ApiError
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.node import Node, RequestContext


class ClusterMembers(Message):
    """The initial member list, sent by the bootstrapping node to every member."""

    cluster_name: str
    members: dict[str, list[str]]  # node_id -> [tcp_address, quic_address]


class MembershipService:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.cluster_name: str | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=1000)
        self._event_seq = 0
        self._event_signal = asyncio.Event()
        node.on(ClusterMembers, self._on_members)
        node.peer_listeners.append(self._on_peer_event)

    def _on_peer_event(self, event: str, peer_id: str) -> None:
        kind = {"connected": "NodeJoined", "disconnected": "NodeSuspected", "goodbye": "NodeLeft"}.get(event)
        if kind is not None:
            self.emit(kind, peer_id)

    def emit(self, event_type: str, node_id: str) -> None:
        """Append a peer event (NodeJoined, NodeLeft, NodeSuspected, NodeFailed, NodeRecovered)."""
        self._event_seq += 1
        self.events.append({"seq": self._event_seq, "eventType": event_type, "nodeId": node_id,
                            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "observer": self.node.node_id})
        self._event_signal.set()
        self._event_signal = asyncio.Event()

    async def api_events(self, cursor: int = 0, timeout_s: float = 0.0) -> dict[str, Any]:
        """Events after ``cursor`` (long-polls up to ``timeout_s`` when there are none yet)."""
        if cursor >= self._event_seq and timeout_s > 0:
            signal = self._event_signal
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), min(timeout_s, 30.0))
        events = [e for e in self.events if e["seq"] > cursor]
        return {"events": events, "cursor": self._event_seq, "node": self.node.node_id}

    def _learn(self, members: dict[str, list[str]]) -> None:
        for node_id, (tcp, quic) in members.items():
            if node_id != self.node.node_id:
                self.node.learn_peer(node_id, tcp, quic)

    def _on_members(self, ctx: RequestContext, msg: ClusterMembers) -> Message | None:
        self.cluster_name = msg.cluster_name
        self._learn(msg.members)
        return None

    async def api_bootstrap(self, cluster_name: str, members: dict[str, dict[str, str]]) -> dict[str, Any]:
        if self.cluster_name is not None:
            raise ApiError(409, f"cluster {self.cluster_name!r} is already bootstrapped")
        table = {n: [m["address"], m.get("quic_address", "")] for n, m in members.items()}
        self.cluster_name = cluster_name
        self._learn(table)
        msg = ClusterMembers(cluster_name=cluster_name, members=table)
        for node_id in table:
            if node_id != self.node.node_id:
                await self.node.send(node_id, msg)
        return {"bootstrapped": True, "members": len(table)}

    def api_members(self) -> dict[str, Any]:
        members = [{"node": self.node.node_id, "state": "Alive"}]
        for peer in self.node.peers.values():
            members.append({"node": peer.node_id, "state": "Alive" if peer.connected else "Suspect"})
        return {"members": members}
