"""Which discovered nodes become candidate peers (NETWORKING-026 to 028), sans-I/O.

Theory of operation
-------------------
mDNS browsing and broadcast announces, replies and beacons all report nodes this one might
dial. A report becomes a peer the node learns (``Host.learn_peer``, which dials it) only when it
is news: not this node, not a peer already known, and carrying a TCP address that parses as
``host:port``. This is a filter, not a trust decision: each channel authenticates on its own
(the CA-tagged cluster name in TXT, the HMAC on broadcast packets), and the handshake checks the
peer's certificate. ``learned`` counts the peers one channel brought in (the API's
``peers_learned``).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from rustyray.protocol.addresses import parse_address

__all__ = ["LearnPeer", "PeerLearner"]


@dataclass(frozen=True)
class LearnPeer:
    """Action: learn (and so dial) this peer."""

    node_id: str
    tcp_address: str
    quic_address: str


class PeerLearner:
    """Decides, for one discovery channel, which reported nodes the node should learn."""

    def __init__(self, own_id: str) -> None:
        self.own_id = own_id
        self.learned = 0

    def offer(self, node_id: str, tcp: str, quic: str | None, *, known: Container[str]) -> LearnPeer | None:
        """A node was reported at ``tcp`` (and ``quic``); ``known`` holds the peers the node has."""
        if node_id == self.own_id or node_id in known or not tcp:
            return None
        try:
            parse_address(tcp, field="tcp_address")
        except ValueError:
            return None
        self.learned += 1
        return LearnPeer(node_id, tcp, quic or "")
