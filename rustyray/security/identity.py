"""Cryptographic node identity: challenge-response with the node's certificate key (NETWORKING-054/049).

Theory of operation
-------------------
A node proves it is ``node_id`` by signing a verifier-chosen random challenge with the private key of its
cluster certificate (ISO/IEC 9798-3 style unilateral authentication). The verifier accepts with
``trust_level="full"`` only when all of these hold: the certificate is signed directly by the cluster CA,
both are within their validity period at ``now``, the certificate's CN equals the claimed ``node_id``, and
the signature over the challenge verifies with the certificate's public key. Anything else yields
``trust_level="none"`` with a ``reason``.

Signatures are over ``b"rustyray-node-identity-v1\\x00" || challenge`` (domain separation): the node key
also signs TLS handshakes, and the prefix keeps a challenge from being a chosen TLS transcript.
Verifiers must use fresh random challenges (``new_challenge``) and discard them after one use, or a
recorded response can be replayed.

``verify_client_certificate`` is the certificate half alone, for the mTLS ``/security/mtls/verify``
endpoint, where TLS has already proven key possession.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from rustyray.records import record
from rustyray.security.certificates import NodeCredentials
from rustyray.security.errors import CertificateError

__all__ = [
    "CHALLENGE_SIZE",
    "ClientCertResult",
    "IdentityResult",
    "TrustLevel",
    "new_challenge",
    "sign_challenge",
    "verify_client_certificate",
    "verify_signature",
]

CHALLENGE_SIZE = 32
_CONTEXT = b"rustyray-node-identity-v1\x00"


class TrustLevel(enum.Enum):
    FULL = "full"
    NONE = "none"


@dataclass(frozen=True)
class IdentityResult:
    verified: bool
    node_id: str
    trust_level: TrustLevel
    reason: str = ""

    def to_dict(self) -> dict[str, object]:
        """The NETWORKING-054 response body (plus ``reason``)."""
        return record(self)


class ClientCertResult(NamedTuple):
    authenticated: bool  # verified and names a client (has a CN)
    client_cn: str | None
    verified: bool  # signed by the cluster CA and within validity

    def to_dict(self) -> dict[str, object]:
        return self._asdict()


def new_challenge(random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    return random_bytes(CHALLENGE_SIZE)


def sign_challenge(creds: NodeCredentials, challenge: bytes) -> bytes:
    """Sign ``challenge`` with the node's certificate key (ECDSA P-256/SHA-256 DER, or Ed25519)."""
    try:
        key = serialization.load_pem_private_key(Path(creds.key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot load private key {creds.key_path}: {exc}") from exc
    message = _CONTEXT + challenge
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(message, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    raise CertificateError(f"unsupported node key type {type(key).__name__}")


def _load_any_cert(cert: bytes | str | Path) -> x509.Certificate:
    """PEM bytes/text, DER bytes, or a path to a PEM file."""
    try:
        if isinstance(cert, Path):
            return x509.load_pem_x509_certificate(cert.read_bytes())
        if isinstance(cert, str):
            if "-----BEGIN" in cert:
                return x509.load_pem_x509_certificate(cert.encode())
            return x509.load_pem_x509_certificate(Path(cert).read_bytes())
        if b"-----BEGIN" in cert:
            return x509.load_pem_x509_certificate(cert)
        return x509.load_der_x509_certificate(cert)
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot parse certificate: {exc}") from exc


def _chain_problem(ca_path: Path, cert: x509.Certificate, now: dt.datetime) -> str | None:
    """None when ``cert`` is issued by the CA and both are valid at ``now``; else what is wrong."""
    try:
        ca = x509.load_pem_x509_certificate(Path(ca_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot load cluster CA {ca_path}: {exc}") from exc
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "certificate is not issued by the cluster CA"
    for which, c in (("certificate", cert), ("cluster CA", ca)):
        if now < c.not_valid_before_utc:
            return f"{which} is not yet valid"
        if now >= c.not_valid_after_utc:
            return f"{which} has expired"
    return None


def _cn(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


def _now(now: dt.datetime | None) -> dt.datetime:
    return dt.datetime.now(dt.UTC) if now is None else now


def verify_signature(
    ca_path: Path,
    cert_pem_or_path: bytes | str | Path,
    node_id: str,
    challenge: bytes,
    signature: bytes,
    *,
    now: dt.datetime | None = None,
) -> IdentityResult:
    """Check that ``signature`` proves possession of a cluster certificate naming ``node_id``.

    Never raises for a bad peer (that is ``trust_level="none"``); raises ``CertificateError`` only when
    the local CA file is unusable.
    """
    def fail(reason: str) -> IdentityResult:
        return IdentityResult(False, node_id, TrustLevel.NONE, reason)

    try:
        cert = _load_any_cert(cert_pem_or_path)
    except CertificateError as exc:
        return fail(str(exc))
    problem = _chain_problem(Path(ca_path), cert, _now(now))
    if problem is not None:
        return fail(problem)
    cn = _cn(cert)
    if cn != node_id:
        return fail(f"certificate names {cn!r}, not {node_id!r}")
    public_key = cert.public_key()
    message = _CONTEXT + challenge
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            return fail(f"unsupported key type {type(public_key).__name__}")
    except InvalidSignature:
        return fail("signature does not verify")
    return IdentityResult(True, node_id, TrustLevel.FULL, "ok")


def verify_client_certificate(
    ca_path: Path, cert_pem: bytes | str | Path, *, now: dt.datetime | None = None
) -> ClientCertResult:
    """Certificate-only check for an mTLS client (``getpeercert(binary_form=True)`` DER works too)."""
    try:
        cert = _load_any_cert(cert_pem)
    except CertificateError:
        return ClientCertResult(False, None, False)
    verified = _chain_problem(Path(ca_path), cert, _now(now)) is None
    cn = _cn(cert)
    return ClientCertResult(verified and cn is not None, cn, verified)
