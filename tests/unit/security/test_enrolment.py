"""The enrolment decision core: a CSR gets a certificate for its own node id and addresses, nothing else."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rustyray.security.certificates import (
    ENROLLED_MARKER,
    ensure_cluster_ca,
    ensure_node_credentials,
    install_enrolled_certificate,
    load_ca,
    node_key_csr,
)
from rustyray.security.enrolment import Enrolment, EnrolmentPolicy, Issued, Refusal, RefusalReason, build_csr
from rustyray.security.errors import CertificateError

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    certs = tmp_path_factory.mktemp("ca") / "certs"
    ensure_cluster_ca(certs, now=NOW)
    return certs


@pytest.fixture
def ca(ca_dir: Path) -> Enrolment:
    cert, key = load_ca(ca_dir)
    return Enrolment(cert, key, EnrolmentPolicy(days=30, permitted_hosts=frozenset({"198.18.0.2"})))


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _refused(result: Issued | Refusal, reason: RefusalReason) -> None:
    assert isinstance(result, Refusal), result
    assert result.reason is reason, result


def test_issues_a_certificate_for_its_own_name_and_address(ca: Enrolment) -> None:
    key = _key()
    result = ca.decide(build_csr(key, "node3", ["127.0.0.1", "198.18.0.2"]), "node3", ["198.18.0.2"], NOW)
    assert isinstance(result, Issued)
    cert = x509.load_pem_x509_certificate(result.cert_pem)
    cert.verify_directly_issued_by(ca.ca_cert)
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "node3"
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "node3" in sans.get_values_for_type(x509.DNSName)
    assert [str(a) for a in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "198.18.0.2"]
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=30)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        key.public_key().public_bytes(serialization.Encoding.DER, spki)
    assert result.ca_pem == ca.ca_pem


def test_csr_naming_another_node_is_refused(ca: Enrolment) -> None:
    # a CSR for node Y cannot obtain node X's certificate
    _refused(ca.decide(build_csr(_key(), "node2"), "node1", [], NOW), RefusalReason.WRONG_NAME)


def test_san_of_another_node_is_refused(ca: Enrolment) -> None:
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "node1")]))
           .add_extension(x509.SubjectAlternativeName([x509.DNSName("node1"), x509.DNSName("node2")]), False)
           .sign(_key(), hashes.SHA256()))
    _refused(ca.decide(csr.public_bytes(serialization.Encoding.PEM), "node1", [], NOW), RefusalReason.WRONG_SAN)


def test_listen_address_missing_or_foreign_is_refused(ca: Enrolment) -> None:
    _refused(ca.decide(build_csr(_key(), "node1"), "node1", ["198.18.0.2"], NOW), RefusalReason.WRONG_SAN)
    _refused(ca.decide(build_csr(_key(), "node1", ["198.18.0.9"]), "node1", ["198.18.0.9"], NOW),
             RefusalReason.ADDRESS_NOT_PERMITTED)


def test_bad_signature_is_refused(ca: Enrolment) -> None:
    der = bytearray(x509.load_pem_x509_csr(build_csr(_key(), "node1")).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x55  # inside the signature value
    _refused(ca.decide(bytes(der), "node1", [], NOW), RefusalReason.BAD_SIGNATURE)


@pytest.mark.parametrize("garbage", [b"", b"hello", b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END "
                                     b"CERTIFICATE REQUEST-----\n", bytes(range(256))])
def test_garbage_is_refused(ca: Enrolment, garbage: bytes) -> None:
    _refused(ca.decide(garbage, "node1", [], NOW), RefusalReason.MALFORMED)


def test_weak_key_is_refused(ca: Enrolment) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    _refused(ca.decide(build_csr(weak, "node1"), "node1", [], NOW), RefusalReason.WEAK_KEY)
    small_curve = ec.generate_private_key(ec.SECP192R1()) if _has_p192() else None
    if small_curve is not None:
        _refused(ca.decide(build_csr(small_curve, "node1"), "node1", [], NOW), RefusalReason.WEAK_KEY)


def _has_p192() -> bool:
    try:
        ec.generate_private_key(ec.SECP192R1())
    except Exception:
        return False
    return True


def test_one_key_one_node(ca: Enrolment) -> None:
    key = _key()
    assert isinstance(ca.decide(build_csr(key, "node1"), "node1", [], NOW), Issued)
    assert isinstance(ca.decide(build_csr(key, "node1"), "node1", [], NOW), Issued)  # re-enrol: fine
    _refused(ca.decide(build_csr(key, "node2"), "node2", [], NOW), RefusalReason.KEY_REUSED)


def test_a_restarted_ca_remembers_what_it_issued_and_ignores_other_pem(ca_dir: Path, tmp_path: Path) -> None:
    cert, key_ = load_ca(ca_dir)
    key = _key()
    first = Enrolment(cert, key_).decide(build_csr(key, "node1"), "node1", [], NOW)
    assert isinstance(first, Issued)
    restarted = Enrolment(cert, key_)
    assert restarted.remember(first.cert_pem) == "node1"
    _refused(restarted.decide(build_csr(key, "node2"), "node2", [], NOW), RefusalReason.KEY_REUSED)
    other = tmp_path / "other"
    ensure_cluster_ca(other, now=NOW)
    foreign = ensure_node_credentials(other, "node9", now=NOW).cert_path.read_bytes()
    assert restarted.remember(foreign) is None and restarted.remember(b"not a pem") is None
    assert list(restarted.issued_keys.values()) == ["node1"]


def test_bad_node_id_and_unknown_member(ca_dir: Path) -> None:
    cert, key = load_ca(ca_dir)
    only = Enrolment(cert, key, EnrolmentPolicy(node_ids=frozenset({"node1"})))
    _refused(only.decide(build_csr(_key(), "ca"), "ca", [], NOW), RefusalReason.BAD_NODE_ID)
    _refused(only.decide(build_csr(_key(), "node9"), "node9", [], NOW), RefusalReason.BAD_NODE_ID)


def test_validity_is_clipped_to_the_ca_and_an_expired_ca_refuses(ca: Enrolment) -> None:
    late = ca.ca_cert.not_valid_after_utc - dt.timedelta(days=3)
    result = ca.decide(build_csr(_key(), "node1"), "node1", [], late)
    assert isinstance(result, Issued) and result.not_after == ca.ca_cert.not_valid_after_utc
    _refused(ca.decide(build_csr(_key(), "node1"), "node1", [], late + dt.timedelta(days=4)),
             RefusalReason.CA_EXPIRED)


def test_naive_now_is_a_programming_error(ca: Enrolment) -> None:
    with pytest.raises(ValueError):
        ca.decide(build_csr(_key(), "node1"), "node1", [], dt.datetime(2026, 1, 1))


def test_enrolled_host_round_trip(ca_dir: Path, tmp_path: Path) -> None:
    """The edge helpers: the key is made in the node's own dir, only the CA certificate arrives there."""
    cert, key = load_ca(ca_dir)
    ca = Enrolment(cert, key)
    node_certs = tmp_path / "host2" / "certs"
    csr = node_key_csr(node_certs, "node3", ["127.0.0.1", "198.18.0.2"])
    assert (node_certs / "node3.key").stat().st_mode & 0o777 == 0o600
    issued = ca.decide(csr, "node3", ["198.18.0.2"], dt.datetime.now(dt.UTC))
    assert isinstance(issued, Issued)
    install_enrolled_certificate(node_certs, "node3", issued.cert_pem, issued.ca_pem)
    assert (node_certs / ENROLLED_MARKER).exists() and not (node_certs / "ca.key").exists()
    # the node's normal load path keeps the enrolled pair and does not mint a CA of its own
    creds = ensure_node_credentials(node_certs, "node3")
    assert creds.ca_path.read_bytes() == ca.ca_pem and not (node_certs / "ca.key").exists()
    # the same key asking again keeps working; a cert for another node cannot be installed here
    assert node_key_csr(node_certs, "node3", ["127.0.0.1"]) and (node_certs / "node3.key").exists()
    with pytest.raises(CertificateError):
        install_enrolled_certificate(node_certs, "node4", issued.cert_pem, issued.ca_pem)
    # an enrolled host without a usable pair refuses to self-issue
    with pytest.raises(CertificateError):
        ensure_node_credentials(node_certs, "node5")
