"""Connection handshake: protocol version and capability negotiation.

Theory of operation. The dialer's first frame is a ``Hello``; the listener answers
with a ``HelloAck`` and nothing else may flow before it. Versions: the listener
picks the highest version both sides list; none in common is a refusal with a
reason. Capabilities are plain strings: compression codecs (``lz4``, ``zstd``),
``tls13`` when the connection runs over TLS 1.3, ``encryption`` for sealed
payloads, ``mux-streams`` for multiplexed streams on the wire (``pool.mux_adapter``).
Compression is the first codec in the *local* preference order that the peer also
supports (so local ``[lz4, tls13]`` against peer ``[lz4, zstd, tls13]`` gives ``lz4``),
and ``none`` when there is no common codec. Identity: over mTLS the transport checks
that the certificate's CN equals ``Hello.node_id``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from rustyray.protocol.addresses import parse_address
from rustyray.protocol.compression import Compression
from rustyray.protocol.errors import HandshakeRefused
from rustyray.protocol.messages import Message

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
COMPRESSION_CAPS = ("lz4", "zstd")
KNOWN_CAPABILITIES = frozenset({"lz4", "zstd", "tls13", "encryption", "multiplexing", "mux-streams"})
API_CLIENT_PREFIX = "api-"
"""Certificate names the CA gives management API replicas (their node channel client): such a
certificate is signed by the cluster CA, but it is a client's, never a mesh peer's."""


class Hello(Message):
    """First frame on every connection, from the dialer."""

    node_id: str
    protocol_version: int = PROTOCOL_VERSION
    versions: list[int] = []
    capabilities: list[str] = []
    tcp_address: str = ""
    quic_address: str = ""
    cluster: str = ""
    incarnation: int = 0
    meta: dict[str, str] = {}


class HelloAck(Message):
    """The listener's answer; ``accepted`` false carries a ``reason`` and the connection closes."""

    accepted: bool
    node_id: str
    negotiated_protocol: int = 0
    compression: str = "none"
    capabilities: list[str] = []
    reason: str = ""
    tcp_address: str = ""
    quic_address: str = ""
    incarnation: int = 0


@dataclass(frozen=True)
class Negotiated:
    """Outcome of a handshake as both sides apply it."""

    accepted: bool
    protocol: int
    compression: Compression
    reason: str = ""


def validate_capabilities(caps: Sequence[str]) -> list[str]:
    """Normalise capability names; unknown names are an error naming them (API input validation)."""
    out = []
    for c in caps:
        name = c.strip().lower()
        if name not in KNOWN_CAPABILITIES:
            raise ValueError(f"unknown capability {c!r}; known: {', '.join(sorted(KNOWN_CAPABILITIES))}")
        if name not in out:
            out.append(name)
    return out


def negotiate(local_caps: Sequence[str], peer_caps: Sequence[str], peer_versions: Sequence[int],
              local_versions: Sequence[int] = SUPPORTED_VERSIONS) -> Negotiated:
    """Pick the protocol version and compression both sides support (pure)."""
    common = sorted(set(local_versions) & set(peer_versions))
    if not common:
        return Negotiated(False, 0, Compression.NONE,
                          reason=f"unsupported protocol version(s) {sorted(set(peer_versions))}; "
                                 f"this node speaks {sorted(local_versions)}")
    peer = {c.lower() for c in peer_caps}
    compression = Compression.NONE
    for cap in local_caps:
        if cap in COMPRESSION_CAPS and cap in peer:
            compression = Compression.from_name(cap)
            break
    return Negotiated(True, common[-1], compression)


def hello_versions(hello: Hello) -> list[int]:
    """The versions a hello offers (``versions`` if given, else its single ``protocol_version``)."""
    return list(hello.versions) or [hello.protocol_version]


