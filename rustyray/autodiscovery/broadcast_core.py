"""Signed UDP broadcast discovery: the sans-I/O core (NETWORKING-027).

Theory of operation
-------------------
A node that wants to be found sends one *announce* datagram to the configured broadcast
address and port. Every node of the same cluster listening there verifies it, records the
sender as a *candidate* peer (to be handed to SWIM as a seed) and answers with a unicast
*reply* to the datagram's source address. The announcer counts distinct replying nodes within
a short wait: that count is ``listeners_notified``. Beacons (``beacon.py``) reuse the same
packet format without the reply.

Authentication follows RFC 2104 (HMAC) with SHA-256 over a shared cluster secret. On the
wire a datagram is ``AutodiscSigned{cluster, body, mac}`` where ``body`` is the msgpack of an
``AutodiscAnnounce`` / ``AutodiscReply`` / ``AutodiscBeacon`` and
``mac = HMAC-SHA256(secret, DOMAIN || cluster || 0x00 || body)``. A receiver rejects, in this
order and cheapest first: undecodable envelopes, another cluster's name, a MAC that does not
verify (constant-time compare), a body whose cluster differs from the envelope, a timestamp
further than ``max_clock_skew_s`` from its own clock, and a nonce it already accepted within
the freshness window (replay). Only then is the body trusted.

Time: ``now`` is Unix time in seconds (freshness compares clocks of different hosts), always
passed in. Randomness (nonces) comes from an injected ``random.Random``; the adapter passes a
``random.SystemRandom`` so nonces are unpredictable.
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from rustyray.autodiscovery.errors import (
    AutodiscoveryConfigError,
    BadSignature,
    ForeignCluster,
    MalformedPacket,
    PacketRejected,
    ReplayedPacket,
    StalePacket,
)
from rustyray.protocol.messages import Message

__all__ = [
    "AutodiscAnnounce",
    "AutodiscBeacon",
    "AutodiscReply",
    "AutodiscSigned",
    "BroadcastConfig",
    "BroadcastCore",
    "Candidate",
    "CandidateSeen",
    "CandidateTable",
    "NodeIdentity",
    "PacketDropped",
    "SendDatagram",
    "derive_secret",
]

_DOMAIN = b"rustyray-autodisc-v1\x00"
_SECRET_DOMAIN = b"rustyray-autodiscovery-broadcast-v1\x00"
Address = tuple[str, int]


@dataclass(frozen=True, kw_only=True)
class BroadcastConfig:
    """Configuration of UDP broadcast discovery. Off by default: broadcasting is opt-in."""

    cluster_name: str
    """Name every packet carries; packets of other clusters are rejected before any crypto."""
    secret: bytes
    """Shared HMAC-SHA256 key (at least 16 bytes); nodes without it cannot announce or answer."""
    broadcast_address: str
    """Destination of announces and beacons, e.g. the subnet's directed broadcast address.
    Always configuration, never guessed (tests use 127.255.255.255 on loopback)."""
    port: int = 7947
    """UDP port listeners bind and announces go to."""
    enabled: bool = False
    """Whether the node runs broadcast discovery at all."""
    listen_address: str | None = None
    """Address the listening socket binds; None binds the broadcast address itself, which on
    Linux receives exactly the broadcasts for that subnet and nothing else."""
    unicast_bind_address: str = "0.0.0.0"
    """Address of the socket that sends announces/beacons and receives replies (port is ephemeral)."""
    max_clock_skew_s: float = 30.0
    """Seconds a packet's timestamp may differ from the receiver's clock; older/newer is stale.
    Also how long nonces are remembered for replay detection."""
    reply_wait_s: float = 0.5
    """Seconds the announcer waits for replies before reporting ``listeners_notified``."""
    nonce_cache_size: int = 4096
    """Accepted nonces remembered (oldest evicted first); bounds memory under a flood."""
    pending_announces: int = 16
    """Recent announces whose replies are still counted."""

    def validate(self) -> None:
        if not self.cluster_name:
            raise AutodiscoveryConfigError("cluster_name must not be empty")
        if len(self.secret) < 16:
            raise AutodiscoveryConfigError("secret must be at least 16 bytes")
        if not self.broadcast_address:
            raise AutodiscoveryConfigError("broadcast_address must be configured")
        if not 0 < self.port < 65536:
            raise AutodiscoveryConfigError("port must be in 1..65535")
        if self.max_clock_skew_s <= 0:
            raise AutodiscoveryConfigError("max_clock_skew_s must be > 0")
        if self.reply_wait_s < 0:
            raise AutodiscoveryConfigError("reply_wait_s must be >= 0")
        if self.nonce_cache_size < 1:
            raise AutodiscoveryConfigError("nonce_cache_size must be >= 1")
        if self.pending_announces < 1:
            raise AutodiscoveryConfigError("pending_announces must be >= 1")

    @classmethod
    def local(cls, cluster_name: str, secret: bytes, port: int) -> BroadcastConfig:
        """Loopback-only preset (tests, a single development host)."""
        return cls(
            cluster_name=cluster_name,
            secret=secret,
            broadcast_address="127.255.255.255",
            port=port,
            enabled=True,
            unicast_bind_address="127.0.0.1",
            reply_wait_s=0.3,
        )


# ---------------------------------------------------------------- wire structs


class AutodiscAnnounce(Message):
    """ "I am here": asks every listener for a signed reply."""

    node_id: str
    cluster: str
    tcp_addr: str
    timestamp: float
    nonce: bytes
    quic_addr: str | None = None


class AutodiscReply(Message):
    """Answer to an announce, unicast to the announce's source address."""

    node_id: str
    cluster: str
    tcp_addr: str
    timestamp: float
    nonce: bytes
    in_reply_to: bytes
    quic_addr: str | None = None


