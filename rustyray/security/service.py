"""Security service: the asyncio adapter that puts the security cores to work on a live node.

What it wires (NETWORKING-048 to 054):

* TLS/mTLS accounting. The node already enforces mutual TLS on TCP and QUIC, but a peer refused by the
  TLS layer never reaches the node's accept path, so the service counts those refusals itself: on TCP
  through the live server context's message callback (every fatal alert the server writes, e.g.
  ``unknown_ca``, ``certificate_expired``, ``certificate_required``), on QUIC through a per-connection
  hook that sees the CRYPTO_ERROR close of a failed handshake. Both land in ``node.stats`` as
  ``tls_<alert>`` / ``quic_<alert>`` refusals.
* Admission. One admission filter (``admit``, wired by the node) runs the ACL and the firewall on every inbound
  connection (source = the peer's IP, destination = this node id) before its hello; an admitted
  connection holds a firewall connection slot until it closes.
* Cluster-wide rules. ACL and firewall rule sets are replicated whole, last writer wins on
  ``(version, origin)``: a change is applied locally, persisted in the node dir and pushed to every live
  member (acknowledged); a peer that (re)connects is sent the current sets, so a node that missed a change
  converges. Two concurrent changes on different nodes resolve to one of them.
* The cluster key ring lives in ``state_dir/keyring.json`` (0600), created once; every node loads it, so
  ciphertext from one node opens on another. Rotation happens under a file lock and the new ring is
  pushed to the live members, which merge it (old keys keep opening).
* Certificate rotation and challenge-response identity over the node's own credentials.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import fcntl
import json
import logging
import os
import secrets
import ssl
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from rustyray.errors import ApiError
from rustyray.protocol.control import Goodbye, Heartbeat
from rustyray.protocol.messages import Message
from rustyray.security.acl import Acl, AclAction, AclConfig
from rustyray.security.certificates import (
    install_node_certificate,
    load_certificate_info,
    rotate_node_credentials,
)
from rustyray.security.encryption import (
    CipherAlgorithm,
    EncryptionConfig,
    KeyRing,
    MessageCipher,
    encrypt_response,
)
from rustyray.security.errors import CertificateError, DecryptionError, InvalidRuleError, KeyRingError
from rustyray.security.firewall import Firewall, TransportProtocol
from rustyray.security.identity import (
    TrustLevel,
    new_challenge,
    sign_challenge,
    verify_client_certificate,
    verify_signature,
)
from rustyray.security.keystore import load_key_ring, load_or_create_key_ring, save_key_ring
from rustyray.security.quic_tls import QUIC_ALPN
from rustyray.security.tls import tls_config_report
from rustyray.transport.tcp import parse_address

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext
    from rustyray.transport.connection import Connection

log = logging.getLogger(__name__)

_CRYPTO_ERROR = 0x100  # QUIC CRYPTO_ERROR base; + TLS alert code (RFC 9001 section 4.8)
_BENIGN_ALERTS = {0, 90}  # close_notify, user_canceled


# ------------------------------------------------------------------------------------------------ config


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

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> SecurityServiceConfig:
        known = {k: v for k, v in section.items() if k in cls.__dataclass_fields__}
        if "default_protocols" in known:
            known["default_protocols"] = tuple(known["default_protocols"])
        cfg = cls(**known)
        cfg.validate()
        return cfg


# ------------------------------------------------------------------------------------------------ wire


class SecurityRulesSync(Message):
    """A whole replicated rule set ("acl" or "firewall"); receivers keep the highest (version, origin)."""

    kind: str
    version: int
    origin: str
    rules: list[dict[str, Any]]


class SecurityKeyRingSync(Message):
    """The cluster key ring after a rotation; receivers merge it (keys are only ever added)."""

    ring: dict[str, Any]


class SecuritySyncAck(Message):
    applied: bool
    version: int = 0


# ------------------------------------------------------------------------------------------------ helpers


def _b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ApiError(422, f"{field}: not valid base64", field) from None


def _rule_error(exc: InvalidRuleError, prefix: str = "") -> ApiError:
    """InvalidRuleError messages start with the field name ("source: ..."); keep it in the API error."""
    name = str(exc).split(":", 1)[0].strip() or "rule"
    return ApiError(422, str(exc), f"{prefix}{name}")


_CONTROL_PLANE: dict[type, bool] = {}  # message type -> exempt from per-message firewall rules


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


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _merge_ring(mine: KeyRing, other: KeyRing) -> bool:
    """Add ``other``'s keys to ``mine``; adopt its primary when newer. True when ``mine`` changed."""
    before = (mine.key_ids(), mine.primary.key_id)
    for kid in other.key_ids():
        k = other.get(kid)
        assert k is not None
        try:
            mine.add(k.key, k.created_at, key_id=kid)
        except KeyRingError as exc:  # two nodes rotated at once without a shared disk
            log.error("key ring merge conflict on key %d: %s", kid, exc)
    if other.primary.key_id > mine.primary.key_id and mine.get(other.primary.key_id) is not None:
        p = other.primary
        mine.add(p.key, p.created_at, key_id=p.key_id, make_primary=True)
    return (mine.key_ids(), mine.primary.key_id) != before