def answer_hello(hello: Hello, *, node_id: str, local_caps: Sequence[str], tcp_address: str = "",
                 quic_address: str = "", incarnation: int = 0) -> tuple[HelloAck, Negotiated]:
    """The listener's side of the handshake: the ack to send and what was agreed."""
    result = negotiate(local_caps, hello.capabilities, hello_versions(hello))
    ack = HelloAck(
        accepted=result.accepted,
        node_id=node_id,
        negotiated_protocol=result.protocol,
        compression=result.compression.api_name,
        capabilities=list(local_caps),
        reason=result.reason,
        tcp_address=tcp_address,
        quic_address=quic_address,
        incarnation=incarnation,
    )
    return ack, result


# ------------------------------------------------------------------------------------------------ state machine
#
# Why a state machine rather than two hand-written coroutines: the dialler and the listener each ran
# their own copy of the checks (CN against node id, cluster name, advertised addresses), and the copies
# drifted. Here both sides are one sans-I/O class each, after h11: the adapter feeds in the frame it
# read and what TLS told it (the verified certificate CN), and gets back the frame to write and the
# outcome. No sockets, no clock; the adapter owns timeouts.


class HandshakeState(enum.Enum):
    IDLE = "idle"  # client: nothing sent yet / server: waiting for the peer's Hello
    AWAITING_ACK = "awaiting_ack"  # client: Hello sent
    AWAITING_DECISION = "awaiting_decision"  # server: Hello read, admission not yet decided
    ESTABLISHED = "established"
    REFUSED = "refused"


@dataclass(frozen=True)
class LocalEnd:
    """What this node says about itself in a handshake."""

    node_id: str
    capabilities: tuple[str, ...]
    tcp_address: str = ""
    quic_address: str = ""
    cluster: str = ""
    incarnation: int = 0
    require_tls: bool = True


@dataclass(frozen=True)
class Established:
    """The agreed terms, applied to the connection by the adapter."""

    peer_node_id: str
    compression: Compression
    peer_capabilities: frozenset[str]
    peer_tcp_address: str = ""
    peer_quic_address: str = ""
    peer_incarnation: int = 0


def address_problem(tcp_address: str, quic_address: str) -> str | None:
    """Advertised addresses are redialled later: a hello whose address does not parse is refused now."""
    for name, value in (("tcp_address", tcp_address), ("quic_address", quic_address)):
        if value:
            try:
                parse_address(value, field=name)
            except ValueError as exc:
                return str(exc)
    return None


class ClientHandshake:
    """The dialler's side: ``start()`` gives the Hello, ``receive()`` checks the HelloAck."""

    def __init__(self, local: LocalEnd, *, expect_node: str | None = None) -> None:
        self.local = local
        self.expect_node = expect_node
        self.state = HandshakeState.IDLE

    def start(self) -> Hello:
        if self.state is not HandshakeState.IDLE:
            raise HandshakeRefused(f"handshake already {self.state.value}")
        self.state = HandshakeState.AWAITING_ACK
        lo = self.local
        return Hello(node_id=lo.node_id, versions=list(SUPPORTED_VERSIONS), capabilities=list(lo.capabilities),
                     tcp_address=lo.tcp_address, quic_address=lo.quic_address, cluster=lo.cluster,
                     incarnation=lo.incarnation)

    def receive(self, message: Message, *, peer_cn: str | None, tls: bool) -> Established:
        """The terms of an accepted ack; raises ``HandshakeRefused`` (state REFUSED) otherwise."""
        if self.state is not HandshakeState.AWAITING_ACK:
            raise HandshakeRefused(f"unexpected handshake frame in state {self.state.value}")
        try:
            problem = self._problem(message, peer_cn, tls)
        except HandshakeRefused:
            self.state = HandshakeState.REFUSED
            raise
        if problem is not None:
            self.state = HandshakeState.REFUSED
            raise HandshakeRefused(problem)
        assert isinstance(message, HelloAck)
        self.state = HandshakeState.ESTABLISHED
        agreed = negotiate(self.local.capabilities, message.capabilities, [message.negotiated_protocol])
        return Established(message.node_id, agreed.compression, frozenset(message.capabilities),
                           message.tcp_address, message.quic_address, message.incarnation)

    def _problem(self, ack: Message, peer_cn: str | None, tls: bool) -> str | None:
        if not isinstance(ack, HelloAck):
            raise HandshakeRefused(f"expected HelloAck, got {type(ack).__name__}")
        if not ack.accepted:
            return f"peer refused the handshake: {ack.reason}"
        if self.expect_node is not None and ack.node_id != self.expect_node:
            return f"expected node {self.expect_node!r}, found {ack.node_id!r}"
        if tls and peer_cn is not None and peer_cn != ack.node_id:
            return f"peer certificate CN {peer_cn!r} does not match its node id {ack.node_id!r}"
        if ack.node_id.startswith(API_CLIENT_PREFIX):
            return f"{ack.node_id!r} is an API client's name, not a node's"
        if (problem := address_problem(ack.tcp_address, ack.quic_address)) is not None:
            return f"peer advertises a bad address: {problem}"
        return None


