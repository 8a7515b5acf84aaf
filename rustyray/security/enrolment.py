"""Certificate enrolment: decide whether a node's certificate signing request gets a certificate.

Why enrolment: a node actor placed on a machine that never saw the launch host's state directory has no
certificate and must not receive a private key over the wire. It generates its own key on its own host,
sends a PKCS#10 CSR to the CA holder (``rustyray.ray_edge.enrolment``), and gets back a certificate signed
by the cluster CA. The node's private key never leaves its host; the CA key never leaves the CA holder.

This module is the sans-I/O core of that exchange: no Ray, no asyncio, no sockets, no files, no clock.
:class:`Enrolment` takes the CSR bytes, the node id and listen addresses the request claims, and ``now``;
it returns :class:`Issued` (the PEM certificate) or :class:`Refusal` (a typed reason). The CA certificate
and key are handed in as objects by the edge that loaded them. :func:`build_csr` is the node's half
(key generation stays at the edge: it is the one piece of randomness the node must keep to itself).

Checks, in order (the first failure is the refusal):

* the bytes parse as a PEM or DER CSR (``MALFORMED``) and its self-signature verifies (``BAD_SIGNATURE``,
  proof that the requester holds the private key);
* the node id is a valid id (``BAD_NODE_ID``), the subject CN equals it (``WRONG_NAME``), and the CSR's
  SANs are exactly within ``DNS:<node_id>``, the loopback names and the claimed listen addresses, and
  include ``DNS:<node_id>`` and every listen address (``WRONG_SAN``);
* every listen address is one the policy permits (``ADDRESS_NOT_PERMITTED``: the edge passes the Ray
  nodes' IPs, so a node cannot get a certificate for an address outside the cluster);
* the key is ECDSA P-256/P-384 or RSA of at least 2048 bits (``WEAK_KEY``);
* the public key was not already certified for another node id (``KEY_REUSED``): one key, one identity;
* the CA is currently valid (``CA_EXPIRED``); the certificate's validity is ``[now - skew, now + days]``
  clipped to the CA's own notAfter.

Re-enrolling the same node id with a new key is allowed (a restarted node whose local state was lost).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

if TYPE_CHECKING:
    from cryptography import x509

# ``cryptography.x509`` is imported inside the functions that use it: it imports ``email.utils``, which
# imports ``socket``, and importing a sans-I/O core must not load socket (tests/unit/test_sans_io_guard.py).

__all__ = [
    "LOOPBACK_NAMES",
    "Enrolment",
    "EnrolmentPolicy",
    "Issued",
    "Refusal",
    "RefusalReason",
    "build_csr",
    "valid_node_id",
]

LOOPBACK_NAMES: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")
"""SANs every node certificate may carry besides its own id and listen addresses (as issued today)."""
_CLOCK_SKEW = dt.timedelta(minutes=5)
_EC_CURVES = ("secp256r1", "secp384r1")
_MIN_RSA_BITS = 2048


class RefusalReason(enum.Enum):
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    BAD_NODE_ID = "bad_node_id"
    WRONG_NAME = "wrong_name"
    WRONG_SAN = "wrong_san"
    ADDRESS_NOT_PERMITTED = "address_not_permitted"
    WEAK_KEY = "weak_key"
    KEY_REUSED = "key_reused"
    CA_EXPIRED = "ca_expired"


@dataclass(frozen=True)
class Refusal:
    """The CSR was not signed; ``reason`` is for programs, ``detail`` for people."""

    reason: RefusalReason
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason.value, "detail": self.detail}


@dataclass(frozen=True)
class Issued:
    """A signed node certificate (PEM), with the CA certificate it chains to."""

    node_id: str
    cert_pem: bytes
    ca_pem: bytes
    serial: int
    not_after: dt.datetime


@dataclass(frozen=True)
class EnrolmentPolicy:
    """What the CA accepts.

    ``permitted_hosts``: listen addresses a certificate may name (None: any); the Ray edge passes the Ray
    nodes' addresses plus loopback. ``node_ids``: the node ids that may enrol (None: any valid id).
    """

    days: int = 365
    permitted_hosts: frozenset[str] | None = None
    node_ids: frozenset[str] | None = None

    def validate(self) -> None:
        if self.days <= 0:
            raise ValueError(f"days: must be positive, got {self.days}")


def _san_of(host: str) -> x509.GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _san_text(name: x509.GeneralName) -> str:
    from cryptography import x509

    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    return f"{type(name).__name__}:{name.value}"


def valid_node_id(node_id: str) -> bool:
    """Node ids become file names and DNS SANs: letters, digits, ``-_.``, at most 63, not ``ca``/dotfile."""
    return (bool(node_id) and len(node_id) <= 63 and not node_id.startswith(".") and node_id != "ca"
            and all(c.isalnum() or c in "-_." for c in node_id))


def build_csr(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, node_id: str,
              hosts: Sequence[str] = LOOPBACK_NAMES) -> bytes:
    """The node's CSR (PEM): CN = node id, SANs = ``DNS:<node_id>`` plus ``hosts``, signed by ``key``."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    sans: list[x509.GeneralName] = [x509.DNSName(node_id)]
    for h in hosts:
        entry = _san_of(h)
        if entry not in sans:
            sans.append(entry)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _parse(csr_bytes: bytes) -> x509.CertificateSigningRequest | None:
    from cryptography import x509

    if not isinstance(csr_bytes, bytes | bytearray):
        return None
    data = bytes(csr_bytes)
    for loader in (x509.load_pem_x509_csr, x509.load_der_x509_csr):
        try:
            return loader(data)
        except (ValueError, TypeError):
            continue
    return None


