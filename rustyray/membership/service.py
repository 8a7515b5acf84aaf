"""Membership service (placeholder stage): bootstrap spreads the member list.

This first stage only makes every node learn every other node; SWIM and Raft
take over member states and the configuration log in the next stage.
"""

from __future__ import annotations

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
        node.on(ClusterMembers, self._on_members)

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