class AutodiscBeacon(Message):
    """Periodic presence; refreshes the candidate entry, never answered."""

    node_id: str
    cluster: str
    tcp_addr: str
    timestamp: float
    nonce: bytes
    seq: int
    quic_addr: str | None = None


class AutodiscSigned(Message):
    """Envelope: the cluster in clear (cheap rejection) and the HMAC over cluster and body."""

    cluster: str
    body: bytes
    mac: bytes


Body = AutodiscAnnounce | AutodiscReply | AutodiscBeacon
_envelope_decoder = msgspec.msgpack.Decoder(AutodiscSigned)
_body_decoder = msgspec.msgpack.Decoder(Body)
_encoder = msgspec.msgpack.Encoder()


def derive_secret(ca_pem: bytes) -> bytes:
    """The HMAC key every node of a cluster derives from the shared CA certificate when no secret
    is configured: SHA-256 over a domain label and the CA's PEM bytes."""
    return hashlib.sha256(_SECRET_DOMAIN + ca_pem).digest()


# ---------------------------------------------------------------- core data


@dataclass(frozen=True)
class NodeIdentity:
    """What this node advertises: its id and where its transports listen ("host:port")."""

    node_id: str
    tcp_addr: str
    quic_addr: str | None = None


@dataclass(frozen=True)
class Candidate:
    """A peer learned from a verified packet: a seed for the membership layer."""

    node_id: str
    tcp_addr: str
    quic_addr: str | None
    source: Address
    last_seen: float
    via: Literal["announce", "reply", "beacon"]


@dataclass(frozen=True)
class SendDatagram:
    """Action: send ``data`` from the unicast socket to ``addr``."""

    data: bytes
    addr: Address


@dataclass(frozen=True)
class CandidateSeen:
    """Action: a verified peer was heard from (new or refreshed)."""

    candidate: Candidate
    new: bool


@dataclass(frozen=True)
class PacketDropped:
    """Action: a datagram was refused; ``reason`` is a ``PacketRejected.reason`` label."""

    reason: str
    source: Address


Action = SendDatagram | CandidateSeen | PacketDropped


