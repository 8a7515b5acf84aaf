"""The transport's own settings: ``[transport]`` (listeners, TLS, timeouts, dial policy) and ``[heartbeat]``.

They live here, beside the mesh that reads them, so that transport depends on nothing above it;
``rustyray.config`` gathers them with every other subsystem's into ``ClusterConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
