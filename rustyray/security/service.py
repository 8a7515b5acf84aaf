"""Security service: the asyncio adapter that puts the security cores to work on a live node.

What it wires (NETWORKING-048 to 054):

* TLS/mTLS accounting. The node already enforces mutual TLS on TCP and QUIC, but a peer refused by the
  TLS layer never reaches the node's accept path, so the service counts those refusals itself: on TCP
  through the live server context's message callback (every fatal alert the server writes, e.g.
  ``unknown_ca``, ``certificate_expired``, ``certificate_required``), on QUIC through a per-connection
  hook that sees the CRYPTO_ERROR close of a failed handshake. Both land in ``node.stats`` as
  ``tls_<alert>`` / ``quic_<alert>`` refusals (classified by ``admission``).
* Admission. One admission filter (``admit``, wired by the node) runs the ACL and the firewall on every inbound
  connection (source = the peer's IP, destination = this node id) before its hello; an admitted
  connection holds a firewall connection slot until it closes. The verdicts are ``admission``'s.
* Cluster-wide rules. ACL and firewall rule sets are replicated whole, last writer wins on
  ``(version, origin)``, as two registers of the node's settings channel (``rustyray.settings``, shared
  with the pool and the balancer; ``replication_adapter``). A rule change also applies to the connections already open.
* The cluster key ring lives in ``state_dir/keyring.json`` (0600, ``keystore.ClusterKeyStore``), created
  once; every node loads it, so ciphertext from one node opens on another.
* The management operations are ``SecurityApi`` (``api``), built here as ``self.api``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rustyray.security.acl import Acl, AclAction, AclConfig
from rustyray.security.admission import Admission, quic_alert, tls_alert_refusal
from rustyray.security.api import SecurityApi
from rustyray.security.config import SecurityServiceConfig
from rustyray.security.credentials_adapter import NodeCertificates
from rustyray.security.encryption import MessageCipher
from rustyray.security.errors import CertificateError
from rustyray.security.firewall import Firewall
from rustyray.security.keystore import ClusterKeyStore
from rustyray.security.replication_adapter import KeyRingReplication, RuleSetReplication
from rustyray.security.rotation import certificate_expiry
from rustyray.security.rulesets import apply_acl_rules, apply_firewall_rules, default_firewall_rules
from rustyray.transport.tcp import parse_address

if TYPE_CHECKING:
    from rustyray.settings.channel_adapter import SettingsChannel
    from rustyray.transport.api import Host
    from rustyray.transport.connection import Connection

log = logging.getLogger(__name__)


def _source_ip(conn: Connection) -> str | None:
    if conn.peer_address:
        with contextlib.suppress(ValueError):
            return parse_address(conn.peer_address)[0]
    # inbound QUIC connections share the server's unconnected socket: ask aioquic for the path address
    quic = getattr(getattr(conn, "proto", None), "_quic", None)
    paths = getattr(quic, "_network_paths", None)
    if paths:
        return str(paths[0].addr[0])
    return None


class SecurityService:
    def __init__(self, node: Host, *, settings: SettingsChannel) -> None:
        self.node = node
        self.config: SecurityServiceConfig = node.config.cluster.security
        self.acl = Acl(AclConfig(default_action=AclAction(self.config.acl_default_action.upper())))
        self.firewall = Firewall()
        self.admission = Admission(self.acl, self.firewall, node.node_id)
        self.keys = ClusterKeyStore(Path(node.config.state_dir), self.config.key_ring_file)
        self.certs = NodeCertificates(node)
        self.cipher: MessageCipher | None = None
        self.settings = settings
        self.rules = RuleSetReplication(node, settings, export={"acl": self.acl.to_dicts,
                                                                "firewall": self.firewall.to_dicts})
        """The ACL and firewall rule sets on the cluster settings channel (keys ``security.acl``/``.firewall``)."""
        self.replication = KeyRingReplication(node, sync_timeout_s=self.config.sync_timeout_s,
                                              key_ring=lambda: self._cipher().ring, keys=self.keys)
        self.api = SecurityApi(self, clock=time.time)

    @property
    def admission_refusals(self) -> Counter[str]:
        """Inbound connections refused (or closed) by the ACL or the firewall, by reason."""
        return self.admission.refusals

    def _cipher(self) -> MessageCipher:
        assert self.cipher is not None
        return self.cipher

    # ------------------------------------------------------------------------------------------- life
    async def start(self) -> None:
        node = self.node
        node.config.node_dir.mkdir(parents=True, exist_ok=True)
        if not self.rules.changed("firewall"):
            self._apply_firewall(default_firewall_rules(self.config.default_protocols,
                                                        self.config.default_connection_limit))
        self.rules.subscribe({"acl": self._apply_acl, "firewall": self._apply_firewall})
        self.cipher = MessageCipher(self.keys.open(time.time()))
        self.sync_message_filter()
        if node.server_ssl is not None:
            node.server_ssl._msg_callback = self._tls_message  # type: ignore[attr-defined]
        self.replication.install()

    def encrypt_connection(self, conn: Any) -> None:
        """Seal this connection's frames when the peer offered the "encryption" capability too."""
        cipher = self.cipher
        if cipher is None or "encryption" not in conn.peer_capabilities:
            return
        conn.enable_payload_encryption(lambda aad, plain: cipher.seal(plain, aad),
                                       lambda aad, sealed: cipher.open(sealed, aad))

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            self.node.message_filters.remove(self._admit_frame)

    def health(self) -> tuple[str, str]:
        node = self.node
        if node.server_ssl is None or node.credentials is None:
            return "degraded", "TLS is disabled on this node"
        try:
            info = self.certs.info()
        except CertificateError as exc:
            return "failed", str(exc)
        state, days = certificate_expiry(info.not_after.timestamp(), time.time())
        if state == "failed":
            return "failed", "node certificate has expired"
        detail = (f"TLS1.3+mTLS, cert expires in {days:.0f} d, {len(self.acl.rules())} ACL / "
                  f"{len(self.firewall.rules())} firewall rules, {node.stats.handshake_refusals} refusals")
        return state, detail

    # ------------------------------------------------------------------------------------------- TLS refusals
    def _count_tls_refusal(self, reason: str) -> None:
        self.node.stats.handshake_refusals += 1
        self.node.stats.count_refusal(reason)

    def _tls_message(self, conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any,
                     data: bytes) -> None:
        """OpenSSL message callback of the live server context: a fatal alert we write is a refusal."""
        if direction != "write" or content_type != ssl._TLSContentType.ALERT:  # type: ignore[attr-defined]
            return
        code = int(msg_type)
        reason = tls_alert_refusal(code, getattr(msg_type, "name", str(code)))
        if reason is not None:
            self._count_tls_refusal(reason)

    def watch_quic(self, quic: Any) -> None:
        """Count a server-side QUIC handshake that aioquic closes with a TLS alert."""
        original = quic.close

        def close(error_code: int = 0, frame_type: int | None = None, reason_phrase: str = "") -> None:
            code = quic_alert(error_code, quic._handshake_complete)
            if code is not None:
                from aioquic.tls import AlertDescription

                try:
                    name = AlertDescription(code).name
                except ValueError:
                    name = str(code)
                self._count_tls_refusal(f"quic_{name}")
            original(error_code=error_code, frame_type=frame_type, reason_phrase=reason_phrase)

        quic.close = close

    # ------------------------------------------------------------------------------------------- admission
    def admit(self, conn: Connection, hello: Any) -> str | None:
        if hello is not None:  # decided once per connection, before the hello
            return None
        ip = _source_ip(conn)
        if ip is None:
            return None
        refusal = self.admission.admit_connection(ip, conn.protocol_name, time.monotonic())
        if refusal is None:  # admitted: the connection holds a firewall slot until it closes
            self.node.spawn(self._release_on_close(conn, ip), name=f"firewall slot {conn.conn_id}")
        return refusal

    def sync_message_filter(self) -> None:
        """Check every inbound message only while a rule needs it: no rule, no cost per frame."""
        filters = self.node.message_filters
        wanted = self.admission.filters_messages
        if wanted and self._admit_frame not in filters:
            filters.append(self._admit_frame)
        elif not wanted and self._admit_frame in filters:
            filters.remove(self._admit_frame)

    def _admit_frame(self, conn: Connection, frame: Any) -> str | None:
        """Rate limits (and CIDR blocks added after the connection was admitted) per inbound message."""
        ip = conn.__dict__.get("_firewall_source")
        if ip is None:
            ip = conn.__dict__["_firewall_source"] = _source_ip(conn) or ""
        return self.admission.admit_message(type(frame.message), ip, time.monotonic())

    async def _release_on_close(self, conn: Connection, ip: str) -> None:
        try:
            await conn.wait_closed()
        finally:
            self.admission.connection_closed(ip)

    # ------------------------------------------------------------------------------------------- rule sets
    def _apply_acl(self, rules: list[dict[str, Any]]) -> None:
        apply_acl_rules(self.acl, rules)
        # after the current reply (a replicated rule may arrive on a link it is about to close)
        asyncio.get_running_loop().call_later(0.1, self._enforce_acl_on_open_connections)

    def _enforce_acl_on_open_connections(self) -> None:
        """A rule applies to connections already open too: close inbound ones the ACL now denies.

        Messages only travel on admitted connections, so this makes every message subject to the
        current rules without a check on the per-frame hot path.
        """
        for conn in list(self.node.connections.values()):
            if conn.outbound or conn.is_closed:
                continue
            ip = _source_ip(conn)
            if ip is None:
                continue
            refusal = self.admission.recheck(ip)
            if refusal is not None:
                log.warning("%s closes %s from %s: the ACL now denies it (%s)", self.node.node_id, conn.conn_id,
                            ip, refusal)
                conn.close(refusal)

    def _apply_firewall(self, rules: list[dict[str, Any]]) -> None:
        apply_firewall_rules(self.firewall, rules)
        self.sync_message_filter()


