"""A memberlist (Serf) member, sans I/O: the member table, what to answer, when to probe and suspect.

Why: so a RustyRay node can be a member of a real Serf cluster (``serf members`` lists it, with its tags)
and list Serf agents as members itself (NETWORKING-029). The wire format is ``memberlist_wire``; the
sockets are ``memberlist_adapter``. This core takes decoded messages and the time and returns
``Send`` / ``Reply`` actions; it never reads a clock or touches a socket.

Theory of operation
-------------------
memberlist's rules, as its ``state.go`` applies them, reduced to what a member needs to stay in:

* Members are keyed by name with ``(incarnation, state)``. ``alive`` with a higher incarnation (or
  the first news of a member) wins; ``suspect`` / ``dead`` win over alive at the same or a higher
  incarnation. A ``dead`` whose ``From`` is the member itself is a graceful leave: state ``left``.
* News about ourselves that is not alive (someone suspects us) is refuted: our incarnation goes past
  theirs and an ``alive`` goes to every member we know (memberlist's ``refute``).
* A ``ping`` naming us (or nobody) is answered with an ``ack`` of its ``SeqNo``; a ping for another
  name is ignored (an agent restarted under a new name must not be taken for the old one).
* Every ``probe_interval`` one member (round robin over a shuffled list) is pinged; an ``ack`` within
  ``probe_timeout`` clears it. Without one, up to ``INDIRECT_CHECKS`` other members are asked to ping it
  (``indirect ping``; their relayed ack clears it too) until the end of the probe interval; only then
  does it turn ``suspect``, and ``suspicion_timeout`` later ``dead``.
  Suspicion is gossiped, as memberlist does, so the others can refute or confirm it.
* A push-pull (TCP state exchange, and a join) merges the remote member list with these rules and is
  answered with our own list. Every ``push_pull_interval`` (scaled up past 32 members, as memberlist's
  ``pushPullScale``) one random live member gets a push-pull (``PushPullWith``): the anti-entropy that
  repairs whatever gossip missed.
* News that changed our table (a new member, a higher incarnation, suspect, dead, left) is queued and,
  every ``gossip_interval``, relayed to ``gossip_nodes`` random live members, each item at most
  ``retransmit_mult * ceil(log10(N + 1))`` times (memberlist's ``TransmitLimitedQueue``); newer news about a
  member replaces older. Without this relay, an agent that the originator's few gossip picks happened to
  miss would not learn of a member until the next push-pull, 30 s later.
* Serf queries carry filters (node names, tag regexps) and a relay factor k. Our own queries encode
  them (``query``); an agent's are decoded into ``QueryIn`` for the node's Serf layer, which answers
  only when they match. Every answer we send to an agent's query with k > 0 also goes through k random
  other live members as a ``messageRelay`` (Serf's ``relayResponse``: only when the cluster has more
  than k members), and a ``messageRelay`` an agent sends us is forwarded to its ``DestAddr``, so an
  answer survives a lossy path between two members.
"""

from __future__ import annotations

import collections
import enum
import ipaddress
import math
import random
from dataclasses import dataclass, field
from typing import Any

