"""Configuration of the security service: ``SecurityServiceConfig`` is the ``[security]`` table.

TLS itself is not configurable here (TLS 1.3 with mutual authentication is always on, see
``[transport] tls``); these settings drive the admission defaults, rule replication, the
cluster key ring file and optional payload encryption on top of TLS.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SecurityServiceConfig"]


@dataclass(frozen=True)
class SecurityServiceConfig:
    """The ``[security]`` table of the node config."""

    # Concurrent inbound connections allowed per source IP by the default connection_limit rule (count).
    default_connection_limit: int = 256
    # Transports the default protocol_filter rule admits.
    default_protocols: tuple[str, ...] = ("TCP", "QUIC")
    # ACL action when no rule matches: "ALLOW" keeps a fresh cluster reachable, "DENY" makes an allow-list.
    acl_default_action: str = "ALLOW"
    # Seconds to wait for each member to acknowledge a replicated rule/key change.
    sync_timeout_s: float = 2.0
    # Cluster key ring file name inside state_dir (shared by every node of the cluster).
    key_ring_file: str = "keyring.json"
    # Seal every frame payload with the cluster key ring (AEAD, frame header as associated data) on top of
    # TLS, when both ends offer the "encryption" capability. Off by default: TLS 1.3 already encrypts links.
    encrypt_payloads: bool = False

    def validate(self) -> None:
        if self.default_connection_limit < 1:
            raise ValueError(f"default_connection_limit: must be >= 1, got {self.default_connection_limit}")
        bad = [p for p in self.default_protocols if p.upper() not in ("TCP", "QUIC")]
        if bad or not self.default_protocols:
            raise ValueError(f"default_protocols: expected TCP/QUIC, got {list(self.default_protocols)}")
        if self.acl_default_action.upper() not in ("ALLOW", "DENY"):
            raise ValueError(f"acl_default_action: expected ALLOW or DENY, got {self.acl_default_action!r}")
        if not self.sync_timeout_s > 0:
            raise ValueError(f"sync_timeout_s: must be > 0, got {self.sync_timeout_s}")
        if not self.key_ring_file or "/" in self.key_ring_file:
            raise ValueError(f"key_ring_file: must be a plain file name, got {self.key_ring_file!r}")
