"""memberlist's wire protocol as a second wire format of our SWIM core: a translation layer, sans I/O.

Why: memberlist (what ``serf agent`` runs) *is* SWIM with Lifeguard -- probe round robin, indirect
pings with nacks, suspicion with confirmations, refutation by incarnation, gossip with a bounded
retransmit queue, push-pull anti-entropy. ``rustyray.membership.swim.SwimNode`` already decides all of
that, so a memberlist member is a ``SwimNode`` plus this module, which only translates:

* memberlist names are SWIM node ids; a member's memberlist address (4 or 16 bytes + port) travels as
  its SWIM ``tcp_address`` (``"<addr hex>/<port>"``), and its Meta (Serf's encoded tags) and protocol
  versions (``Vsn``) as its SWIM ``meta`` (hex), so SWIM's incarnation rules carry them unchanged;
* packets in: ``ping`` -> ``SwimPing`` (a ping naming nobody names us; one naming another member is
  ignored by the core, so an agent restarted under a new name is not taken for the old one),
  ``ack``/``nack`` -> ``SwimAck``/``SwimNack``, ``indirect ping`` -> ``SwimPingReq``, ``alive`` /
  ``suspect`` -> ``SwimAlive``/``SwimSuspect``, ``dead`` -> ``SwimDead``, or ``SwimLeft`` when its
  ``From`` is the member itself (memberlist's graceful leave);
* packets out: the reverse, each piggybacked update as its own message (the adapter packs the messages
  for one address into compound packets); a SWIM push-pull becomes ``PushPullWith`` (memberlist's is a
  TCP exchange the adapter runs), and the adapter's exchange feeds ``merge`` / ``local_state``;
* a sender that is not (yet) a member -- the requester of an indirect ping, a target given by address --
  gets a placeholder id that carries its address (``"\\x00<addr hex>/<port>/<name>"``).

Knob the SWIM core needed (``SwimConfig.merge_rebroadcast``): memberlist re-gossips every member a
push-pull taught it. Everything else is configuration: a full-state push-pull (no digests), no Serf-style
reconnects (Serf's, on top of memberlist, are not modelled), suspicion min = ``suspicion_timeout`` (scaled
by log10 n past 10 members, as memberlist's ``suspicionTimeout``), Lifeguard's max = that times
``suspicion_max_timeout_mult``. The Serf layer (user events, queries, relays, intents, Lamport clocks)
is ``memberlist_core.MemberlistCore``, a subclass.
"""

from __future__ import annotations

import enum
import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from rustyray.autodiscovery.memberlist_wire import (
    DEFAULT_VSN,
    MessageType,
    NodeState,
    PushNodeState,
    PushPull,
    WireError,
    decode_tags,
    encode_tags,
    ip_text,
    text,
)
from rustyray.membership.swim import (
    MemberInfo,
    MemberState,
    SwimAck,
    SwimAlive,
    SwimConfig,
    SwimDead,
    SwimGossip,
    SwimLeft,
    SwimMemberState,
    SwimNack,
    SwimNode,
    SwimPing,
    SwimPingReq,
    SwimPushPull,
    SwimSuspect,
)

__all__ = ["INDIRECT_CHECKS", "Member", "MemberStatus", "MemberlistConfig", "MemberlistSwim", "PushPullWith",
           "Reply", "Send"]

INDIRECT_CHECKS = 3
"""Members asked to ping a target whose direct probe went unanswered (memberlist's DefaultLANConfig)."""

_PLACEHOLDER = "\x00"
_REPLY = "\x00reply"  # the sender of a packet that came without a source address: answers are Replies


class MemberStatus(enum.Enum):
    """Serf's spellings (``serf members``), one per SWIM ``MemberState``."""

    ALIVE = "alive"
    SUSPECT = "suspect"
    FAILED = "failed"
    LEFT = "left"


_STATUS = {MemberState.ALIVE: MemberStatus.ALIVE, MemberState.SUSPECT: MemberStatus.SUSPECT,
           MemberState.DEAD: MemberStatus.FAILED, MemberState.LEFT: MemberStatus.LEFT}
