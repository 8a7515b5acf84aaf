"""mDNS / DNS-SD discovery: configuration, TXT record format and the discovered-peer table.

Theory of operation
-------------------
Each node registers one DNS-SD service instance (RFC 6763) of type ``_rustydb._tcp.local.``
over multicast DNS (RFC 6762): an SRV record gives host and primary port, A records give the
IPv4 addresses and the TXT record carries ``node_id``, ``cluster`` and the ports of the
other transports (RFC 6763 §6 key=value pairs). Peers browse for the service type, resolve
each instance and keep the table below. Protocol work (probing, announcing, caching, TTLs)
is python-zeroconf's; this module is the sans-I/O part: what we put in TXT, how we read it
back, and which instances count as peers. ``mdns.py`` is the asyncio adapter.

The instance label is the node id with characters that DNS-SD labels handle badly replaced
(dots), truncated to 63 bytes; the exact id always travels in TXT.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from rustyray.autodiscovery.errors import AutodiscoveryConfigError
from rustyray.protocol.addresses import format_address

__all__ = [
    "DiscoveredNode",
    "MdnsConfig",
    "MdnsRegistry",
    "build_txt",
    "cluster_tag",
    "instance_name",
    "parse_service",
]

TXT_VERSION = "1"


@dataclass(frozen=True, kw_only=True)
class MdnsConfig:
    """mDNS discovery settings. Off by default: multicast on production LANs is opt-in."""

    enabled: bool = False
    """Whether the node registers and browses at all."""
    service_type: str = "_rustydb._tcp.local."
    """DNS-SD service type registered and browsed."""
    interfaces: tuple[str, ...] | None = None
    """IPv4 addresses of the interfaces zeroconf binds; None = every IPv4 interface.
    ``("127.0.0.1",)`` keeps all mDNS traffic on loopback."""
    advertise_addresses: tuple[str, ...] | None = None
    """IPv4 addresses put in our A records; None = ``interfaces`` (or all host addresses)."""
    cluster_name: str | None = None
    """If set, advertised in TXT and instances of other clusters are ignored."""
    resolve_timeout_ms: int = 3000
    """Milliseconds allowed to resolve one discovered instance (SRV/TXT/A)."""

    def validate(self) -> None:
        if not re.fullmatch(r"_[A-Za-z0-9-]{1,15}\._(tcp|udp)\.local\.", self.service_type):
            raise AutodiscoveryConfigError("service_type must look like '_name._tcp.local.'")
        for fname in ("interfaces", "advertise_addresses"):
            addrs = getattr(self, fname)
            if addrs is None:
                continue
            if not addrs:
                raise AutodiscoveryConfigError(f"{fname} must be None or non-empty")
            for a in addrs:
                try:
                    ipaddress.IPv4Address(a)
                except ValueError as exc:
                    raise AutodiscoveryConfigError(f"{fname}: {a!r} is not an IPv4 address") from exc
        if self.resolve_timeout_ms <= 0:
            raise AutodiscoveryConfigError("resolve_timeout_ms must be > 0")

    @classmethod
    def local(cls, cluster_name: str | None = None) -> MdnsConfig:
        """Loopback-only preset: tests and single-host development."""
        return cls(enabled=True, interfaces=("127.0.0.1",), cluster_name=cluster_name)

    @property
    def short_type(self) -> str:
        """The type as the API shows it: ``_rustydb._tcp``."""
        return self.service_type.removesuffix(".local.")


@dataclass(frozen=True)
class DiscoveredNode:
    """One resolved peer."""

    hostname: str
    ip: str
    port: int
    node_id: str
    cluster: str | None = None
    ports: Mapping[str, int] = field(default_factory=dict)
    """Every ``*_port`` TXT key without the suffix, e.g. ``{"tcp": 7000, "quic": 7001}``."""

    def as_dict(self) -> dict[str, object]:
        return {"hostname": self.hostname, "ip": self.ip, "port": self.port, "node_id": self.node_id}

    def transport_addresses(self) -> tuple[str, str]:
        """``(tcp, quic)`` as ``host:port`` to dial: the ``tcp`` TXT port (else the SRV port), and
        the ``quic`` one if advertised (else "")."""
        tcp = format_address(self.ip, self.ports.get("tcp", self.port))
        quic = format_address(self.ip, self.ports["quic"]) if "quic" in self.ports else ""
        return tcp, quic


def cluster_tag(cluster_name: str, ca_pem: bytes | None) -> str:
    """The cluster name a node advertises in TXT: ``name~<12 hex of SHA-256(CA)>``, or the bare name
    without a CA. Only peers that share our CA can complete a handshake with us, so a same-named
    cluster on the LAN with another CA is ignored rather than dialled."""
    return cluster_name if ca_pem is None else f"{cluster_name}~{hashlib.sha256(ca_pem).hexdigest()[:12]}"


def instance_name(node_id: str, service_type: str) -> str:
    """The DNS-SD instance name under which ``node_id`` registers."""
    label = re.sub(r"[.\s]", "-", node_id).encode()[:63].decode(errors="ignore") or "node"
    return f"{label}.{service_type}"


def build_txt(node_id: str, ports: Mapping[str, int], cluster: str | None) -> dict[str, str]:
    """TXT properties we advertise (keys are short ASCII, values strings)."""
    txt = {"v": TXT_VERSION, "node_id": node_id}
    if cluster is not None:
        txt["cluster"] = cluster
    for name, port in sorted(ports.items()):
        txt[f"{name}_port"] = str(port)
    return txt


def _text(v: bytes | str | None) -> str | None:
    if v is None:
        return None
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def parse_service(
    *,
    server: str | None,
    addresses: list[str],
    port: int | None,
    properties: Mapping[bytes | str, bytes | str | None],
) -> DiscoveredNode | None:
    """Read a resolved instance back; None if it is not one of ours (no node id, no address)."""
    props = {_text(k): _text(v) for k, v in properties.items()}
    node_id = props.get("node_id")
    v4 = [a for a in addresses if _is_v4(a)]
    if not node_id or not v4 or not port:
        return None
    ports: dict[str, int] = {}
    for k, v in props.items():
        if k and k.endswith("_port") and v and v.isdigit():
            ports[k.removesuffix("_port")] = int(v)
    return DiscoveredNode(
        hostname=(server or "").rstrip(".") or node_id,
        ip=v4[0],
        port=port,
        node_id=node_id,
        cluster=props.get("cluster"),
        ports=ports,
    )


def _is_v4(a: str) -> bool:
    try:
        ipaddress.IPv4Address(a)
    except ValueError:
        return False
    return True


class MdnsRegistry:
    """Discovered peers keyed by service instance name (what the browser reports removals by)."""

    def __init__(self, own_node_id: str, cluster_name: str | None) -> None:
        self._own = own_node_id
        self._cluster = cluster_name
        self._by_instance: dict[str, DiscoveredNode] = {}

    def update(self, instance: str, node: DiscoveredNode | None) -> bool:
        """Record a resolved instance; returns True if it was accepted as a peer."""
        if node is None or node.node_id == self._own:
            return False
        if self._cluster is not None and node.cluster != self._cluster:
            return False
        self._by_instance[instance] = node
        return True

    def remove(self, instance: str) -> DiscoveredNode | None:
        return self._by_instance.pop(instance, None)

    def nodes(self) -> list[DiscoveredNode]:
        return sorted(self._by_instance.values(), key=lambda n: n.node_id)

    def discovered(self) -> list[dict[str, object]]:
        return [n.as_dict() for n in self.nodes()]
