"""Cluster certificate authority and node credentials (NETWORKING-053).

Theory of operation
-------------------
Every cluster has one private CA (ECDSA P-256, 10-year validity) kept in ``<state>/certs/ca.pem`` and
``ca.key``. Each node gets a leaf certificate signed by that CA whose subject CN is the node id, whose SANs
hold ``DNS:<node_id>`` plus the loopback/host addresses it listens on, and whose EKU allows both serverAuth
and clientAuth, so the same credentials serve as TLS server and client certificate (mutual TLS, RFC 8446
section 4.4.2; X.509 profile per RFC 5280). Peers trust only the cluster CA, so "chains to the CA" means
"member of this cluster", and the CN binds the connection to a node id.

File handling: private keys are written with mode 0600. Every file is written to a temporary name in the
same directory and moved into place with ``os.replace`` (atomic on POSIX), and creation is serialised by an
``fcntl.flock`` on ``<certs_dir>/.lock`` so two processes starting at once agree on one CA instead of each
minting its own. The certificate file is written after its key, so "certificate present" implies a
complete pair.

This module does file I/O and reads the wall clock (certificates carry absolute validity times); it is an
edge module, not a sans-I/O core. Functions that depend on time accept ``now`` for tests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rustyray.records import record
from rustyray.security.errors import CertificateError

__all__ = [
    "CA_COMMON_NAME",
    "DEFAULT_HOSTS",
    "ENROLLED_MARKER",
    "CertInfo",
    "NodeCredentials",
    "cert_matches_key",
    "ensure_cluster_ca",
    "ensure_node_credentials",
    "file_lock",
    "install_enrolled_certificate",
    "install_node_certificate",
    "is_enrolled",
    "issue_node_certificate",
    "load_ca",
    "load_certificate_info",
    "node_key_csr",
    "rotate_node_credentials",
]

CA_COMMON_NAME = "RustyRay Cluster CA"
DEFAULT_HOSTS: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")
CA_VALIDITY_DAYS = 3650
# Backdate notBefore a little so peers whose clocks lag slightly still accept a fresh certificate.
_CLOCK_SKEW = dt.timedelta(minutes=5)
_LOCK_NAME = ".lock"


@dataclass(frozen=True)
class NodeCredentials:
    """Paths of one node's TLS identity; everything TLS/QUIC/identity needs to authenticate it."""

    node_id: str
    cert_path: Path
    key_path: Path
    ca_path: Path


@dataclass(frozen=True)
class CertInfo:
    """The fields of a certificate that operators and the REST API show."""

    subject_cn: str | None
    issuer_cn: str | None
    not_before: dt.datetime  # timezone-aware UTC
    not_after: dt.datetime  # timezone-aware UTC
    serial: int
    sans: tuple[str, ...]  # "DNS:name" / "IP:addr"
    fingerprint_sha256: str  # hex

    def to_dict(self) -> dict[str, object]:
        return record(self, not_before=_iso(self.not_before), not_after=_iso(self.not_after),
                      serial=format(self.serial, "x"), sans=list(self.sans))


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utcnow(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now: must be a timezone-aware datetime")
    return now


# ----------------------------------------------------------------------------------------------- file helpers


@contextlib.contextmanager
def file_lock(path: Path, dir_mode: int = 0o777) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created 0600, its directory with ``dir_mode``): across processes."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _dir_lock(certs_dir: Path) -> contextlib.AbstractContextManager[None]:
    return file_lock(certs_dir / _LOCK_NAME, dir_mode=0o700)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed/widened the create mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise CertificateError(f"cannot load certificate {path}: {exc}") from exc


def _load_key(path: Path):  # -> PrivateKeyTypes
    try:
        return serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot load private key {path}: {exc}") from exc