_TO_NODE_STATE = {MemberState.ALIVE: NodeState.ALIVE, MemberState.SUSPECT: NodeState.SUSPECT,
                  MemberState.DEAD: NodeState.DEAD, MemberState.LEFT: NodeState.LEFT}
_FROM_NODE_STATE = {v: k for k, v in _TO_NODE_STATE.items()}
_FROM_STATUS = {v: k for k, v in _STATUS.items()}


@dataclass(frozen=True)
class MemberlistConfig:
    probe_interval: float = 1.0
    """Seconds between two probes (memberlist's DefaultLANConfig ProbeInterval)."""
    probe_timeout: float = 0.5
    """Seconds to wait for a probe's ack (DefaultLANConfig ProbeTimeout)."""
    suspicion_timeout: float = 5.0
    """Seconds from suspect to dead when enough other members confirm the suspicion (Lifeguard's min;
    memberlist scales it with log10 N past 10 members). At least ``probe_interval``."""
    suspicion_max_timeout_mult: int = 6
    """Lifeguard: a suspicion nobody confirms runs this many times ``suspicion_timeout``
    (memberlist's SuspicionMaxTimeoutMult); confirmations from other members bring it down to the min.
    With fewer members than confirmations needed (``suspicion_timeout / probe_interval - 2``) it is min."""
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
        if self.suspicion_timeout < self.probe_interval:
            raise ValueError("suspicion_timeout must be >= probe_interval")
        if self.suspicion_max_timeout_mult < 1:
            raise ValueError("suspicion_max_timeout_mult must be >= 1")
        if self.gossip_interval <= 0 or self.gossip_nodes < 1 or self.retransmit_mult < 1:
            raise ValueError("gossip_interval must be > 0, gossip_nodes and retransmit_mult >= 1")
        if self.push_pull_interval < 0:
            raise ValueError("push_pull_interval must be >= 0")
        if len(self.label.encode()) > 255:
            raise ValueError("label must be at most 255 bytes")

    def swim(self) -> SwimConfig:
        """The SWIM core's configuration that behaves as memberlist with these settings."""
        return SwimConfig(
            probe_interval=self.probe_interval, probe_timeout=self.probe_timeout, indirect_checks=INDIRECT_CHECKS,
            suspicion_mult=self.suspicion_timeout / self.probe_interval,
            suspicion_max_timeout_mult=self.suspicion_max_timeout_mult, retransmit_mult=self.retransmit_mult,
            gossip_interval=self.gossip_interval, gossip_nodes=self.gossip_nodes,
            push_pull_interval=self.push_pull_interval, digest_bucket_size=0, reconnect_interval=0.0,
            merge_rebroadcast=True)


@dataclass
class Member:
    """One other member as memberlist knows it (a view of the SWIM core's record)."""

    name: str
    addr: bytes
    port: int
    meta: bytes
    incarnation: int
    status: MemberStatus
    vsn: tuple[int, ...] = DEFAULT_VSN

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


def _where(addr: bytes, port: int) -> str:
    return f"{addr.hex()}/{port}"


def _unwhere(where: str) -> tuple[bytes, int]:
    addr, _, port = where.partition("/")
    try:
        return bytes.fromhex(addr), int(port or 0)
    except ValueError:
        return b"", 0


def _swim_meta(meta: bytes, vsn: tuple[int, ...] | bytes | None) -> dict[str, str]:
    return {"meta": meta.hex(), "vsn": bytes(vsn or DEFAULT_VSN).hex()}


def _wire_meta(meta: dict[str, str] | Any) -> tuple[bytes, bytes]:
    """(Meta, Vsn) of a SWIM meta map written by ``_swim_meta``."""
    try:
        return bytes.fromhex(meta.get("meta", "")), bytes.fromhex(meta.get("vsn", "")) or bytes(DEFAULT_VSN)
    except ValueError:
        return b"", bytes(DEFAULT_VSN)


def _packed(host: str) -> bytes | None:
    try:
        return ipaddress.ip_address(host).packed
    except ValueError:
        return None


