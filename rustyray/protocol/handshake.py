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

from collections.abc import Sequence
from dataclasses import dataclass

from rustyray.protocol.compression import Compression
from rustyray.protocol.messages import Message

PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
COMPRESSION_CAPS = ("lz4", "zstd")
KNOWN_CAPABILITIES = frozenset({"lz4", "zstd", "tls13", "encryption", "multiplexing", "mux-streams"})


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
