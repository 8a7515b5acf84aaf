"""Configuration of autodiscovery: the ``[autodiscovery]`` table and its sub-tables (pure).

Each sub-table (``[autodiscovery.mdns]``, ``.broadcast``, ``.beacon``, ``.serf``,
``.anti_entropy``) holds its core config's keys (``MdnsConfig``, ``BroadcastConfig``,
``BeaconConfig``, ``SerfConfig``, ``AntiEntropyConfig``) minus what the node supplies
(cluster name, node name, the secret as bytes), plus the service's own keys. Where the core
config has no field the node supplies, or only ones ``flatten(exclude=...)`` can keep out, it is a
flattened field (``config_loader.FLATTEN``), so its keys are declared once, in the core. The
defaults are the service's: mDNS and broadcast on loopback, serf and anti-entropy on, mDNS,
broadcast and beacons off.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, fields, replace

from rustyray.autodiscovery.anti_entropy import AntiEntropyConfig
from rustyray.autodiscovery.beacon import BeaconConfig
from rustyray.autodiscovery.broadcast_core import BroadcastConfig
from rustyray.autodiscovery.mdns_core import MdnsConfig
from rustyray.autodiscovery.serf import SerfConfig
from rustyray.config_loader import FLATTEN, flatten

__all__ = ["AntiEntropySettings", "AutodiscoveryConfig", "BroadcastSettings", "MdnsSettings", "SerfSettings"]


@dataclass(frozen=True)
class MdnsSettings:
    """``[autodiscovery.mdns]``: ``MdnsConfig``'s keys but ``cluster_name`` (the node's), bound to loopback
    unless the table names interfaces."""

    mdns: MdnsConfig = field(default_factory=lambda: MdnsConfig(interfaces=("127.0.0.1",)),
                             metadata=flatten(exclude=("cluster_name",)))

    @property
    def enabled(self) -> bool:
        return self.mdns.enabled

    def core(self, cluster_name: str | None) -> MdnsConfig:
        return replace(self.mdns, cluster_name=cluster_name)


@dataclass(frozen=True)
class BroadcastSettings:
    """``[autodiscovery.broadcast]``: ``BroadcastConfig`` without ``cluster_name``, plus the service's keys."""

    enabled: bool = False
    """Whether the node runs broadcast discovery at all."""
    secret: str | None = None
    """Shared HMAC key (at least 16 bytes); unset: ``secret_file``, else a key derived from the cluster CA."""
    secret_file: str | None = None
    """File holding the shared key (used when ``secret`` is unset)."""
    broadcast_address: str = "127.255.255.255"
    """Destination of announces and beacons (the subnet's directed broadcast address)."""
    port: int = 7947
    """UDP port listeners bind and announces go to."""
    listen_address: str | None = None
    """Address the listening socket binds; unset binds the broadcast address itself."""
    unicast_bind_address: str = "127.0.0.1"
    """Address of the socket that sends announces/beacons and receives replies."""
    max_clock_skew_s: float = 30.0
    """Seconds a packet's timestamp may differ from the receiver's clock (also the nonce memory)."""
    reply_wait_s: float = 0.5
    """Seconds the announcer waits for replies before reporting ``listeners_notified``."""
    nonce_cache_size: int = 4096
    """Accepted nonces remembered (oldest evicted first)."""
    pending_announces: int = 16
    """Recent announces whose replies are still counted."""
    allowed_broadcast_addresses: tuple[str, ...] = ()
    """IPv4 addresses ``POST /autodiscovery/broadcast/announce`` may name besides ``broadcast_address``."""

    def core_kwargs(self) -> dict[str, object]:
        """``BroadcastConfig``'s keyword arguments but the cluster name and the secret (the node's)."""
        names = {f.name for f in fields(BroadcastConfig)} - {"cluster_name", "secret"}
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in names}

    def core(self, cluster_name: str, secret: bytes) -> BroadcastConfig:
        return BroadcastConfig(cluster_name=cluster_name, secret=secret, **self.core_kwargs())  # type: ignore[arg-type]

    def validate(self) -> None:
        for key in ("broadcast_address", "unicast_bind_address", "listen_address"):
            value = getattr(self, key)
            if value is not None:
                _ipv4(value, key)
        for address in self.allowed_broadcast_addresses:
            _ipv4(address, "allowed_broadcast_addresses")
        if self.enabled:
            self.core("cluster", (self.secret or "x" * 16).encode()).validate()