class ServerHandshake:
    """The listener's side: ``receive()`` reads the Hello, ``decide()`` answers it.

    Between the two the adapter runs its admission filters (ACL, firewall) on the hello;
    ``identity_problem`` is this machine's own verdict (cluster name, certificate CN, addresses).
    """

    def __init__(self, local: LocalEnd) -> None:
        self.local = local
        self.state = HandshakeState.IDLE
        self.hello: Hello | None = None
        self.identity_problem: str | None = None

    def receive(self, message: Message, *, peer_cn: str | None, tls: bool) -> Hello:
        """Accept the first frame; raises ``HandshakeRefused`` if it is not a Hello."""
        if self.state is not HandshakeState.IDLE:
            raise HandshakeRefused(f"unexpected handshake frame in state {self.state.value}")
        if not isinstance(message, Hello):
            self.state = HandshakeState.REFUSED
            raise HandshakeRefused(f"expected Hello, got {type(message).__name__}")
        self.hello = message
        self.state = HandshakeState.AWAITING_DECISION
        self.identity_problem = (self._identity(message, peer_cn, tls)
                                 or address_problem(message.tcp_address, message.quic_address))
        return message

    def _identity(self, hello: Hello, cn: str | None, tls: bool) -> str | None:
        lo = self.local
        if lo.cluster and hello.cluster and hello.cluster != lo.cluster:
            return f"peer belongs to cluster {hello.cluster!r}, not {lo.cluster!r}"
        if not tls:
            return "TLS is required" if lo.require_tls else None
        if cn is None:
            return "no verified client certificate"
        if cn != hello.node_id:
            return f"certificate CN {cn!r} does not match claimed node id {hello.node_id!r}"
        if cn.startswith(API_CLIENT_PREFIX):
            return f"certificate CN {cn!r} is an API client's, not a node's"
        return None

    def decide(self, refusal: str | None = None) -> tuple[HelloAck, Established | None]:
        """The ack to write, and the terms when accepted. ``refusal`` is the admission filters' reason."""
        if self.state is not HandshakeState.AWAITING_DECISION or self.hello is None:
            raise HandshakeRefused(f"no hello to answer in state {self.state.value}")
        hello, lo = self.hello, self.local
        reason = self.identity_problem or refusal
        ack, agreed = answer_hello(hello, node_id=lo.node_id, local_caps=lo.capabilities,
                                   tcp_address=lo.tcp_address, quic_address=lo.quic_address,
                                   incarnation=lo.incarnation)
        if reason is not None:
            ack = HelloAck(accepted=False, node_id=lo.node_id, reason=reason)
        if not ack.accepted:
            self.state = HandshakeState.REFUSED
            return ack, None
        self.state = HandshakeState.ESTABLISHED
        return ack, Established(hello.node_id, agreed.compression, frozenset(hello.capabilities),
                                hello.tcp_address, hello.quic_address, hello.incarnation)