from rustyray.autodiscovery.memberlist_wire import (
    DEFAULT_VSN,
    QUERY_FLAG_ACK,
    SERF_JOIN,
    SERF_LEAVE,
    SERF_PUSH_PULL,
    SERF_QUERY,
    SERF_QUERY_RESPONSE,
    SERF_RELAY,
    SERF_USER_EVENT,
    MessageType,
    NodeState,
    PushNodeState,
    PushPull,
    WireError,
    decode_query_filters,
    decode_relay,
    decode_serf_message,
    decode_tags,
    encode_query_filters,
    encode_tags,
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

__all__ = ["Deliver", "MemberStatus", "MemberlistConfig", "MemberlistCore", "PushPullWith", "QueryIn",
           "QueryResponseIn", "Reply", "Send"]


RELAY_MEMORY = 512
"""Agent queries whose relay factor we remember, to relay our answers to them (Serf's QueryBuffer is 512)."""

INDIRECT_CHECKS = 3
"""Members asked to ping a target whose direct probe went unanswered (memberlist's DefaultLANConfig)."""


class MemberStatus(enum.Enum):
    """Serf's spellings (``serf members``)."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    FAILED = "failed"
    LEFT = "left"


_FROM_STATE = {NodeState.ALIVE: MemberStatus.ALIVE, NodeState.SUSPECT: MemberStatus.SUSPECT,
               NodeState.DEAD: MemberStatus.FAILED, NodeState.LEFT: MemberStatus.LEFT}
_TO_STATE = {v: k for k, v in _FROM_STATE.items()}


@dataclass(frozen=True)
class MemberlistConfig:
    probe_interval: float = 1.0
    """Seconds between two probes (memberlist's DefaultLANConfig ProbeInterval)."""
    probe_timeout: float = 0.5
    """Seconds to wait for a probe's ack (DefaultLANConfig ProbeTimeout)."""
    suspicion_timeout: float = 5.0
    """Seconds from suspect to dead when nobody refutes (memberlist scales this with log N from 4 s)."""
    gossip_interval: float = 0.2
    """Seconds between two gossip rounds that relay queued news (DefaultLANConfig GossipInterval)."""
    gossip_nodes: int = 3
    """Random live members each gossip round goes to (DefaultLANConfig GossipNodes)."""
    retransmit_mult: int = 4
    """An item of news is relayed ``retransmit_mult * ceil(log10(N + 1))`` times (DefaultLANConfig)."""
    push_pull_interval: float = 30.0
    """Seconds between two periodic push-pulls with a random member (DefaultLANConfig); 0 turns them off."""
    compression: bool = True
    """memberlist's EnableCompression (on in Serf's agent unless ``-disable-compression``): LZW-compress a
    packet when that makes it smaller, and every push-pull."""
    label: str = ""
    """memberlist's cluster label (0.3+; 1..255 bytes, "" for none): every packet and dialled stream carries
    it, anything with another label (or none) is dropped, and encryption authenticates it. Agents older
    than memberlist 0.3 (serf 0.8) know no labels and drop what carries one."""

    def __post_init__(self) -> None:
        if not 0 < self.probe_timeout < self.probe_interval:
            raise ValueError("probe_timeout must be > 0 and < probe_interval")
        if self.suspicion_timeout <= 0:
            raise ValueError("suspicion_timeout must be > 0")
        if self.gossip_interval <= 0 or self.gossip_nodes < 1 or self.retransmit_mult < 1:
            raise ValueError("gossip_interval must be > 0, gossip_nodes and retransmit_mult >= 1")
        if self.push_pull_interval < 0:
            raise ValueError("push_pull_interval must be >= 0")
        if len(self.label.encode()) > 255:
            raise ValueError("label must be at most 255 bytes")


@dataclass
class Member:
    name: str
    addr: bytes
    port: int
    meta: bytes
    incarnation: int
    status: MemberStatus
    vsn: tuple[int, ...] = DEFAULT_VSN
    suspect_since: float | None = None

    @property
    def host(self) -> str:
        return ip_text(self.addr) or self.addr.hex()

    def view(self) -> dict[str, Any]:
        where = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return {"name": self.name, "address": where, "status": self.status.value,
                "tags": decode_tags(self.meta), "incarnation": self.incarnation}


@dataclass(frozen=True)
class Send:
    """Send a message as a UDP packet to ``host:port``: ``kind`` and its msgpack ``body``, or, for a user
    message, ``body["payload"]`` as it is."""

    host: str
    port: int
    kind: MessageType
    body: dict[str, Any]


@dataclass(frozen=True)
class PushPullWith:
    """Exchange state over TCP with the member at ``host:port`` (the periodic push-pull)."""

    host: str
    port: int


@dataclass(frozen=True)
class Reply:
    """Answer the packet or stream this came from with ``kind`` / ``body``."""

    kind: MessageType
    body: dict[str, Any]


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


@dataclass
class _Probe:
    target: str
    seq: int
    deadline: float
    started: float = 0.0
    indirect: bool = False  # the direct ping timed out and others were asked to ping the target


@dataclass
class _Broadcast:
    """One item of news queued for gossip and how often it went out."""

    kind: MessageType
    body: dict[str, Any]
    transmits: int = 0


@dataclass
class _Relay:
    """An indirect ping we run for a requester: its ack (or nack) goes back under the requester's seq."""

    host: str
    port: int
    seq: int
    deadline: float
    nack: bool


@dataclass
class MemberlistCore:
    """One member's view of a memberlist cluster."""

    name: str
    addr: bytes
    port: int
    tags: dict[str, str]
    config: MemberlistConfig = field(default_factory=MemberlistConfig)
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.incarnation = 1
        self.ltime = 1  # Serf's Lamport clock, for the intents we send
        self.event_ltime = 0  # the highest Serf event time seen (a push-pull's EventLTime, events)
        self.members: dict[str, Member] = {}
        self._seq = 0
        self._order: list[str] = []
        self._probe: _Probe | None = None
        self._relays: dict[int, _Relay] = {}  # our seq -> the indirect ping it answers
        self._next_probe = 0.0
        self._broadcasts: dict[str, _Broadcast] = {}  # member name -> the latest news about it, to relay
        self._next_gossip = 0.0
        self._next_push_pull: float | None = None  # set on the first tick: one interval after it
        self._announced = False
        self.left = False
        self._relay_factors: collections.OrderedDict[tuple[int, int], int] = collections.OrderedDict()
        self.relayed = 0  # messageRelays forwarded for agents
        self.relays_sent = 0  # our answers sent through other members (a query's relay factor)

    # ---------------------------------------------------------------------------------- our own state
    @property
    def meta(self) -> bytes:
        return encode_tags(self.tags)

    def me(self) -> PushNodeState:
        return PushNodeState(self.name, self.addr, self.port, self.meta, self.incarnation,
                             NodeState.LEFT if self.left else NodeState.ALIVE)

    def _alive_body(self) -> dict[str, Any]:
        return {"Incarnation": self.incarnation, "Node": self.name, "Addr": self.addr, "Port": self.port,
                "Meta": self.meta, "Vsn": bytes(DEFAULT_VSN)}

    def _to_all(self, kind: MessageType, body: dict[str, Any]) -> list[Send]:
        return [Send(m.host, m.port, kind, body) for m in self._live()]

    def join_intent(self) -> list[Send]:
        """Serf's join intent after a join, to every live member, one Lamport tick past what we have seen."""
        self.ltime += 1
        return self._to_all(MessageType.USER, {"payload": serf_join_intent(self.name, self.ltime)})

    def leave(self) -> list[Send]:
        """A graceful leave: Serf's leave intent, then a ``dead`` about ourselves from ourselves; an agent
        that saw the intent shows the member as left, not failed."""
        self.left = True
        self.ltime += 1
        intent = self._to_all(MessageType.USER, {"payload": serf_leave_intent(self.name, self.ltime)})
        return intent + self._to_all(MessageType.DEAD, {"Incarnation": self.incarnation, "Node": self.name,
                                                        "From": self.name})

    # ------------------------------------------------------------------------------------------ members
    def _apply(self, name: str, incarnation: int, status: MemberStatus, now: float, *, addr: bytes = b"",
               port: int = 0, meta: bytes | None = None, vsn: tuple[int, ...] | None = None) -> list[Send]:
        if name == self.name:
            if status is MemberStatus.ALIVE or self.left:
                return []
            self.incarnation = max(self.incarnation, incarnation) + 1  # refute
            self._broadcasts[self.name] = _Broadcast(MessageType.ALIVE, self._alive_body())
            return self._to_all(MessageType.ALIVE, self._alive_body())
        m = self.members.get(name)
        if m is None:
            if status is not MemberStatus.ALIVE and not addr:
                return []  # news about a stranger we cannot reach
            m = self.members[name] = Member(name, addr, port, meta or b"", incarnation, status, vsn or DEFAULT_VSN,
                                            now if status is MemberStatus.SUSPECT else None)
            self._queue(m)
            return []
        if status is MemberStatus.ALIVE:
            if incarnation <= m.incarnation and m.status is not MemberStatus.ALIVE:
                return []
            if incarnation < m.incarnation:
                return []
        elif incarnation < m.incarnation:
            return []
        if status is MemberStatus.SUSPECT and m.status in (MemberStatus.FAILED, MemberStatus.LEFT):
            return []
        changed = (incarnation, status) != (m.incarnation, m.status) or (meta is not None and meta != m.meta)
        m.incarnation = incarnation
        m.status = status
        m.suspect_since = now if status is MemberStatus.SUSPECT else None
        if addr:
            m.addr, m.port = addr, port
        if meta is not None:
            m.meta = meta
        if vsn:
            m.vsn = vsn
        if changed:
            self._queue(m)
        return []

    # ------------------------------------------------------------------------------------------ gossip
    def _queue(self, m: Member) -> None:
        """Queue the news about ``m`` for relay; it replaces older news about the same member."""
        if m.status is MemberStatus.ALIVE:
            body = {"Incarnation": m.incarnation, "Node": m.name, "Addr": m.addr, "Port": m.port, "Meta": m.meta,
                    "Vsn": bytes(m.vsn)}
            self._broadcasts[m.name] = _Broadcast(MessageType.ALIVE, body)
        elif m.status is MemberStatus.SUSPECT:
            body = {"Incarnation": m.incarnation, "Node": m.name, "From": self.name}
            self._broadcasts[m.name] = _Broadcast(MessageType.SUSPECT, body)
        else:  # a leave is a dead from the member itself
            src = m.name if m.status is MemberStatus.LEFT else self.name
            body = {"Incarnation": m.incarnation, "Node": m.name, "From": src}
            self._broadcasts[m.name] = _Broadcast(MessageType.DEAD, body)

    def _live(self) -> list[Member]:
        return [m for m in self.members.values() if m.status in (MemberStatus.ALIVE, MemberStatus.SUSPECT)]

    def _gossip(self) -> list[Send]:
        """One gossip round: every queued item to ``gossip_nodes`` random live members; items that went out
        their retransmit limit times are dropped."""
        live = self._live()
        if not self._broadcasts or not live:
            return []
        limit = self.config.retransmit_mult * math.ceil(math.log10(len(self.members) + 2))
        out: list[Send] = []
        for target in self.rng.sample(live, min(self.config.gossip_nodes, len(live))):
            for name, b in list(self._broadcasts.items()):
                if name == target.name and b.kind is MessageType.ALIVE:
                    continue  # its own alive is no news to it (a suspicion is: it refutes it)
                out.append(Send(target.host, target.port, b.kind, b.body))
                b.transmits += 1
                if b.transmits >= limit:
                    del self._broadcasts[name]
        return out

    def _push_pull_due(self, now: float) -> list[PushPullWith]:
        """memberlist's periodic push-pull, its interval scaled by ``pushPullScale`` past 32 members."""
        interval = self.config.push_pull_interval
        if interval <= 0:
            return []
        n = len(self.members) + 1
        if n > 32:
            interval *= math.ceil(math.log2(n) - math.log2(32)) + 1
        if self._next_push_pull is None:
            self._next_push_pull = now + interval
        if now < self._next_push_pull:
            return []
        self._next_push_pull = now + interval
        live = [m for m in self.members.values() if m.status is MemberStatus.ALIVE]
        if not live:
            return []
        m = self.rng.choice(live)
        return [PushPullWith(m.host, m.port)]

    def wants_crc(self, host: str, port: int) -> bool:
        """Whether packets to ``host:port`` carry memberlist's CRC header: only a known member of protocol 5+
        reads it (``rawSendMsgPacket``); a stranger (a join target, say) gets none."""
        return any(m.port == port and m.host == host and len(m.vsn) > 1 and m.vsn[1] >= 5
                   for m in self.members.values())

    def view(self) -> list[dict[str, Any]]:
        """Every member, ourselves first, in Serf's spellings."""
        me = Member(self.name, self.addr, self.port, self.meta, self.incarnation,
                    MemberStatus.LEFT if self.left else MemberStatus.ALIVE)
        return [me.view()] + [m.view() for m in sorted(self.members.values(), key=lambda m: m.name)]

    def serf_rows(self, skip: set[str]) -> list[dict[str, Any]]:
        """The other members as rows of ``GET /autodiscovery/serf/members`` (``"wire": "memberlist"``), but
        for the names in ``skip`` (members the node's own Serf layer already lists)."""
        return [{"name": m.name, "addr": m.host, "port": m.port, "tags": decode_tags(m.meta), "status": m.status.value,
                 "incarnation": m.incarnation, "wire": "memberlist"}
                for m in sorted(self.members.values(), key=lambda m: m.name) if m.name not in skip]

    # ------------------------------------------------------------------------------------------ packets
    def on_packet(self, kind: MessageType, body: dict[str, Any], now: float,
                  source: tuple[str, int] | None = None) -> list[Send | Reply | Deliver | QueryIn | QueryResponseIn]:
        """One decoded UDP message from ``source`` (host, port); ``WireError`` for a body that lacks what its
        type needs."""
        try:
            if kind is MessageType.PING:
                target = text(body.get("Node", b""))
                if target and target != self.name:
                    return []
                return [Reply(MessageType.ACK, {"SeqNo": int(body["SeqNo"]), "Payload": b""})]
            if kind is MessageType.ACK:
                seq = int(body["SeqNo"])
                if self._probe is not None and seq == self._probe.seq:
                    self._probe = None
                relay = self._relays.pop(seq, None)
                if relay is not None:
                    return [Send(relay.host, relay.port, MessageType.ACK, {"SeqNo": relay.seq, "Payload": b""})]
                return []
            if kind is MessageType.INDIRECT_PING:
                return self._indirect(body, now, source)
            if kind is MessageType.ALIVE:
                vsn = body.get("Vsn")
                return list(self._apply(text(body["Node"]), int(body["Incarnation"]), MemberStatus.ALIVE, now,
                                        addr=bytes(body.get("Addr") or b""), port=int(body.get("Port") or 0),
                                        meta=bytes(body.get("Meta") or b""),
                                        vsn=tuple(vsn) if isinstance(vsn, bytes) else None))
            if kind is MessageType.SUSPECT:
                return list(self._apply(text(body["Node"]), int(body["Incarnation"]), MemberStatus.SUSPECT, now))
            if kind is MessageType.DEAD:
                node, src = text(body["Node"]), text(body.get("From", b""))
                status = MemberStatus.LEFT if node == src else MemberStatus.FAILED
                return list(self._apply(node, int(body["Incarnation"]), status, now))
            if kind is MessageType.USER:
                return self._on_serf(body["payload"])
        except (KeyError, ValueError, TypeError) as exc:
            raise WireError(f"bad {kind.name} body: {exc}") from None
        return []  # indirect pings, nacks: not handled yet

    def _indirect(self, body: dict[str, Any], now: float,
                  source: tuple[str, int] | None) -> list[Send | Reply | Deliver | QueryIn | QueryResponseIn]:
        """memberlist's indirect probe: ping ``Target`` for the requester and relay the ack (or a nack) to the
        request's ``SourceAddr``/``SourcePort`` (newer memberlist) or to the packet's sender (older)."""
        target = bytes(body.get("Target") or b"")
        src = bytes(body.get("SourceAddr") or b"")
        src_host, target_host = ip_text(src), ip_text(target)
        if src_host is not None and body.get("SourcePort"):
            back = (src_host, int(body["SourcePort"]))
        elif source is not None:
            back = source
        else:
            return []
        if target_host is None:
            return []  # no address to ping
        self._seq += 1
        self._relays[self._seq] = _Relay(back[0], back[1], int(body["SeqNo"]), now + self.config.probe_timeout,
                                         bool(body.get("Nack", False)))
        ping = {"SeqNo": self._seq, "Node": text(body.get("Node", b""))}
        return [Send(target_host, int(body["Port"]), MessageType.PING, ping)]

    def _on_serf(self, payload: bytes) -> list[Send | Reply | Deliver | QueryIn | QueryResponseIn]:
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
            return []  # key requests come as queries; relays and conflict answers: not handled yet
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
        nodes = [self.me()] + [PushNodeState(m.name, m.addr, m.port, m.meta, m.incarnation, _TO_STATE[m.status],
                                             m.vsn) for m in self.members.values()]
        return PushPull(nodes, serf_push_pull_state(self.ltime, self.event_ltime), join)

    def merge(self, remote: PushPull, now: float) -> list[Send]:
        if remote.user_state[:1] == bytes([SERF_PUSH_PULL]):
            try:
                _, state = decode_serf_message(remote.user_state)
                self.event_ltime = max(self.event_ltime, int(state.get("EventLTime") or 0))
                self.ltime = max(self.ltime, int(state.get("LTime") or 0))
            except (WireError, ValueError, TypeError):
                pass  # the member list still merges; only the clocks stay as they were
        out: list[Send] = []
        for n in remote.nodes:
            out += self._apply(n.name, n.incarnation, _FROM_STATE[n.state], now, addr=n.addr, port=n.port,
                               meta=n.meta, vsn=n.vsn or None)
        return out

    # ---------------------------------------------------------------------------------------- probing
    def tick(self, now: float) -> list[Send | PushPullWith]:
        """Timers: a probe that timed out suspects its target; suspicion that ran out kills; next probe;
        a gossip round; a periodic push-pull."""
        out: list[Send | PushPullWith] = []
        if not self._announced and not self.left:  # our own alive, once our port is known
            self._announced = True
            self._broadcasts[self.name] = _Broadcast(MessageType.ALIVE, self._alive_body())
        for seq, relay in list(self._relays.items()):  # indirect pings that got no ack in time
            if now >= relay.deadline:
                del self._relays[seq]
                if relay.nack:
                    out.append(Send(relay.host, relay.port, MessageType.NACK, {"SeqNo": relay.seq}))
        if self._probe is not None and now >= self._probe.deadline and not self._probe.indirect:
            helpers = self._indirect_helpers(self._probe.target)
            target = self.members.get(self._probe.target)
            if helpers and target is not None:  # memberlist: ask others before suspecting
                self._probe.indirect = True
                self._probe.deadline = self._probe.started + self.config.probe_interval
                req = {"SeqNo": self._probe.seq, "Target": target.addr, "Port": target.port, "Node": target.name,
                       "Nack": False, "SourceAddr": self.addr, "SourcePort": self.port, "SourceNode": self.name}
                out += [Send(h.host, h.port, MessageType.INDIRECT_PING, req) for h in helpers]
        if self._probe is not None and now >= self._probe.deadline:
            target = self.members.get(self._probe.target)
            self._probe = None
            if target is not None and target.status is MemberStatus.ALIVE:
                target.status, target.suspect_since = MemberStatus.SUSPECT, now
                out += self._to_all(MessageType.SUSPECT, {"Incarnation": target.incarnation, "Node": target.name,
                                                          "From": self.name})
        for m in self.members.values():
            if m.status is MemberStatus.SUSPECT and m.suspect_since is not None \
                    and now - m.suspect_since >= self.config.suspicion_timeout:
                m.status, m.suspect_since = MemberStatus.FAILED, None
                out += self._to_all(MessageType.DEAD, {"Incarnation": m.incarnation, "Node": m.name,
                                                       "From": self.name})
        if now >= self._next_probe and self._probe is None and not self.left:
            self._next_probe = now + self.config.probe_interval
            target = self._next_target()
            if target is not None:
                self._seq += 1
                self._probe = _Probe(target.name, self._seq, now + self.config.probe_timeout, started=now)
                out.append(Send(target.host, target.port, MessageType.PING, {"SeqNo": self._seq, "Node": target.name}))
        if now >= self._next_gossip and not self.left:
            self._next_gossip = now + self.config.gossip_interval
            out += self._gossip()
        if not self.left:
            out += self._push_pull_due(now)
        return out

    def _indirect_helpers(self, target: str, k: int = INDIRECT_CHECKS) -> list[Member]:
        """Up to ``k`` other alive members to ping ``target`` for us (memberlist's IndirectChecks)."""
        others = [m for n, m in self.members.items() if n != target and m.status is MemberStatus.ALIVE]
        self.rng.shuffle(others)
        return others[:k]

    def _next_target(self) -> Member | None:
        live = [m.name for m in self._live()]
        if not live:
            return None
        self._order = [n for n in self._order if n in live]
        if not self._order:
            self._order = live[:]
            self.rng.shuffle(self._order)
        return self.members[self._order.pop()]
