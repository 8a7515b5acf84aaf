"""TLS 1.3 contexts with mutual authentication for node-to-node links (NETWORKING-048/049).

Theory of operation
-------------------
Both ends run TLS 1.3 only (RFC 8446) and require a certificate from the other side that chains to the
cluster CA and nothing else (no system trust store). That makes the TLS handshake the cluster membership
check. Hostname checking is off because nodes dial raw IPs that can change; instead the peer's identity is
the CN of its verified certificate, and the transport compares it with the node id the peer claims in its
handshake message (``verify_claimed_identity``). In TLS 1.3 the server verifies the client certificate
after the client has already sent its Finished, so a rejected client typically sees the refusal as an
alert/EOF on its first read rather than as a handshake error.

Certificate files are read when a context is built, so after a rotation build new contexts.
QUIC (RFC 9001) uses the same credentials via ``rustyray.security.quic_tls``; ``quic_configuration`` is
re-exported here.
"""

from __future__ import annotations

import ssl
from typing import Any

from rustyray.security.certificates import NodeCredentials, load_certificate_info
from rustyray.security.errors import CertificateError, PeerIdentityError, SecurityError
from rustyray.security.quic_tls import (
    QUIC_ALPN,
    quic_configuration,
    quic_peer_node_id,
    require_client_certificate,
)

__all__ = [
    "QUIC_ALPN",
    "PeerIdentityError",
    "SecurityError",
    "client_context",
    "peer_node_id",
    "quic_configuration",
    "quic_peer_node_id",
    "require_client_certificate",
    "server_context",
    "tls_config_report",
    "verify_claimed_identity",
]


def _base_context(purpose: int, creds: NodeCredentials) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=str(creds.ca_path))
        ctx.load_cert_chain(certfile=str(creds.cert_path), keyfile=str(creds.key_path))
    except (OSError, ssl.SSLError) as exc:
        raise CertificateError(f"cannot load TLS credentials of {creds.node_id!r}: {exc}") from exc
    return ctx


def server_context(creds: NodeCredentials) -> ssl.SSLContext:
    """A TLS 1.3-only server context that demands a client certificate issued by the cluster CA."""
    return _base_context(ssl.PROTOCOL_TLS_SERVER, creds)


def client_context(creds: NodeCredentials) -> ssl.SSLContext:
    """A TLS 1.3-only client context presenting this node's certificate and trusting only the cluster CA.

    ``check_hostname`` is off: callers must check the peer's node id with ``verify_claimed_identity``.
    """
    ctx = _base_context(ssl.PROTOCOL_TLS_CLIENT, creds)
    ctx.check_hostname = False  # leaves verify_mode at CERT_REQUIRED
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    return ctx


def _cn_from_peercert(cert: dict[str, Any] | None) -> str | None:
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def peer_node_id(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
    """The CN of the peer's verified certificate, or None when there is no TLS or no peer certificate.

    With ``asyncio`` streams pass ``writer.get_extra_info("ssl_object")``.
    """
    if ssl_object is None:
        return None
    return _cn_from_peercert(ssl_object.getpeercert())


def verify_claimed_identity(ssl_object: ssl.SSLObject | ssl.SSLSocket | None, claimed_node_id: str) -> None:
    """Raise ``PeerIdentityError`` unless the verified peer certificate's CN equals ``claimed_node_id``."""
    actual = peer_node_id(ssl_object)
    if actual is None:
        raise PeerIdentityError(
            f"peer claims to be {claimed_node_id!r} but presented no verified certificate"
        )
    if actual != claimed_node_id:
        raise PeerIdentityError(f"peer claims to be {claimed_node_id!r} but its certificate names {actual!r}")


_VERSION_NAMES = {ssl.TLSVersion.TLSv1_3: "TLS1.3", ssl.TLSVersion.TLSv1_2: "TLS1.2"}


def tls_config_report(ctx: ssl.SSLContext | None, creds: NodeCredentials | None) -> dict[str, Any]:
    """The NETWORKING-048 ``/security/tls/config`` body describing the live context.

    ``cipher_suites`` lists the TLS 1.3 suites the context actually offers (from OpenSSL), not a constant.
    With ``ctx=None`` the report says TLS is disabled.
    """
    if ctx is None or creds is None:
        return {
            "enabled": False,
            "version": None,
            "cipher_suites": [],
            "certificates": {},
            "mutual_tls": False,
        }
    suites = [c["name"] for c in ctx.get_ciphers() if c.get("protocol") == "TLSv1.3"]
    lo, hi = ctx.minimum_version, ctx.maximum_version
    version = _VERSION_NAMES.get(lo, str(lo)) if lo == hi else f"{_VERSION_NAMES.get(lo, lo)}+"
    cert_info = load_certificate_info(creds.cert_path)
    ca_info = load_certificate_info(creds.ca_path)
    return {
        "enabled": True,
        "version": version,
        "cipher_suites": suites,
        "certificates": {"cert": str(creds.cert_path), "key": str(creds.key_path), "ca": str(creds.ca_path)},
        "mutual_tls": ctx.verify_mode == ssl.CERT_REQUIRED,
        "node_id": creds.node_id,
        "cert_subject_cn": cert_info.subject_cn,
        "cert_expiry": cert_info.to_dict()["not_after"],
        "ca_expiry": ca_info.to_dict()["not_after"],
    }
