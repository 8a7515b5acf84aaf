"""Node and cluster configuration, and the TOML file that maps onto it.

One frozen dataclass per subsystem, each field documented with its unit. The TOML
file given to ``launch --config`` has one table per subsystem (``[transport]``,
``[heartbeat]``, ``[swim]``, ``[raft]``, ``[discovery.dns]``, ...). Subsystems that
own their config class (SWIM, Raft, discovery backends) receive their raw table
and validate it themselves; unknown keys in the tables defined here are errors so
that a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rustyray.transport.reconnect import ReconnectConfig


@dataclass(frozen=True)
class TransportConfig:
    host: str = "127.0.0.1"
    """Address the TCP and QUIC listeners bind to; loopback by default (safe on one machine)."""
    advertise_host: str = ""
    """Address peers should dial; empty means ``host`` (set it on multi-machine clusters)."""
    tcp_port: int = 0
    """TCP listener port; 0 picks a free port (persisted in the state dir and reused after a restart)."""
    quic_port: int = 0
    """QUIC (UDP) listener port; 0 picks a free port."""
    enable_quic: bool = True
    """Run the QUIC listener next to TCP."""
    tls: bool = True
    """TLS 1.3 with mutual authentication on node-to-node TCP; QUIC is always TLS 1.3."""
    connect_timeout_s: float = 5.0
    """Time allowed for TCP connect plus the TLS handshake, in seconds."""
    handshake_timeout_s: float = 5.0
    """Time allowed for the Hello / HelloAck exchange after connecting, in seconds."""
    request_timeout_s: float = 5.0
    """Default timeout of a request/response exchange with a peer, in seconds."""
    capabilities: tuple[str, ...] = ("lz4", "zstd", "tls13", "multiplexing")
    """Capabilities offered in the handshake, in preference order (first common codec wins)."""
    max_connections: int = 1024
    """Inbound connections accepted at once; beyond it new ones are refused."""
    allowed_networks: tuple[str, ...] = ("127.0.0.0/8", "::1/128")
    """Networks this node may dial (API connects, seeds, health checks); loopback only by default."""
    allowed_hosts: tuple[str, ...] = ()
    """Host names (besides localhost) this node may dial."""
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)

    def validate(self) -> None:
        if not 0 <= self.tcp_port <= 65535:
            raise ValueError("transport.tcp_port must be 0..65535")
        if not 0 <= self.quic_port <= 65535:
            raise ValueError("transport.quic_port must be 0..65535")
        from rustyray.transport.dial_policy import DialPolicy

        DialPolicy.build(self.allowed_networks, self.allowed_hosts)
        for name in ("connect_timeout_s", "handshake_timeout_s", "request_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"transport.{name} must be positive")
        self.reconnect.validate()


@dataclass(frozen=True)
class HeartbeatSettings:
    interval_ms: int = 1000
    """Period between heartbeats to every connected peer, in ms."""
    timeout_ms: int = 5000
    """Silence after which a peer is reported Suspected by the heartbeat monitor, in ms."""
    phi_threshold: float = 8.0
    """Phi accrual threshold above which a peer is suspected."""

    def validate(self) -> None:
        if self.interval_ms <= 0:
            raise ValueError("heartbeat.interval_ms must be positive")
        if self.timeout_ms <= self.interval_ms:
            raise ValueError("heartbeat.timeout_ms must exceed heartbeat.interval_ms")
        if self.phi_threshold <= 0:
            raise ValueError("heartbeat.phi_threshold must be positive")


@dataclass(frozen=True)
class NodeConfig:
    """Everything one node needs; built by ``launch`` and shipped to the node actor."""

    node_id: str
    cluster_name: str = "rustyray"
    state_dir: str = ".rustyray"
    transport: TransportConfig = field(default_factory=TransportConfig)
    heartbeat: HeartbeatSettings = field(default_factory=HeartbeatSettings)
    seeds: tuple[str, ...] = ()
    """TCP addresses (host:port) of existing members to join through."""
    bootstrap_members: tuple[str, ...] = ()
    """Node ids of the initial Raft configuration when this node bootstraps a new cluster."""
    sections: dict[str, Any] = field(default_factory=dict)
    """Raw TOML tables for subsystems that own their config class (swim, raft, discovery, ...)."""

    @property
    def node_dir(self) -> Path:
        return Path(self.state_dir) / "nodes" / self.node_id

    @property
    def certs_dir(self) -> Path:
        return Path(self.state_dir) / "certs"

    def section(self, name: str) -> dict[str, Any]:
        """A subsystem's raw table (dotted names walk sub-tables), empty when absent."""
        cur: Any = self.sections
        for part in name.split("."):
            cur = cur.get(part, {}) if isinstance(cur, dict) else {}
        return dict(cur) if isinstance(cur, dict) else {}

    def validate(self) -> None:
        if not self.node_id or not all(c.isalnum() or c in "-_." for c in self.node_id):
            raise ValueError(f"node_id {self.node_id!r} must be non-empty and use only letters, digits, - _ .")
        self.transport.validate()
        self.heartbeat.validate()


def _build(cls: type, table: dict[str, Any], where: str) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            raise ValueError(f"[{where}] has no setting {key!r}; known: {', '.join(sorted(names))}")
        if key == "reconnect" and isinstance(value, dict):
            value = _build(ReconnectConfig, value, f"{where}.reconnect")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def load_toml(path: str | Path | None) -> dict[str, Any]:
    """Read a cluster TOML file (empty dict when ``path`` is None)."""
    if path is None:
        return {}
    with open(path, "rb") as f:
        return tomllib.load(f)


def node_config_from_toml(node_id: str, doc: dict[str, Any], *, state_dir: str, cluster_name: str | None = None,
                          seeds: tuple[str, ...] = (), bootstrap_members: tuple[str, ...] = (),
                          overrides: dict[str, Any] | None = None) -> NodeConfig:
    """Map a parsed TOML document onto a validated ``NodeConfig`` for one node."""
    transport = _build(TransportConfig, {**doc.get("transport", {}), **(overrides or {})}, "transport")
    heartbeat = _build(HeartbeatSettings, doc.get("heartbeat", {}), "heartbeat")
    sections = {k: v for k, v in doc.items() if k not in ("transport", "heartbeat", "cluster")}
    cfg = NodeConfig(
        node_id=node_id,
        cluster_name=cluster_name or doc.get("cluster", {}).get("name", "rustyray"),
        state_dir=state_dir,
        transport=transport,
        heartbeat=heartbeat,
        seeds=seeds,
        bootstrap_members=bootstrap_members,
        sections=sections,
    )
    cfg.validate()
    return cfg
