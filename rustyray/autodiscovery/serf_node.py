"""Serf on a RustyRay node: who hears a gossip, what a peer event means, what the API shows (NETWORKING-029).

Theory of operation
-------------------
``SerfCore`` (``serf.py``) is the Serf protocol (HashiCorp Serf; Lamport 1978) and knows nothing
of the node it runs on. ``SerfNode`` is the node-side policy around it, still sans-I/O: the
adapter hands it a ``HostView`` (the clocks, the peer table and the live set at one instant)
with every event, and carries out the ``Gossip`` / ``Unicast`` / ``QueryProgress`` actions it
returns.

* Gossip fan-out. A ``Rebroadcast`` goes to at most ``retransmit_mult * ceil(log10(n + 1))``
  random connected live peers, ``n`` the live members (memberlist's transmit limit), never to
  the peer it came from; each node forwards a message only the first time it sees it (the core
  deduplicates), so the epidemic stops.
* Delivery. User events land in a bounded log (``recent_events``) the API reads. A query is
  answered at once: by the responder registered for its name, else with this node's id,
  incarnation and uptime.
* Responses go to the query's origin, or to the node listening at the response's ``addr:port``;
  one addressed to this node is fed straight back in. Each received response is reported as
  ``QueryProgress`` so a waiting query can re-check whether every live member has answered.
* Peer events map onto member status: connected -> alive (and this node's own member update is
  sent to the newcomer, whose clock ignores it if stale), disconnected -> failed unless the
  member said goodbye, goodbye -> left.
* Lifecycle. Nothing is gossiped and no response is sent before ``start`` or after ``stop``;
  the member update sent to a newly connected peer is the one exception. With ``enabled`` off,
  received Serf messages are ignored.

``now`` is seconds on a monotonic clock and ``wall`` Unix seconds, both read by the adapter.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rustyray.autodiscovery.errors import SerfError
from rustyray.autodiscovery.serf import (
    Action,
    DeliverEvent,
    DeliverQuery,
    MemberStatus,
    QueryState,
    Rebroadcast,
    SendResponse,
    SerfCore,
    SerfMemberUpdate,
    SerfQueryResponse,
)
from rustyray.protocol.addresses import format_address, parse_address
from rustyray.protocol.messages import Message

log = logging.getLogger(__name__)

__all__ = ["Gossip", "HostView", "PeerInfo", "QueryProgress", "SerfNode", "Unicast"]

QUERY_RECHECK_S = 0.25
"""Seconds a waiting query sleeps at most before re-checking the live set (a member may die unanswered)."""


@dataclass(frozen=True)
class PeerInfo:
    tcp_address: str
    connected: bool
    incarnation: int


@dataclass(frozen=True)
class HostView:
    """The node at one instant, as the adapter read it."""

    now: float
    """Monotonic seconds."""
    wall: float
    """Unix seconds (stamps delivered events)."""
    node_id: str
    host: str
    """Advertised host of the TCP transport."""
    port: int
    tcp_address: str
    """``host:port``, or "" while the TCP listener is down."""
    incarnation: int
    uptime_s: float
    live: frozenset[str]
    peers: Mapping[str, PeerInfo]


@dataclass(frozen=True)
class Gossip:
    """Action: send ``message`` to each of ``targets``."""

    message: Message
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Unicast:
    """Action: send ``message`` to one peer."""

    peer: str
    message: Message


@dataclass(frozen=True)
class QueryProgress:
    """Action: a response to the query ``(ltime, id)`` arrived; wake whoever waits for it."""

    key: tuple[int, int]


@dataclass(frozen=True)
class ForeignSend:
    """Action: answer a query whose origin is not in the mesh (a real Serf agent) at ``send.addr:send.port``."""

    send: SendResponse


NodeAction = Gossip | Unicast | QueryProgress | ForeignSend


class SerfNode:
    """Node-side Serf policy around one ``SerfCore`` (see the module docstring)."""

    def __init__(self, core: SerfCore, *, enabled: bool, retransmit_mult: int, recent_events: int,
                 rng: random.Random) -> None:
        self.core = core
        self.enabled = enabled
        self.retransmit_mult = retransmit_mult
        self.rng = rng
        self.running = False
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=recent_events)
        self.delivered = 0
        self.answered = 0
        self.responders: dict[str, Callable[[bytes], bytes]] = {}
        """Query name -> function from the query payload to the answer (default: identity and uptime)."""

    # ------------------------------------------------------------ events in
    def start(self, tags: dict[str, str], view: HostView) -> list[NodeAction]:
        self.running = True
        return self._carry(self.core.set_tags(tags), None, view)

    def stop(self) -> None:
        self.running = False

    def receive(self, msg: Message, sender: str | None, view: HostView) -> list[NodeAction]:
        """One Serf message from ``sender`` (None: this node)."""
        if not self.enabled:
            return []
        out = self._carry(self.core.receive(msg, view.now), sender, view)
        if isinstance(msg, SerfQueryResponse):
            out.append(QueryProgress((msg.ltime, msg.id)))
        return out

    def tick(self, view: HostView) -> list[NodeAction]:
        return self._carry(self.core.tick(view.now), None, view)

    def peer_event(self, event: str, peer_id: str, view: HostView) -> list[NodeAction]:
        peer = view.peers.get(peer_id)
        if event == "connected" and peer is not None:
            host, port = parse_address(peer.tcp_address, field="tcp_address")
            out = self._carry(self.core.member_joined(peer_id, host, port), None, view)
            me = self.core.me
            update = SerfMemberUpdate(ltime=me.ltime, name=me.name, addr=me.addr, port=me.port, tags=me.tags,
                                      status=me.status.value)
            return [*out, Unicast(peer_id, update)]
        if event == "disconnected" and self.status_of(peer_id) is not MemberStatus.LEFT:
            return self._carry(self.core.set_member_status(peer_id, MemberStatus.FAILED), None, view)
        if event == "goodbye":
            return self._carry(self.core.set_member_status(peer_id, MemberStatus.LEFT), None, view)
        return []

    def user_event(self, name: str, payload: bytes, coalesce: bool,
                   view: HostView) -> tuple[dict[str, object], list[NodeAction]]:
        """Raises ``SerfSizeLimitExceeded`` for a payload over the limit."""
        result, actions = self.core.user_event(name, payload, view.now, coalesce=coalesce)
        return result, self._carry(actions, None, view)

    def start_query(self, name: str, payload: bytes, timeout_s: float | None, view: HostView, *,
                    filter_nodes: list[str] | None = None, filter_tags: dict[str, str] | None = None,
                    relay_factor: int = 0) -> tuple[QueryState, list[NodeAction]]:
        """Raises ``SerfSizeLimitExceeded`` for a payload over the limit, ``SerfError`` for a bad tag regexp.
        Only members the filters match answer (this node too)."""
        state, actions = self.core.start_query(name, payload, view.now, timeout_s=timeout_s,
                                               filter_nodes=filter_nodes, filter_tags=filter_tags,
                                               relay_factor=relay_factor)
        return state, self._carry(actions, None, view)

    @staticmethod
    def query_wait(state: QueryState, live: frozenset[str], now: float) -> float | None:
        """Seconds to wait before checking ``state`` again; None once every live member has answered
        or the deadline has passed."""
        if live <= set(state.responses):
            return None
        left = state.deadline - now
        return None if left <= 0 else min(left, QUERY_RECHECK_S)

    # ------------------------------------------------------------ decisions
    def gossip_targets(self, view: HostView, exclude: str | None) -> list[str]:
        cands = sorted(p for p, peer in view.peers.items()
                       if peer.connected and p in view.live and p != exclude and p != view.node_id)
        limit = self.retransmit_mult * max(1, math.ceil(math.log10(len(view.live) + 1)))
        return cands if len(cands) <= limit else self.rng.sample(cands, limit)

    def status_of(self, name: str) -> MemberStatus | None:
        status = next((m["status"] for m in self.core.members() if m["name"] == name), None)
        return None if status is None else MemberStatus(status)

    def _carry(self, actions: list[Action], sender: str | None, view: HostView) -> list[NodeAction]:
        out: list[NodeAction] = []
        for action in actions:
            if isinstance(action, Rebroadcast):
                if self.running:
                    out.append(Gossip(action.message, tuple(self.gossip_targets(view, sender))))
            elif isinstance(action, DeliverEvent):
                e = action.event
                self.delivered += 1
                self.events.append({"name": e.name, "payload": e.payload.decode("utf-8", "replace"),
                                    "ltime": e.ltime, "coalesce": e.coalesce, "delivered_at": view.wall})
            elif isinstance(action, DeliverQuery):
                out.extend(self._answer(action, view))
            elif isinstance(action, SendResponse):
                out.extend(self._route(action, None, view))
        return out

    def _answer(self, delivered: DeliverQuery, view: HostView) -> list[NodeAction]:
        q = delivered.query
        responder = self.responders.get(q.name)
        if responder is not None:
            payload = responder(q.payload)
        else:
            payload = json.dumps({"node_id": view.node_id, "incarnation": view.incarnation,
                                  "uptime_s": round(view.uptime_s, 3)}).encode()
        try:
            send = self.core.respond(delivered, payload, view.now)
        except SerfError as exc:
            log.debug("%s does not answer query %s: %s", view.node_id, q.name, exc)
            return []
        self.answered += 1
        return self._route(send, q.origin, view)

    def _route(self, send: SendResponse, origin: str | None, view: HostView) -> list[NodeAction]:
        target = origin or self._node_at(send.addr, send.port, view)
        if target == view.node_id:
            return self.receive(send.response, None, view)
        if target is not None and self.running:
            return [Unicast(target, send.response)]
        if target is None and not origin and self.running:
            return [ForeignSend(send)]
        return []

    @staticmethod
    def _node_at(addr: str, port: int, view: HostView) -> str | None:
        where = format_address(addr, port)
        if where == view.tcp_address:
            return view.node_id
        return next((nid for nid, p in view.peers.items() if p.tcp_address == where), None)

    # ------------------------------------------------------------ what the API shows
    def members_view(self, view: HostView) -> dict[str, Any]:
        """Serf's member table merged with the node's live set: a live member is alive, any other
        failed, unless it said goodbye (left/leaving wins until it connects again)."""
        live = view.live
        members = {m["name"]: m for m in self.core.members()}
        for node_id in live - set(members):
            peer = view.peers.get(node_id)
            host, port = parse_address(peer.tcp_address) if peer else (view.host, view.port)
            members[node_id] = {"name": node_id, "addr": host, "port": port, "tags": {}, "status": "alive"}
        out = []
        for name in sorted(members):
            m = dict(members[name])
            if m["status"] in (MemberStatus.LEFT.value, MemberStatus.LEAVING.value):
                pass  # an explicit goodbye wins until the member connects again
            elif name in live:
                m["status"] = MemberStatus.ALIVE.value
            else:
                m["status"] = MemberStatus.FAILED.value
            peer = view.peers.get(name)
            if peer is not None:
                m["incarnation"] = peer.incarnation
            elif name == view.node_id:
                m["incarnation"] = view.incarnation
            out.append(m)
        core = self.core
        return {"node": view.node_id, "members": out, "total": len(out),
                "alive": sum(1 for m in out if m["status"] == "alive"),
                "clocks": {"member": core.clock.time(), "event": core.event_clock.time(),
                           "query": core.query_clock.time()}}

    def events_view(self, node_id: str, limit: int) -> dict[str, Any]:
        events = list(self.events)[-limit:] if limit > 0 else []
        return {"node": node_id, "events": events, "total_delivered": self.delivered,
                "event_clock": self.core.event_clock.time(), "stats": dict(self.core.stats)}
