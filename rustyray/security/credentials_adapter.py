"""The node's certificate files and TLS setup, as the security API and the health check read and replace them.

An adapter: every method reads or writes files under the node's ``certs_dir`` (through ``certificates``
and ``tls``) or reloads the node's TLS contexts. The decisions around it (what a rotation does and
reports, when a certificate is due) are in ``rotation``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from cryptography import x509

from rustyray.security.certificates import (
    CertInfo,
    install_node_certificate,
    load_certificate_info,
    rotate_node_credentials,
)
from rustyray.security.challenges import SCHEME, IdentityChallenge
from rustyray.security.identity import (
    ClientCertResult,
    new_challenge,
    sign_challenge,
    verify_client_certificate,
    verify_signature,
)
from rustyray.security.quic_tls import QUIC_ALPN
from rustyray.security.rotation import RotationPlan, RotationSource
from rustyray.security.tls import tls_config_report

if TYPE_CHECKING:
    from rustyray.transport.api import Host

__all__ = ["ClientCheck", "NodeCertificates"]


class ClientCheck(NamedTuple):
    """A client certificate checked against the cluster CA, with its validity period."""

    result: ClientCertResult
    not_before: dt.datetime  # timezone-aware UTC
    not_after: dt.datetime


class NodeCertificates:
    """This node's credentials, the cluster's certificate directory and the identity proofs made with them.

    TLS must be on (``node.credentials`` set) for every call but ``tls_report``, ``member_certificate``,
    ``exists`` and ``new_challenge``.
    """

    def __init__(self, node: Host) -> None:
        self.node = node

    def info(self) -> CertInfo:
        """The node's current certificate (raises ``CertificateError`` when unreadable)."""
        assert self.node.credentials is not None
        return load_certificate_info(self.node.credentials.cert_path)

    def tls_report(self) -> dict[str, Any]:
        """The TLS configuration of the live TCP server context (with the served certificate) and of QUIC."""
        node = self.node
        out = tls_config_report(node.server_ssl, node.credentials)
        if node.credentials is not None:
            info = self.info()
            out["cert_serial"] = format(info.serial, "x")
            out["cert_fingerprint_sha256"] = info.fingerprint_sha256
        out["quic"] = {
            "enabled": bool(node.quic_address),
            "version": "TLS1.3" if node.quic_address else None,
            "alpn": [QUIC_ALPN] if node.quic_address else [],
            "mutual_tls": bool(node.quic_address) and node.credentials is not None,
            "address": node.quic_address or None,
        }
        return out

    def member_certificate(self, node_id: str) -> Path | None:
        """``certs_dir/<node_id>.pem`` when the cluster holds a certificate for that node (not the CA's)."""
        path = self.node.config.certs_dir / f"{node_id}.pem"
        return None if node_id == "ca" or not path.is_file() else path

    @staticmethod
    def exists(path: str) -> bool:
        return Path(path).is_file()

    def install(self, plan: RotationPlan) -> None:
        """Install the operator's certificate (and key); ``CertificateError`` when it does not fit."""
        assert plan.source is RotationSource.INSTALLED and plan.new_cert_path is not None
        install_node_certificate(self.node.config.certs_dir, self.node.node_id, Path(plan.new_cert_path),
                                 Path(plan.new_key_path) if plan.new_key_path else None)

    def reissue(self) -> None:
        """Have the cluster CA issue the node a fresh certificate and key."""
        rotate_node_credentials(self.node.config.certs_dir, self.node.node_id)

    def check_client(self, certificate_pem: str) -> ClientCheck:
        """Check a PEM client certificate against the cluster CA; ``ValueError`` when it is not PEM."""
        assert self.node.credentials is not None
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        result = verify_client_certificate(self.node.credentials.ca_path, certificate_pem.encode())
        return ClientCheck(result, cert.not_valid_before_utc, cert.not_valid_after_utc)

    def verify_identity(self, node_id: str, cert_path: Path, challenge: IdentityChallenge,
                        signature: bytes) -> dict[str, Any]:
        """Whether ``signature`` proves possession of ``node_id``'s cluster certificate for ``challenge``.

        Only the domain-separated scheme of ``identity``: no fallback to a signature over bare bytes.
        """
        assert self.node.credentials is not None
        out = verify_signature(self.node.credentials.ca_path, cert_path, node_id, challenge, signature).to_dict()
        out["scheme"] = SCHEME
        return out

    def sign(self, challenge: IdentityChallenge) -> bytes:
        """This node's answer to ``challenge`` (``identity`` scheme, the node itself as prover)."""
        assert self.node.credentials is not None
        return sign_challenge(self.node.credentials, self.node.node_id, challenge)

    def new_challenge(self, now: float) -> IdentityChallenge:
        """A fresh challenge issued by this node at ``now`` (OS entropy)."""
        return new_challenge(self.node.node_id, now)