def _cn(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None


# ----------------------------------------------------------------------------------------------- the CA


def _ca_paths(certs_dir: Path) -> tuple[Path, Path]:
    return certs_dir / "ca.pem", certs_dir / "ca.key"


def _key_usage(*enabled: str) -> x509.KeyUsage:
    """A KeyUsage with only the named bits set: the CA and a node differ in two bits out of nine, so naming
    the set ones keeps what each certificate may do readable at the call site."""
    return x509.KeyUsage(**{name: name in enabled for name in _KEY_USAGE_BITS})


_KEY_USAGE_BITS = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
    "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)


def _create_ca(certs_dir: Path, now: dt.datetime) -> None:
    ca_cert_path, ca_key_path = _ca_paths(certs_dir)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "RustyRay"),
            x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage("digital_signature", "key_cert_sign", "crl_sign"),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    _atomic_write(ca_key_path, _key_pem(key), 0o600)
    _atomic_write(ca_cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def ensure_cluster_ca(certs_dir: Path, *, now: dt.datetime | None = None) -> Path:
    """Return ``certs_dir/ca.pem``, creating the CA (cert + 0600 key) first if it does not exist.

    Idempotent and safe under concurrent callers (threads or processes): creation happens under a file lock
    and the CA already on disk always wins.

    An enrolled host (``ca.pem`` and ``ENROLLED_MARKER`` present, no ``ca.key``: the node got its
    certificate from the CA holder, ``rustyray.ray_edge.enrolment``) keeps its CA certificate: minting a
    new CA there would split the cluster.
    """
    certs_dir = Path(certs_dir)
    ca_cert_path, ca_key_path = _ca_paths(certs_dir)
    if ca_cert_path.exists() and (ca_key_path.exists() or is_enrolled(certs_dir)):
        return ca_cert_path
    with _dir_lock(certs_dir):
        if not (ca_cert_path.exists() and (ca_key_path.exists() or is_enrolled(certs_dir))):
            _create_ca(certs_dir, _utcnow(now))
    return ca_cert_path


ENROLLED_MARKER = ".enrolled"
"""File in ``certs_dir`` that says: this host's certificates come from enrolment; it holds no CA key."""


def is_enrolled(certs_dir: Path) -> bool:
    """True when ``certs_dir`` is an enrolled host's (CA certificate only, no CA key by design)."""
    return (Path(certs_dir) / ENROLLED_MARKER).exists()


def load_ca(certs_dir: Path):  # -> tuple[x509.Certificate, PrivateKeyTypes]
    """The CA certificate and key under ``certs_dir`` (the CA holder's; ``CertificateError`` when absent)."""
    ca_cert_path, ca_key_path = _ca_paths(Path(certs_dir))
    return _load_cert(ca_cert_path), _load_key(ca_key_path)


def node_key_csr(certs_dir: Path, node_id: str, hosts: Sequence[str]) -> bytes:
    """The enrolling node's half: keep (or create, mode 0600) ``<node>.key`` here and return a CSR for it.

    The key is made on this host and stays here; only the CSR (public key + names) is sent to the CA.
    """
    from rustyray.security.enrolment import build_csr

    _validate_node_id(node_id)
    certs_dir = Path(certs_dir)
    _, key_path = _node_paths(certs_dir, node_id)
    with _dir_lock(certs_dir):
        try:
            key = _load_key(key_path) if key_path.exists() else None
        except CertificateError:
            key = None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            key = ec.generate_private_key(ec.SECP256R1())
            _atomic_write(key_path, _key_pem(key), 0o600)
    return build_csr(key, node_id, hosts)


def install_enrolled_certificate(certs_dir: Path, node_id: str, cert_pem: bytes, ca_pem: bytes) -> NodeCredentials:
    """Write the CA holder's answer: the node certificate and the CA certificate (no CA key, by design).

    Refuses (``CertificateError``, nothing written) a certificate that does not chain to ``ca_pem``, name
    ``node_id`` or match the local key. Marks the directory enrolled only when this host has no CA key
    (on the CA holder's own host the directory stays a CA directory).
    """
    _validate_node_id(node_id)
    certs_dir = Path(certs_dir)
    certs_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert_path, ca_key_path = _ca_paths(certs_dir)
    cert_path, key_path = _node_paths(certs_dir, node_id)
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise CertificateError(f"enrolment answer for {node_id!r} does not verify: {exc}") from exc
    if _cn(cert.subject) != node_id:
        raise CertificateError(f"enrolment answer names {_cn(cert.subject)!r}, not {node_id!r}")
    fmt, enc = serialization.PublicFormat.SubjectPublicKeyInfo, serialization.Encoding.DER
    if cert.public_key().public_bytes(enc, fmt) != _load_key(key_path).public_key().public_bytes(enc, fmt):
        raise CertificateError(f"enrolment answer for {node_id!r} does not match the local key {key_path}")
    with _dir_lock(certs_dir):
        if not ca_key_path.exists():
            _atomic_write(certs_dir / ENROLLED_MARKER, b"certificates issued by enrolment; no CA key here\n", 0o644)
            if not ca_cert_path.exists() or ca_cert_path.read_bytes() != ca_pem:
                _atomic_write(ca_cert_path, ca_pem, 0o644)
        elif ca_cert_path.read_bytes() != ca_pem:
            raise CertificateError(f"enrolment answer is from another CA than {ca_cert_path}")
        _atomic_write(cert_path, cert_pem, 0o644)
    return NodeCredentials(node_id=node_id, cert_path=cert_path, key_path=key_path, ca_path=ca_cert_path)


# ----------------------------------------------------------------------------------------------- node certs


def _san_entries(node_id: str, hosts: Sequence[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = [x509.DNSName(node_id)]
    for host in hosts:
        try:
            entry: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
        except ValueError:
            entry = x509.DNSName(host)
        if entry not in entries:
            entries.append(entry)
    return entries


def _validate_node_id(node_id: str) -> None:
    # The node id becomes a file name and a DNS SAN; keep it to a safe alphabet.
    if not node_id or len(node_id) > 63 or node_id.startswith(".") or node_id in ("ca",):
        raise ValueError(f"node_id: invalid node id {node_id!r}")
    if not all(c.isalnum() or c in "-_." for c in node_id):
        raise ValueError(f"node_id: only letters, digits, '-', '_' and '.' are allowed, got {node_id!r}")


def _build_node_cert(
    certs_dir: Path,
    node_id: str,
    *,
    days: int,
    hosts: Sequence[str],
    not_before: dt.datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert_path, ca_key_path = _ca_paths(certs_dir)
    ca_cert = _load_cert(ca_cert_path)
    ca_key = _load_key(ca_key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage("digital_signature", "key_agreement"),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(_san_entries(node_id, hosts)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert, key


def issue_node_certificate(
    certs_dir: Path,
    node_id: str,
    *,
    days: int,
    out_cert: Path,
    out_key: Path,
    not_before: dt.datetime | None = None,
    hosts: Sequence[str] = DEFAULT_HOSTS,
) -> NodeCredentials:
    """Sign a fresh key pair for ``node_id`` with the cluster CA and write it to ``out_cert``/``out_key``.

    Used for rotation (write next to the live files, then install) and by tests (``not_before`` in the past
    with a small ``days`` yields an expired certificate). The CA is created if absent.
    """
    _validate_node_id(node_id)
    if days <= 0:
        raise ValueError(f"days: must be positive, got {days}")
    certs_dir = Path(certs_dir)
    ca_path = ensure_cluster_ca(certs_dir)
    start = _utcnow(not_before) if not_before is not None else _utcnow(None) - _CLOCK_SKEW
    cert, key = _build_node_cert(certs_dir, node_id, days=days, hosts=hosts, not_before=start)
    out_cert, out_key = Path(out_cert), Path(out_key)
    _atomic_write(out_key, _key_pem(key), 0o600)
    _atomic_write(out_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return NodeCredentials(node_id=node_id, cert_path=out_cert, key_path=out_key, ca_path=ca_path)


def _node_paths(certs_dir: Path, node_id: str) -> tuple[Path, Path]:
    return certs_dir / f"{node_id}.pem", certs_dir / f"{node_id}.key"


def _usable(cert_path: Path, key_path: Path, ca_path: Path, node_id: str, now: dt.datetime) -> bool:
    """True when the files form a valid, current pair issued by this CA to ``node_id``."""
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = _load_cert(cert_path)
        ca = _load_cert(ca_path)
        cert.verify_directly_issued_by(ca)
    except (CertificateError, ValueError, TypeError, InvalidSignature):
        return False
    return (
        _cn(cert.subject) == node_id
        and cert.not_valid_before_utc <= now + _CLOCK_SKEW
        and now < cert.not_valid_after_utc
        and cert_matches_key(cert_path, key_path)
    )


def ensure_node_credentials(
    certs_dir: Path,
    node_id: str,
    *,
    hosts: Sequence[str] = DEFAULT_HOSTS,
    days: int = 365,
    now: dt.datetime | None = None,
) -> NodeCredentials:
    """Return ``node_id``'s credentials under ``certs_dir``, creating CA and node cert/key when needed.

    Existing files are kept when they are a valid, unexpired pair issued by the current CA to this node id;
    otherwise (absent, expired, foreign CA, mismatched key) a fresh pair is issued in their place.
    """
    _validate_node_id(node_id)
    certs_dir = Path(certs_dir)
    ca_path = ensure_cluster_ca(certs_dir)
    cert_path, key_path = _node_paths(certs_dir, node_id)
    creds = NodeCredentials(node_id=node_id, cert_path=cert_path, key_path=key_path, ca_path=ca_path)
    t = _utcnow(now)
    if _usable(cert_path, key_path, ca_path, node_id, t):
        return creds
    if is_enrolled(certs_dir):
        raise CertificateError(f"{cert_path} is not a current certificate for {node_id!r} and this host holds "
                               "no CA key: the node must enrol with the CA holder")
    with _dir_lock(certs_dir):
        if not _usable(cert_path, key_path, ca_path, node_id, t):
            issue_node_certificate(
                certs_dir, node_id, days=days, out_cert=cert_path, out_key=key_path, hosts=hosts
            )
    return creds


def rotate_node_credentials(
    certs_dir: Path, node_id: str, *, hosts: Sequence[str] = DEFAULT_HOSTS, days: int = 365
) -> NodeCredentials:
    """Replace ``node_id``'s key and certificate with freshly issued ones (new key, new serial).

    Contexts built afterwards pick the new pair up; live TLS sessions keep the old one until they reconnect.
    """
    _validate_node_id(node_id)
    certs_dir = Path(certs_dir)
    ensure_cluster_ca(certs_dir)  # outside the lock: flock is not re-entrant
    cert_path, key_path = _node_paths(certs_dir, node_id)
    with _dir_lock(certs_dir):
        return issue_node_certificate(
            certs_dir, node_id, days=days, out_cert=cert_path, out_key=key_path, hosts=hosts
        )


def install_node_certificate(
    certs_dir: Path, node_id: str, new_cert_path: Path, new_key_path: Path | None = None
) -> CertInfo:
    """Install an externally issued certificate (the NETWORKING-053 ``new_cert_path``) as ``node_id``'s.

    The certificate must chain to the cluster CA, name ``node_id`` as CN, be currently valid, and match
    ``new_key_path`` (or the node's current key when omitted); otherwise ``CertificateError`` and nothing
    changes.
    """
    _validate_node_id(node_id)
    certs_dir = Path(certs_dir)
    ca_path = ensure_cluster_ca(certs_dir)
    cert_path, key_path = _node_paths(certs_dir, node_id)
    source_key = Path(new_key_path) if new_key_path is not None else key_path
    if not _usable(Path(new_cert_path), source_key, ca_path, node_id, _utcnow(None)):
        raise CertificateError(
            f"{new_cert_path} is not a valid certificate for {node_id!r} issued by the cluster CA "
            f"matching key {source_key}"
        )
    cert_pem = Path(new_cert_path).read_bytes()
    with _dir_lock(certs_dir):
        if new_key_path is not None:
            _atomic_write(key_path, Path(new_key_path).read_bytes(), 0o600)
        _atomic_write(cert_path, cert_pem, 0o644)
    return load_certificate_info(cert_path)


# ----------------------------------------------------------------------------------------------- inspection


def load_certificate_info(cert_path: Path) -> CertInfo:
    cert = _load_cert(Path(cert_path))
    sans: list[str] = []
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        sans.extend(f"DNS:{n}" for n in ext.get_values_for_type(x509.DNSName))
        sans.extend(f"IP:{a}" for a in ext.get_values_for_type(x509.IPAddress))
    return CertInfo(
        subject_cn=_cn(cert.subject),
        issuer_cn=_cn(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        sans=tuple(sans),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
    )


def cert_matches_key(cert_path: Path, key_path: Path) -> bool:
    """True when the private key in ``key_path`` belongs to the certificate in ``cert_path``."""
    try:
        cert = _load_cert(Path(cert_path))
        key = _load_key(Path(key_path))
    except CertificateError:
        return False
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    return cert.public_key().public_bytes(enc, fmt) == key.public_key().public_bytes(enc, fmt)
