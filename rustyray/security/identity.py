"""Cryptographic node identity: challenge-response with the node's certificate key (NETWORKING-054/049).

Theory of operation
-------------------
A node (the *prover*) proves to another node (the *verifier*) that it is ``node_id`` by signing a fresh
challenge the verifier issued, with the private key of its cluster certificate (ISO/IEC 9798-3 unilateral
authentication, random-number variant). The flow, over the API::

    verifier  POST /security/identity/challenge          -> token (challenges.IdentityChallenge, booked)
    prover    POST /security/identity/sign {token}       -> signature over identity_message(token, itself)
    verifier  POST /security/identity/verify {node_id, token, signature}

The verifier accepts with ``trust_level="full"`` only when all of these hold: the token is one it issued,
younger than the book's TTL and presented for the first time (``challenges.ChallengeBook``); the claimed
node's certificate is signed directly by the cluster CA; both are within their validity period at ``now``;
the certificate's CN equals the claimed ``node_id``; and the signature over ``identity_message`` verifies
with that certificate's public key. Anything else yields ``verified=False``, ``trust_level="none"`` and a
``reason``. There is no fallback to a signature over the bare challenge.

What is signed (all integers big-endian, node ids UTF-8 with a one-byte length, so the encoding is
injective and no field can bleed into its neighbour)::

    b"rustyray-node-identity-v2\x00"          context: domain separation
    u8 len(verifier) || verifier              who issued the challenge, and alone will accept the answer
    u8 len(prover)   || prover                who answers: the signing node's own id, never the caller's
    nonce (32 bytes)                          the verifier's randomness
    u64 issued_at_ms                          the verifier's issue time

Binding the verifier stops a proof made for one verifier being replayed to another; binding the prover
stops node A's signature passing for node B (on top of the CN check); the nonce and its single use in the
verifier's book stop replays; the issue time lets the book expire it. The context prefix keeps the node key,
which also signs TLS 1.3 handshakes, from ever producing a signature an identity verifier and a TLS peer
would both accept (a TLS 1.3 CertificateVerify input starts with 64 spaces, RFC 8446 4.4.3), and ties the
signature to this scheme's version: a ``-v1`` signature (context || bare challenge) does not verify here.

A node signs nothing else with this module: ``sign_challenge`` takes an ``IdentityChallenge``, never bytes.

``verify_client_certificate`` is the certificate half alone, for the mTLS ``/security/mtls/verify``
endpoint, where TLS has already proven key possession.
"""

from __future__ import annotations

import datetime as dt
import os
import struct
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
from rustyray.security.challenges import NONCE_SIZE, SCHEME, IdentityChallenge, TrustLevel
from rustyray.security.errors import CertificateError

__all__ = [
    "CHALLENGE_SIZE",
    "CONTEXT",
    "ClientCertResult",
    "IdentityChallenge",
    "IdentityResult",
    "TrustLevel",
    "identity_message",
    "new_challenge",
    "sign_challenge",
    "verify_client_certificate",
    "verify_signature",
]

CHALLENGE_SIZE = NONCE_SIZE
CONTEXT = b"rustyray-node-identity-v2\x00"


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


def new_challenge(verifier: str, now: float,
                  random_bytes: Callable[[int], bytes] = os.urandom) -> IdentityChallenge:
    """A challenge ``verifier`` issues at ``now`` (seconds since the epoch), with fresh OS randomness."""
    return IdentityChallenge.issue(verifier, random_bytes(NONCE_SIZE), now)


def _id_field(node_id: str) -> bytes:
    raw = node_id.encode("utf-8")
    if not 1 <= len(raw) <= 255:
        raise ValueError(f"node id must be 1..255 UTF-8 bytes, got {len(raw)}")
    return bytes([len(raw)]) + raw


def identity_message(challenge: IdentityChallenge, prover: str) -> bytes:
    """The exact bytes a prover signs for ``challenge`` (layout in the module docstring)."""
    return (CONTEXT + _id_field(challenge.verifier) + _id_field(prover) + challenge.nonce
            + struct.pack(">Q", challenge.issued_at_ms))


def sign_challenge(creds: NodeCredentials, prover: str, challenge: IdentityChallenge) -> bytes:
    """Sign ``challenge`` as ``prover`` with the node's certificate key (ECDSA P-256/SHA-256 DER, or Ed25519).

    Takes a structured challenge, never raw bytes, so the key signs nothing but identity messages.
    """
    try:
        key = serialization.load_pem_private_key(Path(creds.key_path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot load private key {creds.key_path}: {exc}") from exc
    message = identity_message(challenge, prover)
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
    challenge: IdentityChallenge,
    signature: bytes,
    *,
    now: dt.datetime | None = None,
) -> IdentityResult:
    """Check that ``signature`` over ``identity_message(challenge, node_id)`` proves possession of a cluster
    certificate naming ``node_id``. Freshness is the caller's ``ChallengeBook``'s business, not this check's.

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
    message = identity_message(challenge, node_id)
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, message)
        else:
            return fail(f"unsupported key type {type(public_key).__name__}")
    except InvalidSignature:
        return fail(f"signature does not verify: it must be {node_id}'s signature over the {SCHEME} message "
                    "for this challenge (a signature over the bare challenge or another domain is refused)")
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