class _RuleSet:
    """Version bookkeeping and persistence of one replicated rule set."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        self.version = 0
        self.origin = ""

    def load(self) -> list[dict[str, Any]] | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        self.version, self.origin = int(data.get("version", 0)), str(data.get("origin", ""))
        return list(data.get("rules", []))

    def save(self, rules: list[dict[str, Any]]) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        tmp.write_text(json.dumps({"version": self.version, "origin": self.origin, "rules": rules}))
        os.replace(tmp, self.path)

    def newer(self, version: int, origin: str) -> bool:
        return (version, origin) > (self.version, self.origin)


# ------------------------------------------------------------------------------------------------ service


class SecurityService:
    def __init__(self, node: Host) -> None:
        self.node = node
        self.config = SecurityServiceConfig.from_section(node.config.section("security"))
        self.acl = Acl(AclConfig(default_action=AclAction(self.config.acl_default_action.upper())))
        self.firewall = Firewall()
        self.admission_refusals: Counter[str] = Counter()
        self.message_refusals: Counter[str] = Counter()  # inbound messages refused by a firewall rule
        self.admitted = 0
        node_dir = node.config.node_dir
        self._acl_set = _RuleSet("acl", node_dir / "security_acl.json")
        self._fw_set = _RuleSet("firewall", node_dir / "security_firewall.json")
        state_dir = Path(node.config.state_dir)
        self.key_ring_path = state_dir / self.config.key_ring_file
        self._key_lock = state_dir / f".{self.config.key_ring_file}.lock"
        self.cipher: MessageCipher | None = None
        self.issued_challenges: dict[str, float] = {}
        self.rotations = 0

    # ------------------------------------------------------------------------------------------- life
    async def start(self) -> None:
        node = self.node
        node.config.node_dir.mkdir(parents=True, exist_ok=True)
        acl_rules = self._acl_set.load()
        if acl_rules:
            self._apply_acl(acl_rules)
        fw_rules = self._fw_set.load()
        if fw_rules is None:
            fw_rules = [
                {"id": "fw-1", "type": "protocol_filter", "allowed_protocols": list(self.config.default_protocols)},
                {"id": "fw-2", "type": "connection_limit", "max_connections": self.config.default_connection_limit},
            ]
        self._apply_firewall(fw_rules)
        with _file_lock(self._key_lock):
            ring = load_or_create_key_ring(self.key_ring_path.parent, time.time(),
                                           EncryptionConfig(key_ring_file=self.config.key_ring_file))
        self.cipher = MessageCipher(ring)
        self._sync_message_filter()
        if node.server_ssl is not None:
            node.server_ssl._msg_callback = self._tls_message  # type: ignore[attr-defined]
        node.on(SecurityRulesSync, self._on_rules_sync)
        node.on(SecurityKeyRingSync, self._on_key_ring_sync)

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
            info = load_certificate_info(node.credentials.cert_path)
        except CertificateError as exc:
            return "failed", str(exc)
        days = (info.not_after.timestamp() - time.time()) / 86400
        if days <= 0:
            return "failed", "node certificate has expired"
        detail = (f"TLS1.3+mTLS, cert expires in {days:.0f} d, {len(self.acl.rules())} ACL / "
                  f"{len(self.firewall.rules())} firewall rules, {node.stats.handshake_refusals} refusals")
        return ("degraded" if days < 7 else "healthy"), detail

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
        if code in _BENIGN_ALERTS:
            return
        name = getattr(msg_type, "name", str(code)).lower()
        self._count_tls_refusal(f"tls_{name}")

    def watch_quic(self, quic: Any) -> None:
        """Count a server-side QUIC handshake that aioquic closes with a TLS alert."""
        original = quic.close

        def close(error_code: int = 0, frame_type: int | None = None, reason_phrase: str = "") -> None:
            if _CRYPTO_ERROR <= error_code < _CRYPTO_ERROR + 0x100 and not quic._handshake_complete:
                from aioquic.tls import AlertDescription

                code = error_code - _CRYPTO_ERROR
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
        decision = self.acl.check(ip, self.node.node_id)
        if not decision.allowed:
            self.admission_refusals["acl_denied"] += 1
            return f"ACL: {decision.reason}"
        now = time.monotonic()
        verdict = self.firewall.admit_message(ip, now)  # a connection attempt costs a token too
        if verdict.allowed:
            try:
                proto = TransportProtocol(conn.protocol_name)
            except ValueError:
                proto = TransportProtocol.TCP
            verdict = self.firewall.admit_connection(ip, proto, now)
            if verdict.allowed:
                self.admitted += 1
                self.node.spawn(self._release_on_close(conn, ip), name=f"firewall slot {conn.conn_id}")
                return None
        assert verdict.reason is not None
        self.admission_refusals[f"firewall_{verdict.reason.value}"] += 1
        return f"firewall {verdict.rule_id}: {verdict.detail}"

    def _sync_message_filter(self) -> None:
        """Check every inbound message only while a rule needs it: no rule, no cost per frame."""
        filters = self.node.message_filters
        wanted = self.firewall.filters_messages
        if wanted and self._admit_frame not in filters:
            filters.append(self._admit_frame)
        elif not wanted and self._admit_frame in filters:
            filters.remove(self._admit_frame)

    def _admit_frame(self, conn: Connection, frame: Any) -> str | None:
        """Rate limits (and CIDR blocks added after the connection was admitted) per inbound message.

        The control plane is exempt: membership (SWIM, Raft), failure detection (heartbeats, probes), the
        replication of these very rules, and multiplexed-stream frames (a dropped window update or data
        chunk would stall or corrupt a stream; streams have their own flow control). Otherwise a tight
        limit would get healthy members declared dead, and the message that lifts the rule could itself
        be refused (seen in testing).
        """
        kind = type(frame.message)
        exempt = _CONTROL_PLANE.get(kind)
        if exempt is None:
            exempt = _CONTROL_PLANE[kind] = kind in (Heartbeat, Goodbye) or kind.__module__.startswith(
                ("rustyray.membership", "rustyray.health", "rustyray.security", "rustyray.pool"))
        if exempt:
            return None
        ip = conn.__dict__.get("_firewall_source")
        if ip is None:
            ip = conn.__dict__["_firewall_source"] = _source_ip(conn) or ""
        if not ip:
            return None
        verdict = self.firewall.admit_message(ip, time.monotonic())
        if verdict.allowed:
            return None
        assert verdict.reason is not None
        self.message_refusals[verdict.reason.value] += 1
        return f"firewall {verdict.rule_id}: {verdict.detail}"

    async def _release_on_close(self, conn: Connection, ip: str) -> None:
        try:
            await conn.wait_closed()
        finally:
            self.firewall.connection_closed(ip)

    # ------------------------------------------------------------------------------------------- replication
    def _apply_acl(self, rules: list[dict[str, Any]]) -> None:
        wanted = {r["rule_id"]: r for r in rules}
        for rule in self.acl.rules():
            if rule.rule_id not in wanted:
                self.acl.remove(rule.rule_id)
        have = {r.rule_id for r in self.acl.rules()}
        for rid, r in wanted.items():
            if rid not in have:
                self.acl.add(r["source"], r.get("destination", "*"), r.get("action", "ALLOW"),
                             r.get("priority", 100), rule_id=rid)
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
            decision = self.acl.check(ip, self.node.node_id)
            if not decision.allowed:
                self.admission_refusals["acl_denied"] += 1
                log.warning("%s closes %s from %s: ACL now denies it (%s)", self.node.node_id, conn.conn_id,
                            ip, decision.reason)
                conn.close(f"ACL: {decision.reason}")

    def _apply_firewall(self, rules: list[dict[str, Any]]) -> None:
        wanted = {r["id"]: r for r in rules}
        for rule in self.firewall.rules():
            if rule.rule_id not in wanted:
                self.firewall.remove_rule(rule.rule_id)
        have = {r.rule_id for r in self.firewall.rules()}
        for rid, r in wanted.items():
            if rid in have:
                continue
            # Firewall numbers rules itself; replicas must keep the origin's ids (rules are immutable).
            keep = self.firewall._next_id
            self.firewall._next_id = int(rid.split("-", 1)[1])
            try:
                self.firewall.add_rule(r)
            finally:
                self.firewall._next_id = max(keep, int(rid.split("-", 1)[1]) + 1)
        self._sync_message_filter()

    def _rule_set(self, kind: str) -> tuple[_RuleSet, list[dict[str, Any]]]:
        if kind == "acl":
            return self._acl_set, self.acl.to_dicts()
        return self._fw_set, self.firewall.to_dicts()

    async def _replicate(self, kind: str) -> list[str]:
        """Commit a local change: bump the version, persist, push to every live member."""
        rs, rules = self._rule_set(kind)
        rs.version += 1
        rs.origin = self.node.node_id
        rs.save(rules)
        msg = SecurityRulesSync(kind=kind, version=rs.version, origin=rs.origin, rules=rules)
        return await self._broadcast(msg)

    async def _broadcast(self, msg: Message) -> list[str]:
        peers = [m for m in self.node.live_members() if m in self.node.peers]
        replies = await self.node.request_members(msg, timeout=self.config.sync_timeout_s, peers=peers)
        for peer, reply in replies.items():
            if isinstance(reply, Exception):  # a member that is down converges when it reconnects
                log.warning("%s: security sync to %s failed: %s", self.node.node_id, peer, reply)
        return sorted([self.node.node_id] + [p for p, r in replies.items() if not isinstance(r, Exception)])

    def _on_rules_sync(self, ctx: RequestContext, msg: SecurityRulesSync) -> SecuritySyncAck:
        if msg.kind not in ("acl", "firewall"):
            return SecuritySyncAck(applied=False)
        rs, _ = self._rule_set(msg.kind)
        if not rs.newer(msg.version, msg.origin):
            return SecuritySyncAck(applied=False, version=rs.version)
        try:
            (self._apply_acl if msg.kind == "acl" else self._apply_firewall)(msg.rules)
        except (InvalidRuleError, KeyError, ValueError) as exc:
            log.error("%s: rejecting %s sync from %s: %s", self.node.node_id, msg.kind, msg.origin, exc)
            return SecuritySyncAck(applied=False, version=rs.version)
        rs.version, rs.origin = msg.version, msg.origin
        rs.save(self._rule_set(msg.kind)[1])
        return SecuritySyncAck(applied=True, version=rs.version)

    def on_peer_event(self, event: str, peer_id: str) -> None:
        if event != "connected":
            return
        for kind in ("acl", "firewall"):
            rs, rules = self._rule_set(kind)
            if rs.version > 0:
                msg = SecurityRulesSync(kind=kind, version=rs.version, origin=rs.origin, rules=rules)
                self.node.spawn(self._push(peer_id, msg), name=f"security sync {peer_id}")

    async def _push(self, peer_id: str, msg: Message) -> None:
        with contextlib.suppress(Exception):
            await self.node.request(peer_id, msg, timeout=self.config.sync_timeout_s)

    # ------------------------------------------------------------------------------------------- key ring
    def _reload_ring_from_disk(self) -> bool:
        assert self.cipher is not None
        try:
            disk = load_key_ring(self.key_ring_path)
        except KeyRingError as exc:
            log.error("cannot reload key ring: %s", exc)
            return False
        return _merge_ring(self.cipher.ring, disk)

    def _on_key_ring_sync(self, ctx: RequestContext, msg: SecurityKeyRingSync) -> SecuritySyncAck:
        assert self.cipher is not None
        incoming = KeyRing.from_dict(msg.ring)
        changed = _merge_ring(self.cipher.ring, incoming)
        with _file_lock(self._key_lock):
            try:
                disk = load_key_ring(self.key_ring_path)
            except KeyRingError:
                disk = None
            if disk is None or _merge_ring(disk, self.cipher.ring):
                save_key_ring(disk or self.cipher.ring, self.key_ring_path)
        return SecuritySyncAck(applied=changed, version=self.cipher.ring.primary.key_id)

    # ------------------------------------------------------------------------------------------- API: TLS
    def api_tls_config(self) -> dict[str, Any]:
        node = self.node
        out = tls_config_report(node.server_ssl, node.credentials)
        if node.credentials is not None:
            info = load_certificate_info(node.credentials.cert_path)
            out["cert_serial"] = format(info.serial, "x")
            out["cert_fingerprint_sha256"] = info.fingerprint_sha256
        out["quic"] = {
            "enabled": bool(node.quic_address),
            "version": "TLS1.3" if node.quic_address else None,
            "alpn": [QUIC_ALPN] if node.quic_address else [],
            "mutual_tls": bool(node.quic_address) and node.credentials is not None,
            "address": node.quic_address or None,
        }
        live = [c for c in node.connections.values() if not c.is_closed]
        out["connections"] = {
            "encrypted": sum(1 for c in live if c.tls_version is not None),
            "plaintext": sum(1 for c in live if c.tls_version is None),
            "payload_sealed": sum(1 for c in live if c.payload_encrypted),
        }
        out["payload_encryption"] = {
            "enabled": self.config.encrypt_payloads,
            "key_id": self.cipher.ring.primary.key_id if self.cipher is not None else None,
        }
        out["refusals"] = {
            "total": node.stats.handshake_refusals,
            "by_reason": dict(node.stats.refusals),
            "admission": dict(self.admission_refusals),
        }
        out["node"] = node.node_id
        return out

    def api_mtls_verify(self, certificate_pem: str | None = None) -> dict[str, Any]:
        node = self.node
        if node.credentials is None:
            raise ApiError(503, "TLS is disabled on this node: there is no cluster CA to verify against")
        if not certificate_pem:
            return {"authenticated": False, "client_cn": None, "verified": False,
                    "reason": "no client certificate: this API is plain HTTP, so send the PEM certificate to "
                              "check in the JSON body as certificate_pem"}
        try:
            cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        except ValueError as exc:
            raise ApiError(422, f"certificate_pem: not a PEM certificate ({exc})", "certificate_pem") from None
        result = verify_client_certificate(node.credentials.ca_path, certificate_pem.encode())
        out = result.to_dict()
        now = time.time()
        if result.verified:
            out["reason"] = "issued by the cluster CA and currently valid"
        elif not (cert.not_valid_before_utc.timestamp() <= now < cert.not_valid_after_utc.timestamp()):
            out["reason"] = "certificate is outside its validity period"
        else:
            out["reason"] = "certificate is not issued by the cluster CA"
        out["member"] = result.client_cn in node.live_members() if result.verified else False
        out["not_after"] = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
        return out

    # ------------------------------------------------------------------------------------------- API: encryption
    def _parse_algorithm(self, value: str) -> CipherAlgorithm:
        try:
            return CipherAlgorithm.parse(value)
        except ValueError as exc:
            raise ApiError(422, str(exc), "algorithm") from None

    def api_encrypt(self, data: str, algorithm: str = "AES256GCM") -> dict[str, Any]:
        assert self.cipher is not None
        alg = self._parse_algorithm(algorithm)
        out = encrypt_response(self.cipher, data.encode(), alg)
        out["node"] = self.node.node_id
        return out

    def api_decrypt(self, ciphertext: str, algorithm: str | None = None) -> dict[str, Any]:
        assert self.cipher is not None
        sealed = _b64(ciphertext, "ciphertext")
        if algorithm is not None:
            alg = self._parse_algorithm(algorithm)
            if len(sealed) >= 5 and sealed[4] != alg.wire_id:
                raise ApiError(400, f"algorithm: ciphertext was sealed with another algorithm than {alg.value}",
                               "algorithm")
        try:
            plain = self.cipher.open(sealed)
        except DecryptionError as exc:
            if "unknown key id" not in str(exc) or not self._reload_ring_from_disk():
                raise ApiError(400, f"ciphertext: {exc}", "ciphertext") from None
            try:
                plain = self.cipher.open(sealed)
            except DecryptionError as exc2:
                raise ApiError(400, f"ciphertext: {exc2}", "ciphertext") from None
        key_id = int.from_bytes(sealed[:4], "big")
        used = next(a for a in CipherAlgorithm if a.wire_id == sealed[4])
        out: dict[str, Any] = {"decrypted": True, "algorithm": used.value, "key_id": key_id,
                               "node": self.node.node_id}
        try:
            out["data"] = plain.decode()
        except UnicodeDecodeError:
            out["data"], out["encoding"] = base64.b64encode(plain).decode(), "base64"
        return out

    async def api_rotate_key(self) -> dict[str, Any]:
        assert self.cipher is not None
        previous = self.cipher.ring.primary.key_id
        with _file_lock(self._key_lock):
            ring = load_key_ring(self.key_ring_path)
            _merge_ring(ring, self.cipher.ring)
            new_id = ring.rotate(time.time())
            save_key_ring(ring, self.key_ring_path)
        self.cipher = MessageCipher(ring)
        reloaded = await self._broadcast(SecurityKeyRingSync(ring=ring.to_dict()))
        return {"rotated": True, "key_id": new_id, "previous_key_id": previous, "key_ids": ring.key_ids(),
                "reloaded_on": reloaded, "node": self.node.node_id}

    # ------------------------------------------------------------------------------------------- API: ACL
    async def api_acl_add(self, rule: dict[str, Any]) -> dict[str, Any]:
        try:
            added = self.acl.add_from_dict(rule)
        except InvalidRuleError as exc:
            raise _rule_error(exc, "rule.") from None
        applied = await self._replicate("acl")
        return {"rule_added": True, "rule_id": added.rule_id, "rule": added.to_dict(), "applied_on": applied,
                "version": self._acl_set.version}

    def api_acl_rules(self) -> dict[str, Any]:
        return {"rules": self.acl.to_dicts(), "default_action": self.acl.config.default_action.value,
                "version": self._acl_set.version, "refused": self.admission_refusals["acl_denied"],
                "node": self.node.node_id}

    async def api_acl_delete(self, rule_id: str) -> dict[str, Any]:
        if not self.acl.remove(rule_id):
            raise ApiError(404, f"no ACL rule {rule_id!r}", "rule_id")
        applied = await self._replicate("acl")
        return {"deleted": True, "rule_id": rule_id, "applied_on": applied, "version": self._acl_set.version}

    def api_acl_check(self, source: str, destination: str) -> dict[str, Any]:
        try:
            decision = self.acl.check(source, destination)
        except InvalidRuleError as exc:
            raise ApiError(422, f"source: {exc}", "source") from None
        return {**decision.to_dict(), "source": source, "destination": destination}

    # ------------------------------------------------------------------------------------------- API: firewall
    def api_firewall_rules(self) -> dict[str, Any]:
        return {"rules": self.firewall.to_dicts(), "version": self._fw_set.version,
                "stats": {**self.firewall.stats(), "admitted": self.admitted,
                          "messages_refused": dict(self.message_refusals)},
                "node": self.node.node_id}

    async def api_firewall_add(self, rule: dict[str, Any]) -> dict[str, Any]:
        try:
            added = self.firewall.add_rule(rule)
        except InvalidRuleError as exc:
            raise _rule_error(exc) from None
        self._sync_message_filter()
        applied = await self._replicate("firewall")
        return {"rule_added": True, "rule_id": added.rule_id, "rule": added.to_dict(), "applied_on": applied,
                "version": self._fw_set.version}

    async def api_firewall_delete(self, rule_id: str) -> dict[str, Any]:
        if not self.firewall.remove_rule(rule_id):
            raise ApiError(404, f"no firewall rule {rule_id!r}", "rule_id")
        self._sync_message_filter()
        applied = await self._replicate("firewall")
        return {"deleted": True, "rule_id": rule_id, "applied_on": applied, "version": self._fw_set.version}

    # ------------------------------------------------------------------------------------------- API: certs
    def api_rotate(self, node: str, new_cert_path: str | None = None,
                   new_key_path: str | None = None) -> dict[str, Any]:
        me = self.node
        if node != me.node_id:
            raise ApiError(404, f"this is {me.node_id}, not {node!r}; route the call to {node}", "node")
        if me.credentials is None:
            raise ApiError(409, "TLS is disabled on this node; enable transport.tls to rotate certificates")
        certs_dir = me.config.certs_dir
        previous = load_certificate_info(me.credentials.cert_path)
        if new_key_path is not None and not Path(new_key_path).is_file():
            raise ApiError(422, f"new_key_path: no such file {new_key_path}", "new_key_path")
        if new_cert_path is not None:
            if not Path(new_cert_path).is_file():
                raise ApiError(422, f"new_cert_path: no such file {new_cert_path}", "new_cert_path")
            try:
                install_node_certificate(certs_dir, me.node_id, Path(new_cert_path),
                                         Path(new_key_path) if new_key_path else None)
            except CertificateError as exc:
                raise ApiError(422, f"new_cert_path: {exc}; the current certificate stays in force",
                               "new_cert_path") from None
        else:
            rotate_node_credentials(certs_dir, me.node_id)
        me.reload_tls()
        self.rotations += 1
        info = load_certificate_info(me.credentials.cert_path)
        d = info.to_dict()
        return {"rotated": True, "node": me.node_id, "new_cert_expiry": d["not_after"], "serial": d["serial"],
                "previous_serial": format(previous.serial, "x"), "not_before": d["not_before"],
                "fingerprint_sha256": info.fingerprint_sha256, "cert_path": str(me.credentials.cert_path),
                "source": "installed" if new_cert_path else "issued by the cluster CA"}

    # ------------------------------------------------------------------------------------------- API: identity
    def _cert_of(self, node_id: str) -> Path:
        if not node_id or not all(c.isalnum() or c in "-_." for c in node_id) or node_id.startswith("."):
            raise ApiError(422, f"node_id: invalid node id {node_id!r}", "node_id")
        path = self.node.config.certs_dir / f"{node_id}.pem"
        if node_id == "ca" or not path.is_file():
            raise ApiError(404, f"no certificate for node {node_id!r} in the cluster", "node_id")
        return path

    def api_identity_verify(self, node_id: str, challenge: str, signature: str) -> dict[str, Any]:
        if self.node.credentials is None:
            raise ApiError(503, "TLS is disabled on this node: there is no cluster CA to verify against")
        cert_path = self._cert_of(node_id)
        chal = _b64(challenge, "challenge")
        sig = _b64(signature, "signature")
        ca = self.node.credentials.ca_path
        out = verify_signature(ca, cert_path, node_id, chal, sig).to_dict()
        out["scheme"] = "rustyray-node-identity-v1" if out["verified"] else None
        if not out["verified"] and out["reason"] == "signature does not verify" \
                and _raw_signature_ok(cert_path, chal, sig):
            # certificate, chain, validity and CN already passed inside verify_signature
            out.update(verified=True, trust_level=TrustLevel.FULL.value, reason="ok",
                       scheme="ecdsa-sha256 over the raw challenge")
        out["fresh"] = self._consume(chal)
        return out

    def _consume(self, challenge: bytes) -> bool:
        """True when this node issued the challenge (and it is now spent: a replay is not fresh)."""
        return self.issued_challenges.pop(challenge.hex(), None) is not None

    def api_identity_challenge(self) -> dict[str, Any]:
        chal = new_challenge()
        self.issued_challenges[chal.hex()] = time.time()
        while len(self.issued_challenges) > 1024:
            self.issued_challenges.pop(next(iter(self.issued_challenges)))
        return {"challenge": base64.b64encode(chal).decode(), "bytes": len(chal), "issued_by": self.node.node_id}

    def api_identity_sign(self, node_id: str, challenge: str) -> dict[str, Any]:
        me = self.node
        if node_id != me.node_id:
            raise ApiError(404, f"this is {me.node_id}, not {node_id!r}; route the call to {node_id}", "node_id")
        if me.credentials is None:
            raise ApiError(409, "TLS is disabled on this node: it has no certificate key to sign with")
        chal = _b64(challenge, "challenge")
        sig = sign_challenge(me.credentials, chal)
        return {"node_id": me.node_id, "challenge": challenge, "signature": base64.b64encode(sig).decode(),
                "scheme": "rustyray-node-identity-v1 (ECDSA P-256/SHA-256 over a domain-separated challenge)"}


def _raw_signature_ok(cert_path: Path, challenge: bytes, signature: bytes) -> bool:
    """ECDSA-SHA256 over the bare challenge: what a holder of ``<node>.key`` produces with ``cryptography``."""
    try:
        key = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_key()
    except (OSError, ValueError):
        return False
    if not isinstance(key, ec.EllipticCurvePublicKey):
        return False
    try:
        key.verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
