"""RustyRay security: cluster PKI, TLS 1.3/mTLS (TCP and QUIC), message encryption, ACLs, firewall, identity.

Modules (import what you need; this package re-exports the most used names, each loaded on first use):

- ``certificates``  cluster CA and node credentials on disk (edge: files, wall clock)
- ``tls``           ``ssl.SSLContext`` builders, peer identity checks, the TLS config report
- ``quic_tls``      aioquic configuration plus enforced client certificates
- ``identity``      challenge-response node identity and client-certificate checks
- ``encryption``    AEAD sealing with a rotating key ring (sans-I/O); ``keystore`` persists the ring
- ``acl``, ``firewall``  sans-I/O admission decisions; ``admission`` composes them per connection and message
- ``rulesets``      replicated rule-set versioning (last writer wins) and merging a whole set (sans-I/O)
- ``rotation``, ``challenges``  certificate rotation planning and identity challenge bookkeeping (sans-I/O)
- ``service``       the asyncio adapter on a live node; ``api`` its management operations (``SecurityApi``);
  ``replication_adapter`` moves rule sets and key rings between nodes; ``credentials_adapter`` the cert files
- ``errors``        the exception tree (``SecurityError`` at the root)
"""

import importlib

_MODULES: dict[str, tuple[str, ...]] = {
    "acl": ("Acl", "AclAction", "AclConfig", "AclDecision", "AclRule"),
    "certificates": (
        "CertInfo", "NodeCredentials", "cert_matches_key", "ensure_cluster_ca", "ensure_node_credentials",
        "install_node_certificate", "issue_node_certificate", "load_certificate_info", "rotate_node_credentials",
    ),
    "encryption": ("CipherAlgorithm", "EncryptionConfig", "KeyRing", "MessageCipher"),
    "errors": (
        "CertificateError", "DecryptionError", "InvalidRuleError", "KeyRingError", "PeerIdentityError", "SecurityError",
    ),
    "firewall": ("Firewall", "FirewallConfig", "RefusalReason", "TransportProtocol", "Verdict"),
    "identity": ("IdentityResult", "TrustLevel", "sign_challenge", "verify_client_certificate", "verify_signature"),
    "tls": (
        "client_context", "peer_node_id", "quic_configuration", "require_client_certificate", "server_context",
        "tls_config_report", "verify_claimed_identity",
    ),
}
_EXPORTS: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}
"""Public name -> the submodule that defines it. Imported on first use, so importing one core of this
package (``acl``, ``firewall``, ``config``, ...) loads neither ``ssl``/``aioquic`` (``tls``) nor the
credential files' adapter (``certificates``, which pulls in ``socket`` through ``cryptography.x509``)."""


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "Acl",
    "AclAction",
    "AclConfig",
    "AclDecision",
    "AclRule",
    "CertInfo",
    "CertificateError",
    "CipherAlgorithm",
    "DecryptionError",
    "EncryptionConfig",
    "Firewall",
    "FirewallConfig",
    "IdentityResult",
    "InvalidRuleError",
    "KeyRing",
    "KeyRingError",
    "MessageCipher",
    "NodeCredentials",
    "PeerIdentityError",
    "RefusalReason",
    "SecurityError",
    "TransportProtocol",
    "TrustLevel",
    "Verdict",
    "cert_matches_key",
    "client_context",
    "ensure_cluster_ca",
    "ensure_node_credentials",
    "install_node_certificate",
    "issue_node_certificate",
    "load_certificate_info",
    "peer_node_id",
    "quic_configuration",
    "require_client_certificate",
    "rotate_node_credentials",
    "server_context",
    "sign_challenge",
    "tls_config_report",
    "verify_claimed_identity",
    "verify_client_certificate",
    "verify_signature",
]
