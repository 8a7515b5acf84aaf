"""The Serf layer of a memberlist member, sans I/O: user events, queries and their relays, intents, clocks.

Why: so a RustyRay node can be a member of a real Serf cluster (``serf members`` lists it, with its tags)
and list Serf agents as members itself (NETWORKING-029). Membership itself -- probes, indirect pings,
suspicion, refutation, gossip, push-pull -- is our SWIM core (``rustyray.membership.swim``), reached
through ``memberlist_swim``, which translates memberlist's wire messages to SWIM messages and back; the
wire format is ``memberlist_wire``, the sockets are ``memberlist_adapter``. This core takes decoded
messages and the time and returns ``Send`` / ``Reply`` actions; it never reads a clock or touches a socket.

Theory of operation (Serf on memberlist)
----------------------------------------
* Serf messages are memberlist user messages. Serf keeps Lamport clocks: ``ltime`` for its join and leave
  intents (an agent's intent is witnessed), ``event_ltime`` for user events (ours are never older than
  what the agents have seen); both ride in the push-pull's user state and are merged from the agents'.
* A join is memberlist's push-pull followed by Serf's join intent to every live member; a graceful leave
  is the leave intent, then a ``dead`` about ourselves from ourselves, so an agent shows us left, not
  failed.
* Serf queries carry filters (node names, tag regexps) and a relay factor k. Our own queries encode
  them (``query``); an agent's are decoded into ``QueryIn`` for the node's Serf layer, which answers
  only when they match. Every answer we send to an agent's query with k > 0 also goes through k random
  other live members as a ``messageRelay`` (Serf's ``relayResponse``: only when the cluster has more
  than k members), and a ``messageRelay`` an agent sends us is forwarded to its ``DestAddr``, so an
  answer survives a lossy path between two members.
* Tags are memberlist's Meta of our alive (``memberlist_swim`` carries it through the SWIM core).
"""

from __future__ import annotations

import collections
import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from rustyray.autodiscovery.memberlist_swim import (
    Member,
    MemberlistConfig,
    MemberlistSwim,
    MemberStatus,
    PushPullWith,
    Reply,
    Send,
)
from rustyray.autodiscovery.memberlist_wire import (
    QUERY_FLAG_ACK,
    SERF_JOIN,
    SERF_LEAVE,
    SERF_PUSH_PULL,
    SERF_QUERY,
    SERF_QUERY_RESPONSE,
    SERF_RELAY,
    SERF_USER_EVENT,
    MessageType,
    PushPull,
    WireError,
    decode_query_filters,
    decode_relay,
    decode_serf_message,
    encode_query_filters,
    ip_text,
    serf_join_intent,
    serf_leave_intent,
    serf_push_pull_state,
    serf_query,
    serf_query_response,
    serf_relay,
    serf_user_event,
    text,
)

__all__ = ["Deliver", "Member", "MemberStatus", "MemberlistConfig", "MemberlistCore", "PushPullWith", "QueryIn",
           "QueryResponseIn", "Reply", "Send"]


RELAY_MEMORY = 512
"""Agent queries whose relay factor we remember, to relay our answers to them (Serf's QueryBuffer is 512)."""


@dataclass(frozen=True)
class Deliver:
    """A Serf user event from the memberlist side, for the node's Serf layer."""

    ltime: int
    name: str
    payload: bytes
    coalesce: bool


@dataclass(frozen=True)
class QueryIn:
    """A Serf query from an agent: answer it to ``host:port`` (``Send`` of a query response)."""

    ltime: int
    id: int
    host: str
    port: int
    source: str
    name: str
    payload: bytes
    timeout_s: float
    filter_nodes: list[str]
    filter_tags: dict[str, str]
    ack: bool
    relay_factor: int = 0
    """Answers go through this many other members too (``MemberlistCore.query_response`` does it)."""


@dataclass(frozen=True)
class QueryResponseIn:
    """An agent's answer to one of our queries."""

    ltime: int
    id: int
    node: str
    payload: bytes
    ack: bool