class CandidateTable:
    """Candidates by node id; expiry is driven from outside (the beacon TTL)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Candidate] = {}

    def seen(self, cand: Candidate) -> bool:
        """Record or refresh; returns True when the node was not known."""
        new = cand.node_id not in self._by_id
        self._by_id[cand.node_id] = cand
        return new

    def expire(self, older_than: float) -> list[str]:
        """Drop candidates last heard before ``older_than``; returns their ids."""
        gone = [nid for nid, c in self._by_id.items() if c.last_seen < older_than]
        for nid in gone:
            del self._by_id[nid]
        return gone

    def get(self, node_id: str) -> Candidate | None:
        return self._by_id.get(node_id)

    def __iter__(self) -> Iterator[Candidate]:
        return iter(sorted(self._by_id.values(), key=lambda c: c.node_id))

    def __len__(self) -> int:
        return len(self._by_id)


@dataclass
class _Pending:
    replies: set[str] = field(default_factory=set)


class BroadcastCore:
    """Builds, signs and verifies discovery datagrams; keeps candidates and reply counts."""

    def __init__(self, config: BroadcastConfig, identity: NodeIdentity, rng: random.Random) -> None:
        config.validate()
        self.config = config
        self.identity = identity
        self._rng = rng
        self.candidates = CandidateTable()
        self._seen_nonces: OrderedDict[bytes, float] = OrderedDict()
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._beacon_seq = 0
        self.stats: dict[str, int] = {
            "announces_sent": 0,
            "announces_received": 0,
            "replies_sent": 0,
            "replies_received": 0,
            "beacons_sent": 0,
            "beacons_received": 0,
            "dropped": 0,
        }

    # -- building

    def _nonce(self) -> bytes:
        return self._rng.getrandbits(128).to_bytes(16, "big")

    def seal(self, body: Body) -> bytes:
        """Sign ``body`` into a datagram."""
        raw = _encoder.encode(body)
        mac = hmac.new(self.config.secret, self._mac_input(body.cluster, raw), hashlib.sha256).digest()
        return _encoder.encode(AutodiscSigned(cluster=body.cluster, body=raw, mac=mac))

    @staticmethod
    def _mac_input(cluster: str, raw: bytes) -> bytes:
        return _DOMAIN + cluster.encode() + b"\x00" + raw

    def _header(self, now: float, nonce: bytes) -> dict[str, Any]:
        """What every packet this node sends says of its sender: who it is, its cluster, when, and a fresh nonce."""
        ident = self.identity
        return {"node_id": ident.node_id, "cluster": self.config.cluster_name, "tcp_addr": ident.tcp_addr,
                "quic_addr": ident.quic_addr, "timestamp": now, "nonce": nonce}

    def _destination(self) -> Address:
        return (self.config.broadcast_address, self.config.port)

    def announce(self, now: float, destination: Address | None = None) -> tuple[bytes, SendDatagram]:
        """Start an announce round; returns its nonce (for ``announce_result``) and the datagram,
        addressed to ``destination`` (default: the configured broadcast address and port)."""
        nonce = self._nonce()
        body = AutodiscAnnounce(**self._header(now, nonce))
        self._pending[nonce] = _Pending()
        while len(self._pending) > self.config.pending_announces:
            self._pending.popitem(last=False)
        self.stats["announces_sent"] += 1
        return nonce, SendDatagram(self.seal(body), destination or self._destination())

    def beacon(self, now: float) -> SendDatagram:
        """One beacon datagram (no reply expected)."""
        self._beacon_seq += 1
        body = AutodiscBeacon(**self._header(now, self._nonce()), seq=self._beacon_seq)
        self.stats["beacons_sent"] += 1
        return SendDatagram(self.seal(body), self._destination())

    def listeners_notified(self, nonce: bytes) -> int:
        """Distinct nodes that answered the announce ``nonce`` so far."""
        pending = self._pending.get(nonce)
        return len(pending.replies) if pending else 0

    def announce_result(self, nonce: bytes) -> dict[str, object]:
        """The NETWORKING-027 response body for one announce round."""
        return {"broadcast_sent": True, "listeners_notified": self.listeners_notified(nonce)}

    def candidates_status(self, now: float) -> list[dict[str, object]]:
        """The candidates as the API lists them; ``last_seen_ms`` is the age of the last packet."""
        return [{"node_id": c.node_id, "tcp_address": c.tcp_addr, "quic_address": c.quic_addr, "via": c.via,
                 "last_seen_ms": round(max(0.0, now - c.last_seen) * 1000)} for c in self.candidates]

    # -- receiving

    def open(self, data: bytes, now: float) -> Body:
        """Verify and decode one datagram; raises a ``PacketRejected`` subclass."""
        try:
            env = _envelope_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedPacket("undecodable envelope") from exc
        if env.cluster != self.config.cluster_name:
            raise ForeignCluster(f"cluster {env.cluster!r}")
        expected = hmac.new(self.config.secret, self._mac_input(env.cluster, env.body), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, env.mac):
            raise BadSignature("HMAC mismatch")
        try:
            body = _body_decoder.decode(env.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedPacket("undecodable body") from exc
        if body.cluster != env.cluster:
            raise ForeignCluster("body cluster differs from envelope")
        skew = self.config.max_clock_skew_s
        if abs(now - body.timestamp) > skew:
            raise StalePacket(f"timestamp off by {now - body.timestamp:.1f}s")
        self._forget_nonces(now)
        if body.nonce in self._seen_nonces:
            raise ReplayedPacket("nonce already accepted")
        self._seen_nonces[body.nonce] = body.timestamp + skew
        while len(self._seen_nonces) > self.config.nonce_cache_size:
            self._seen_nonces.popitem(last=False)
        return body

    def _forget_nonces(self, now: float) -> None:
        # A forgotten nonce's packet is stale by then, so freshness still rejects its replay.
        while self._seen_nonces:
            nonce, expiry = next(iter(self._seen_nonces.items()))
            if expiry >= now:
                break
            del self._seen_nonces[nonce]

    def receive(self, data: bytes, source: Address, now: float) -> list[Action]:
        """Handle one datagram from ``source``; returns what the adapter must do."""
        try:
            body = self.open(data, now)
        except PacketRejected as exc:
            self.stats["dropped"] += 1
            return [PacketDropped(exc.reason, source)]
        if body.node_id == self.identity.node_id:
            return []  # our own broadcast looped back
        actions: list[Action] = []
        via: Literal["announce", "reply", "beacon"]
        if isinstance(body, AutodiscAnnounce):
            via = "announce"
            self.stats["announces_received"] += 1
            actions.append(SendDatagram(self._reply(body, now), source))
            self.stats["replies_sent"] += 1
        elif isinstance(body, AutodiscReply):
            via = "reply"
            self.stats["replies_received"] += 1
            pending = self._pending.get(body.in_reply_to)
            if pending is not None:
                pending.replies.add(body.node_id)
        else:
            via = "beacon"
            self.stats["beacons_received"] += 1
        cand = Candidate(body.node_id, body.tcp_addr, body.quic_addr, source, now, via)
        actions.insert(0, CandidateSeen(cand, self.candidates.seen(cand)))
        return actions

    def _reply(self, announce: AutodiscAnnounce, now: float) -> bytes:
        return self.seal(AutodiscReply(**self._header(now, self._nonce()), in_reply_to=announce.nonce))