def _member(info: MemberInfo) -> Member:
    addr, port = _unwhere(info.tcp_address)
    meta, vsn = _wire_meta(info.meta)
    return Member(info.node_id, addr, port, meta, info.incarnation, _STATUS[info.state], tuple(vsn))


class MemberlistSwim:
    """One member of a memberlist cluster: a ``SwimNode`` and the translation to and from memberlist."""

    def __init__(self, name: str, addr: bytes, port: int, tags: dict[str, str],
                 config: MemberlistConfig | None = None, rng: random.Random | None = None, now: float = 0.0) -> None:
        self.name, self.addr, self._port, self.tags = name, addr, port, dict(tags)
        self.config = config or MemberlistConfig()
        self.rng = rng or random.Random()
        self._now = now
        self._announced = False
        self.swim = SwimNode(name, self.config.swim(), rng=self.rng, now=now, tcp_address=_where(addr, port),
                             meta=_swim_meta(self.meta, DEFAULT_VSN))

    # ---------------------------------------------------------------------------------- our own state
    @property
    def port(self) -> int:
        return self._port

    @port.setter
    def port(self, port: int) -> None:
        """The adapter learns its port once bound (before the first tick announces us)."""
        self._port = port
        self.swim.tcp_address = _where(self.addr, port)

    @property
    def meta(self) -> bytes:
        return encode_tags(self.tags)

    @property
    def incarnation(self) -> int:
        return self.swim.incarnation

    @property
    def left(self) -> bool:
        return self.swim.leaving

    def me(self) -> PushNodeState:
        return PushNodeState(self.name, self.addr, self.port, self.meta, self.incarnation,
                             NodeState.LEFT if self.left else NodeState.ALIVE)

    # ------------------------------------------------------------------------------------------ members
    @property
    def members(self) -> dict[str, Member]:
        """Every other member, by name."""
        return {i.node_id: _member(i) for i in self.swim.members() if i.node_id != self.name}

    def _live(self) -> list[Member]:
        return [m for m in self.members.values() if m.status in (MemberStatus.ALIVE, MemberStatus.SUSPECT)]

    def _to_all(self, kind: MessageType, body: dict[str, Any]) -> list[Send]:
        return [Send(m.host, m.port, kind, body) for m in self._live()]

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

    # ------------------------------------------------------------------------------------------ ids
    def _id_at(self, host: str, port: int, name: str = "") -> str:
        """The SWIM id of whoever is at ``host:port``: the member there, else a placeholder."""
        addr = _packed(host)
        if addr is None:
            return _REPLY
        where = _where(addr, port)
        for i in self.swim.members():
            if i.tcp_address == where and i.node_id != self.name and (not name or name == i.node_id):
                return i.node_id
        return f"{_PLACEHOLDER}{where}/{name}"

    def _dest(self, node_id: str) -> tuple[bytes, int, str] | None:
        """(addr, port, name) a SWIM id stands for; None for one we cannot reach."""
        if node_id.startswith(_PLACEHOLDER):
            where, _, name = node_id[1:].rpartition("/")
            addr, port = _unwhere(where)
            return (addr, port, name) if addr else None
        info = self.swim.member(node_id)
        if info is None or not info.tcp_address:
            return None
        addr, port = _unwhere(info.tcp_address)
        return (addr, port, node_id) if addr else None

    # ------------------------------------------------------------------------------------------ packets
    def on_packet(self, kind: MessageType, body: dict[str, Any], now: float,
                  source: tuple[str, int] | None = None) -> list[Any]:
        """One decoded UDP message from ``source`` (host, port); ``WireError`` for a body that lacks what its
        type needs."""
        self._now = now
        try:
            if kind is MessageType.USER:
                return self._on_user(body["payload"])
            sender = _REPLY if source is None else self._id_at(source[0], source[1])
            msg, from_id = self._inbound(kind, body, sender, source)
        except (KeyError, ValueError, TypeError) as exc:
            raise WireError(f"bad {kind.name} body: {exc}") from None
        if msg is None:
            return []
        self.swim.receive(from_id, msg, now)
        return self._drain(reply_to=sender if from_id == sender else None)

    def _inbound(self, kind: MessageType, body: dict[str, Any], sender: str,
                 source: tuple[str, int] | None) -> tuple[Any, str]:
        """The SWIM message a memberlist message means, and whom it is from."""
        if kind is MessageType.PING:
            return SwimPing(seq=int(body["SeqNo"]), target=text(body.get("Node", b"")) or self.name), sender
        if kind is MessageType.ACK:
            return SwimAck(seq=int(body["SeqNo"])), sender
        if kind is MessageType.NACK:
            return SwimNack(seq=int(body["SeqNo"])), sender
        if kind is MessageType.INDIRECT_PING:
            return self._indirect(body, sender, source)
        if kind is MessageType.ALIVE:
            addr = bytes(body.get("Addr") or b"")
            vsn = body.get("Vsn")
            return SwimAlive(node_id=text(body["Node"]), incarnation=int(body["Incarnation"]),
                             tcp_address=_where(addr, int(body.get("Port") or 0)),
                             meta=_swim_meta(bytes(body.get("Meta") or b""),
                                             vsn if isinstance(vsn, bytes) and vsn else None)), sender
        if kind is MessageType.SUSPECT:
            return SwimSuspect(node_id=text(body["Node"]), incarnation=int(body["Incarnation"]),
                               from_id=text(body.get("From", b""))), sender
        if kind is MessageType.DEAD:
            node, src = text(body["Node"]), text(body.get("From", b""))
            if node == src:  # a dead from the member itself: memberlist's graceful leave
                return SwimLeft(node_id=node, incarnation=int(body["Incarnation"])), sender
            return SwimDead(node_id=node, incarnation=int(body["Incarnation"]), from_id=src), sender
        return None, sender

    def _indirect(self, body: dict[str, Any], sender: str, source: tuple[str, int] | None) -> tuple[Any, str]:
        """memberlist's indirect probe: the requester (``SourceAddr``/``SourcePort`` in newer memberlist, else
        the packet's sender) gets the ack, or a nack, under its own seq; the target is named and addressed."""
        src_host = ip_text(bytes(body.get("SourceAddr") or b""))
        if src_host is not None and body.get("SourcePort"):
            requester = self._id_at(src_host, int(body["SourcePort"]))
        elif source is not None:
            requester = sender
        else:
            return None, sender
        target_host = ip_text(bytes(body.get("Target") or b""))
        if target_host is None:
            return None, sender  # no address to ping
        name = text(body.get("Node", b""))
        target = self.name if name == self.name else self._id_at(target_host, int(body["Port"]), name)
        return SwimPingReq(seq=int(body["SeqNo"]), target=target, nack=bool(body.get("Nack", False))), requester

    def _on_user(self, payload: bytes) -> list[Any]:
        """A memberlist user message (Serf's layer, in the subclass)."""
        return []

    # ------------------------------------------------------------------------------------------ out
    def _drain(self, reply_to: str | None = None) -> list[Any]:
        """The SWIM core's outbox as memberlist actions; its events are not needed (``members`` is read)."""
        self.swim.drain_events()
        out: list[Any] = []
        for to_id, msg in self.swim.outbox():
            if type(msg) is SwimPushPull:
                dest = None if msg.reply else self._dest(to_id)  # (a reply is the stream's answer, sent by the adapter)
                if dest is not None:
                    out.append(PushPullWith(ip_text(dest[0]) or dest[0].hex(), dest[1]))
                continue
            if to_id == reply_to:
                out += [Reply(kind, body) for kind, body in self._wire(msg)]
                continue
            dest = self._dest(to_id)
            if dest is None:
                continue
            host = ip_text(dest[0]) or dest[0].hex()
            out += [Send(host, dest[1], kind, body) for kind, body in self._wire(msg)]
        return out

    def _wire(self, msg: Any) -> list[tuple[MessageType, dict[str, Any]]]:
        """A SWIM message as memberlist messages: the message itself, then each piggybacked update."""
        t = type(msg)
        head: list[tuple[MessageType, dict[str, Any]]] = []
        if t is SwimPing:
            dest = self._dest(msg.target)
            head = [(MessageType.PING, {"SeqNo": msg.seq, "Node": dest[2] if dest else msg.target})]
        elif t is SwimAck:
            head = [(MessageType.ACK, {"SeqNo": msg.seq, "Payload": b""})]
        elif t is SwimNack:
            head = [(MessageType.NACK, {"SeqNo": msg.seq})]
        elif t is SwimPingReq:
            dest = self._dest(msg.target)
            if dest is None:
                return []
            head = [(MessageType.INDIRECT_PING, {"SeqNo": msg.seq, "Target": dest[0], "Port": dest[1], "Node": dest[2],
                                                 "Nack": msg.nack, "SourceAddr": self.addr, "SourcePort": self.port,
                                                 "SourceNode": self.name})]
        elif t is not SwimGossip:
            return [self._update(msg)]
        return head + [self._update(u) for u in msg.updates]

    @staticmethod
    def _update(u: Any) -> tuple[MessageType, dict[str, Any]]:
        if type(u) is SwimAlive:
            addr, port = _unwhere(u.tcp_address)
            meta, vsn = _wire_meta(u.meta)
            return MessageType.ALIVE, {"Incarnation": u.incarnation, "Node": u.node_id, "Addr": addr, "Port": port,
                                       "Meta": meta, "Vsn": vsn}
        if type(u) is SwimSuspect:
            return MessageType.SUSPECT, {"Incarnation": u.incarnation, "Node": u.node_id, "From": u.from_id}
        if type(u) is SwimDead:
            return MessageType.DEAD, {"Incarnation": u.incarnation, "Node": u.node_id, "From": u.from_id}
        return MessageType.DEAD, {"Incarnation": u.incarnation, "Node": u.node_id, "From": u.node_id}  # SwimLeft

    # ---------------------------------------------------------------------------------------- timers
    def tick(self, now: float) -> list[Send | PushPullWith]:
        """Run the SWIM core's timers (probes, indirect probes, suspicion, gossip, push-pull); the first tick
        announces us (our alive, once the adapter knows our port)."""
        self._now = now
        if not self._announced and not self.left:
            self._announced = True
            self.swim.set_meta(now, tcp_address=_where(self.addr, self.port), meta=_swim_meta(self.meta, DEFAULT_VSN))
        self.swim.tick(now)
        return self._drain()

    def next_deadline(self) -> float | None:
        """When ``tick`` next has work (the SWIM core's earliest timer); tick then, not later."""
        return self.swim.next_deadline()

    def leave_dead(self) -> list[Send]:
        """A graceful leave: a ``dead`` about ourselves from ourselves, to every live member at once (and
        gossiped by the core while it still ticks)."""
        self.swim.leave(self._now)
        return self._to_all(MessageType.DEAD, {"Incarnation": self.incarnation, "Node": self.name, "From": self.name})

    # --------------------------------------------------------------------------------------- push-pull
    def local_nodes(self) -> list[PushNodeState]:
        return [self.me()] + [PushNodeState(m.name, m.addr, m.port, m.meta, m.incarnation,
                                            _TO_NODE_STATE[_FROM_STATUS[m.status]], m.vsn)
                              for m in self.members.values()]

    def merge_nodes(self, remote: PushPull, now: float) -> list[Send]:
        """memberlist's ``mergeState`` through the SWIM core: alive by incarnation, a remote dead or suspect
        only suspects (an unknown one is ignored), a remote left is a leave."""
        self._now = now
        states = tuple(SwimMemberState(node_id=n.name, incarnation=n.incarnation,
                                       state=_FROM_NODE_STATE[n.state].value, tcp_address=_where(n.addr, n.port),
                                       meta=_swim_meta(n.meta, n.vsn or None)) for n in remote.nodes)
        self.swim.receive(f"{_PLACEHOLDER}push-pull", SwimPushPull(states=states, reply=True), now)
        return [a for a in self._drain() if isinstance(a, Send)]
