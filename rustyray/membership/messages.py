"""Wire messages of the membership service: forming a cluster and changing its Raft configuration.

SWIM and Raft keep their own messages next to their cores (``swim/messages.py``,
``raft/messages.py``); these four are the service's own. Each is a ``Message``, so its class
name is its tag on the wire (``rustyray.protocol.messages``): the names are part of the wire
format and are defined here only, once.

* ``ClusterBootstrap``: the bootstrapping node tells every initial member the first
  configuration (each writes the same one); answered by a ``MembershipChangeResult``.
* ``MembershipChange``: ask the Raft leader to add or remove one server; a follower forwards it
  to the leader it knows (``hops`` bounds the forwarding).
* ``ClusterRecordProposal``: ask the Raft leader to commit the cluster's identity entry (a
  bootstrap whose first leader is another node sends it there).
* ``MembershipChangeResult``: the answer to all three.
"""

from __future__ import annotations

from rustyray.protocol.messages import Message

__all__ = ["ClusterBootstrap", "ClusterRecordProposal", "MembershipChange", "MembershipChangeResult"]


class ClusterBootstrap(Message):
    """Sent by the bootstrapping node: every initial member writes the same first configuration."""

    cluster_name: str
    cluster_id: str
    members: dict[str, list[str]]  # node_id -> [tcp_address, quic_address]


class MembershipChange(Message):
    """Ask the Raft leader (forwarded if needed) to add or remove a server."""

    op: str  # "add" | "remove"
    node_id: str
    tcp_address: str = ""
    quic_address: str = ""
    hops: int = 0


class ClusterRecordProposal(Message):
    """Ask the Raft leader to commit the ``{"type": "cluster"}`` entry (no forwarding: the asker knows it)."""

    cluster_name: str
    cluster_id: str
    replication_factor: int | None = None


class MembershipChangeResult(Message):
    ok: bool
    leader: str = ""
    members: list[str] = []
    error: str = ""
    cluster_name: str = ""
    cluster_id: str = ""