class MemberlistCore(MemberlistSwim):
    """One member of a memberlist cluster with Serf on top (``memberlist_swim`` for the membership)."""

    def __init__(self, name: str, addr: bytes, port: int, tags: dict[str, str],
                 config: MemberlistConfig | None = None, rng: random.Random | None = None, now: float = 0.0) -> None:
        super().__init__(name, addr, port, tags, config, rng, now)
        self.ltime = 1  # Serf's Lamport clock, for the intents we send
        self.event_ltime = 0  # the highest Serf event time seen (a push-pull's EventLTime, events)
        self._relay_factors: collections.OrderedDict[tuple[int, int], int] = collections.OrderedDict()
        self.relayed = 0  # messageRelays forwarded for agents
        self.relays_sent = 0  # our answers sent through other members (a query's relay factor)

    def join_intent(self) -> list[Send]:
        """Serf's join intent after a join, to every live member, one Lamport tick past what we have seen."""
        self.ltime += 1
        return self._to_all(MessageType.USER, {"payload": serf_join_intent(self.name, self.ltime)})

    def leave(self) -> list[Send]:
        """A graceful leave: Serf's leave intent, then a ``dead`` about ourselves from ourselves; an agent
        that saw the intent shows the member as left, not failed."""
        self.ltime += 1
        intent = self._to_all(MessageType.USER, {"payload": serf_leave_intent(self.name, self.ltime)})
        return intent + self.leave_dead()

    def _on_user(self, payload: bytes) -> list[Any]:
        return self._on_serf(payload)

    def _on_serf(self, payload: bytes) -> list[Any]:
        if payload[:1] == bytes([SERF_RELAY]):  # forward the inner Serf message to where the relay header says
            host, port, inner = decode_relay(payload[1:])
            self.relayed += 1
            return [Send(host, port, MessageType.USER, {"payload": inner})]
        serf_type, body = decode_serf_message(payload)
        if serf_type == SERF_QUERY:
            host = ip_text(bytes(body.get("Addr") or b""))
            nodes, tags = decode_query_filters(body.get("Filters"))
            if host is None:
                return []  # no address to answer to
            q = QueryIn(int(body["LTime"]), int(body["ID"]), host, int(body["Port"]),
                        text(body.get("SourceNode", b"")), text(body["Name"]), bytes(body.get("Payload") or b""),
                        int(body.get("Timeout") or 0) / 1e9, nodes, tags,
                        bool(int(body.get("Flags") or 0) & QUERY_FLAG_ACK), int(body.get("RelayFactor") or 0))
            if q.relay_factor:
                self._relay_factors[(q.ltime, q.id)] = q.relay_factor
                while len(self._relay_factors) > RELAY_MEMORY:
                    self._relay_factors.popitem(last=False)
            return [q]
        if serf_type == SERF_QUERY_RESPONSE:
            flags = int(body.get("Flags") or 0)
            return [QueryResponseIn(int(body["LTime"]), int(body["ID"]), text(body["From"]),
                                    bytes(body.get("Payload") or b""), bool(flags & QUERY_FLAG_ACK))]
        if serf_type in (SERF_JOIN, SERF_LEAVE):  # an agent's intent: witness its Lamport time
            self.ltime = max(self.ltime, int(body["LTime"]))
            return []
        if serf_type != SERF_USER_EVENT:
            return []  # key requests come as queries, relays are unwrapped before here; conflict answers: not handled
        ltime = int(body["LTime"])
        self.event_ltime = max(self.event_ltime, ltime)
        return [Deliver(ltime, text(body["Name"]), bytes(body.get("Payload") or b""), bool(body.get("CC", False)))]

    def query(self, ltime: int, qid: int, timeout_s: float, name: str, payload: bytes, *,
              filter_nodes: list[str] | None = None, filter_tags: dict[str, str] | None = None,
              relay_factor: int = 0, ack: bool = False) -> list[Send]:
        """Our Serf query to every live agent; they answer to our memberlist address, only those the filters
        match, each answer also through ``relay_factor`` other members."""
        msg = serf_query(ltime, qid, self.addr, self.port, self.name, timeout_s, name, payload, ack=ack,
                         filters=encode_query_filters(filter_nodes, filter_tags), relay_factor=relay_factor)
        return self._to_all(MessageType.USER, {"payload": msg})

    def query_response(self, host: str, port: int, ltime: int, qid: int, node: str, payload: bytes,
                       ack: bool = False) -> list[Send]:
        """An answer (or ack) to the query ``(ltime, qid)`` at ``host:port``, plus, if that query asked for a
        relay factor k and the cluster has more than k members, the same answer wrapped in a
        ``messageRelay`` to k random other live members of protocol 5 (Serf's ``relayResponse``)."""
        msg = serf_query_response(ltime, qid, node, payload, ack=ack)
        out = [Send(host, port, MessageType.USER, {"payload": msg})]
        k = self._relay_factors.get((ltime, qid), 0)
        dest = self._addr_bytes(host)
        if k and len(self.members) + 1 >= k + 1 and dest is not None:
            relay = serf_relay(dest, port, msg)
            cands = [m for m in self.members.values()
                     if m.status is MemberStatus.ALIVE and len(m.vsn) > 1 and m.vsn[1] >= 5]
            for m in self.rng.sample(cands, min(k, len(cands))):
                out.append(Send(m.host, m.port, MessageType.USER, {"payload": relay}))
                self.relays_sent += 1
        return out

    @staticmethod
    def _addr_bytes(host: str) -> bytes | None:
        """A text address back to memberlist's 4 or 16 bytes."""
        try:
            return ipaddress.ip_address(host).packed
        except ValueError:
            return None

    def user_event(self, ltime: int, name: str, payload: bytes, coalesce: bool) -> list[Send]:
        """Our Serf user event (stamped by the node's Serf clock), to every live memberlist member."""
        ltime = max(ltime, self.event_ltime + 1)  # never older than what the agents have seen
        self.event_ltime = ltime
        return self._to_all(MessageType.USER, {"payload": serf_user_event(ltime, name, payload, coalesce)})

    # --------------------------------------------------------------------------------------- push-pull
    def local_state(self, join: bool = False) -> PushPull:
        return PushPull(self.local_nodes(), serf_push_pull_state(self.ltime, self.event_ltime), join)

    def merge(self, remote: PushPull, now: float) -> list[Send]:
        if remote.user_state[:1] == bytes([SERF_PUSH_PULL]):
            try:
                _, state = decode_serf_message(remote.user_state)
                self.event_ltime = max(self.event_ltime, int(state.get("EventLTime") or 0))
                self.ltime = max(self.ltime, int(state.get("LTime") or 0))
            except (WireError, ValueError, TypeError):
                pass  # the member list still merges; only the clocks stay as they were
        return self.merge_nodes(remote, now)