@dataclass(frozen=True)
class SerfSettings:
    """``[autodiscovery.serf]``: ``SerfConfig``'s keys plus the service's."""

    layer: SerfConfig = field(default_factory=SerfConfig, metadata=FLATTEN)
    """The Serf layer's own settings (buffers, coalescing, query timeouts, size limits)."""
    enabled: bool = True
    """Run the Serf layer (user events, queries, member tags)."""
    tags: dict[str, str] = field(default_factory=dict)
    """This node's member tags, e.g. ``{ role = "db" }``."""
    retransmit_mult: int = 4
    """Each Serf message is gossiped retransmit_mult * ceil(log10(n + 1)) times."""
    recent_events: int = 256
    """User events kept for ``GET /autodiscovery/serf/events``."""
    wire: str = "rustyray"
    """``"serf"`` also runs a HashiCorp memberlist member on ``bind:port``, so real Serf agents see this
    node (``serf members``) and it lists them; ``"rustyray"`` (default) keeps Serf inside our own mesh."""
    bind: str = "127.0.0.1"
    """Address of the memberlist member (UDP and TCP) with ``wire = "serf"``."""
    port: int = 0
    """Its port; 0 picks a free one (Serf's own default is 7946)."""
    join: tuple[str, ...] = ()
    """``host:port`` of Serf agents to join at start (``wire = "serf"``)."""
    keyring_file: str = ""
    """Gossip encryption: a JSON list of base64 keys, the primary first (Serf's ``-keyring-file``
    format); ``serf keys`` rotations are written back to it. Empty: no encryption."""
    compression: bool = True
    """LZW-compress what the memberlist member sends, as Serf's agent does unless ``-disable-compression``
    (what it receives is decompressed either way)."""
    label: str = ""
    """memberlist's cluster label (at most 255 bytes; "" for none): packets and streams with another label
    are dropped. Serf 0.8 agents know no labels, so set it only among agents that do."""

    def validate(self) -> None:
        if self.retransmit_mult < 1:
            raise ValueError("retransmit_mult must be >= 1")
        if self.recent_events < 1:
            raise ValueError("recent_events must be >= 1")
        if self.wire not in ("rustyray", "serf"):
            raise ValueError(f"wire must be 'rustyray' or 'serf', not {self.wire!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be 0..65535")
        if len(self.label.encode()) > 255:
            raise ValueError("label must be at most 255 bytes")


@dataclass(frozen=True)
class AntiEntropySettings:
    """``[autodiscovery.anti_entropy]``: ``AntiEntropyConfig``'s keys plus the service's schedule."""

    tree: AntiEntropyConfig = field(default_factory=AntiEntropyConfig, metadata=FLATTEN)
    """Merkle tree shape and session bounds."""
    enabled: bool = True
    """Run periodic Merkle-tree syncs with a random member."""
    interval_s: float = 30.0
    """Seconds between two periodic syncs."""
    request_timeout_s: float = 5.0
    """Seconds allowed for each step of a sync."""

    def validate(self) -> None:
        if self.interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be > 0")


@dataclass(frozen=True)
class AutodiscoveryConfig:
    """The ``[autodiscovery]`` table: one sub-table per feature."""

    mdns: MdnsSettings = field(default_factory=MdnsSettings)
    broadcast: BroadcastSettings = field(default_factory=BroadcastSettings)
    beacon: BeaconConfig = field(default_factory=BeaconConfig)
    serf: SerfSettings = field(default_factory=SerfSettings)
    anti_entropy: AntiEntropySettings = field(default_factory=AntiEntropySettings)

    def validate(self) -> None:
        if self.beacon.enabled and not self.broadcast.enabled:
            raise ValueError("beacon.enabled requires [autodiscovery.broadcast] enabled = true "
                             "(beacons travel on the broadcast sockets)")


def _ipv4(value: str, key: str) -> None:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{key}: {value!r} is not an IPv4 address") from None
