"""RustyRay security: cluster PKI, TLS 1.3/mTLS (TCP and QUIC), message encryption, ACLs, firewall, identity.

Modules (import what you need; this package re-exports the most used names):

- ``certificates``  cluster CA and node credentials on disk (edge: files, wall clock)
- ``tls``           ``ssl.SSLContext`` builders, peer identity checks, the TLS config report
- ``quic_tls``      aioquic configuration plus enforced client certificates
- ``identity``      challenge-response node identity and client-certificate checks
- ``encryption``    AEAD sealing with a rotating key ring (sans-I/O); ``keystore`` persists the ring
- ``acl``, ``firewall``  sans-I/O admission decisions
- ``errors``        the exception tree (``SecurityError`` at the root)
"""

from rustyray.security.acl import Acl, AclAction, AclConfig, AclDecision, AclRule
from rustyray.security.certificates import (
    CertInfo,
    NodeCredentials,
    cert_matches_key,
    ensure_cluster_ca,
    ensure_node_credentials,
    install_node_certificate,
    issue_node_certificate,
    load_certificate_info,
    rotate_node_credentials,
)
from rustyray.security.encryption import CipherAlgorithm, EncryptionConfig, KeyRing, MessageCipher
from rustyray.security.errors import (
    CertificateError,
    DecryptionError,
    InvalidRuleError,
    KeyRingError,
    PeerIdentityError,
    SecurityError,
)
from rustyray.security.firewall import Firewall, FirewallConfig, RefusalReason, TransportProtocol, Verdict
from rustyray.security.identity import (
    IdentityResult,
    TrustLevel,
    sign_challenge,
    verify_client_certificate,
    verify_signature,
)
from rustyray.security.tls import (
    client_context,
    peer_node_id,
    quic_configuration,
    require_client_certificate,
    server_context,
    tls_config_report,
    verify_claimed_identity,
)

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