def _key_fingerprint(public_key: object) -> str:
    der = public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@dataclass
class Enrolment:
    """The CA holder's decision state: the CA, the policy, and which key was certified for which node."""

    ca_cert: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    policy: EnrolmentPolicy = field(default_factory=EnrolmentPolicy)
    issued_keys: dict[str, str] = field(default_factory=dict)
    """Public-key fingerprint (SHA-256 of the SPKI) -> the node id it was certified for."""

    def __post_init__(self) -> None:
        self.policy.validate()

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    def remember(self, cert_pem: bytes) -> str | None:
        """Record a certificate issued before (a restarted CA holder reads them off its disk), so its key
        cannot be certified for another node; the node id it names, or None when this CA did not issue it."""
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.x509.oid import NameOID

        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
            cert.verify_directly_issued_by(self.ca_cert)
            node_id = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        except (ValueError, TypeError, IndexError, InvalidSignature):
            return None
        self.issued_keys[_key_fingerprint(cert.public_key())] = node_id
        return node_id

    def decide(self, csr_bytes: bytes, node_id: str, listen_hosts: Iterable[str],
               now: dt.datetime) -> Issued | Refusal:
        """Sign ``csr_bytes`` for ``node_id`` listening on ``listen_hosts``, or say why not."""
        from cryptography.x509.oid import NameOID

        if now.tzinfo is None:
            raise ValueError("now: must be a timezone-aware datetime")
        hosts = tuple(dict.fromkeys(str(h) for h in listen_hosts))
        csr = _parse(csr_bytes)
        if csr is None:
            return Refusal(RefusalReason.MALFORMED, "not a PEM or DER certificate signing request")
        try:
            signed_ok = csr.is_signature_valid
        except Exception as exc:  # unsupported key/signature algorithms raise instead of answering
            return Refusal(RefusalReason.MALFORMED, f"cannot check the CSR signature: {exc}")
        if not signed_ok:
            return Refusal(RefusalReason.BAD_SIGNATURE, "the CSR's signature does not verify with its key")
        if not valid_node_id(node_id):
            return Refusal(RefusalReason.BAD_NODE_ID, f"invalid node id {node_id!r}")
        if self.policy.node_ids is not None and node_id not in self.policy.node_ids:
            return Refusal(RefusalReason.BAD_NODE_ID, f"node id {node_id!r} is not a member of this cluster")
        cns = [str(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if cns != [node_id]:
            return Refusal(RefusalReason.WRONG_NAME, f"CSR subject CN {cns} does not name node {node_id!r}")
        refusal = self._check_sans(csr, node_id, hosts)
        if refusal is not None:
            return refusal
        refusal = self._check_key(csr)
        if refusal is not None:
            return refusal
        fp = _key_fingerprint(csr.public_key())
        owner = self.issued_keys.get(fp)
        if owner is not None and owner != node_id:
            return Refusal(RefusalReason.KEY_REUSED, f"this key is already certified for node {owner!r}")
        if not (self.ca_cert.not_valid_before_utc <= now + _CLOCK_SKEW and now < self.ca_cert.not_valid_after_utc):
            return Refusal(RefusalReason.CA_EXPIRED, "the cluster CA is not valid now")
        cert = self._sign(csr, node_id, now)
        self.issued_keys[fp] = node_id
        return Issued(node_id=node_id, cert_pem=cert.public_bytes(serialization.Encoding.PEM), ca_pem=self.ca_pem,
                      serial=cert.serial_number, not_after=cert.not_valid_after_utc)

    # ------------------------------------------------------------------------------------------- checks
    def _check_sans(self, csr: x509.CertificateSigningRequest, node_id: str,
                    hosts: tuple[str, ...]) -> Refusal | None:
        from cryptography import x509

        try:
            sans = list(csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            return Refusal(RefusalReason.WRONG_SAN, "the CSR has no subjectAltName")
        except ValueError as exc:
            return Refusal(RefusalReason.MALFORMED, f"unreadable CSR extensions: {exc}")
        allowed = {x509.DNSName(node_id), *(_san_of(h) for h in (*LOOPBACK_NAMES, *hosts))}
        extra = [_san_text(s) for s in sans if s not in allowed]
        if extra:
            return Refusal(RefusalReason.WRONG_SAN, f"SANs not belonging to node {node_id!r}: {', '.join(extra)}")
        missing = [_san_text(s) for s in (x509.DNSName(node_id), *(_san_of(h) for h in hosts)) if s not in sans]
        if missing:
            return Refusal(RefusalReason.WRONG_SAN, f"SANs missing from the CSR: {', '.join(missing)}")
        permitted = self.policy.permitted_hosts
        if permitted is not None:
            outside = [h for h in hosts if h not in permitted and h not in LOOPBACK_NAMES]
            if outside:
                return Refusal(RefusalReason.ADDRESS_NOT_PERMITTED,
                               f"listen address(es) {', '.join(outside)} are not cluster addresses")
        return None

    @staticmethod
    def _check_key(csr: x509.CertificateSigningRequest) -> Refusal | None:
        key = csr.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            if key.curve.name not in _EC_CURVES:
                return Refusal(RefusalReason.WEAK_KEY, f"EC curve {key.curve.name} is not accepted")
            return None
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < _MIN_RSA_BITS:
                return Refusal(RefusalReason.WEAK_KEY, f"RSA key of {key.key_size} bits (< {_MIN_RSA_BITS})")
            return None
        return Refusal(RefusalReason.WEAK_KEY, f"key type {type(key).__name__} is not accepted")

    def _sign(self, csr: x509.CertificateSigningRequest, node_id: str, now: dt.datetime) -> x509.Certificate:
        from cryptography import x509
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        not_before = now - _CLOCK_SKEW
        not_after = min(now + dt.timedelta(days=self.policy.days), self.ca_cert.not_valid_after_utc)
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        pub = csr.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
            .issuer_name(self.ca_cert.subject)
            .public_key(pub)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, content_commitment=False,
                              key_encipherment=isinstance(pub, rsa.RSAPublicKey), data_encipherment=False,
                              key_agreement=isinstance(pub, ec.EllipticCurvePublicKey), key_cert_sign=False,
                              crl_sign=False, encipher_only=False, decipher_only=False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(sans, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), critical=False)  # type: ignore[arg-type]
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
            .sign(self.ca_key, hashes.SHA256())
        )
