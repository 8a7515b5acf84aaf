from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from rustyray.security.certificates import (
    CA_COMMON_NAME,
    cert_matches_key,
    ensure_cluster_ca,
    ensure_node_credentials,
    install_node_certificate,
    issue_node_certificate,
    load_certificate_info,
    rotate_node_credentials,
)
from rustyray.security.errors import CertificateError


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_ca_created_once_with_private_key_mode(tmp_path: Path) -> None:
    ca = ensure_cluster_ca(tmp_path / "certs")
    assert ca == tmp_path / "certs" / "ca.pem"
    assert _mode(tmp_path / "certs" / "ca.key") == 0o600
    before = ca.read_bytes()
    assert ensure_cluster_ca(tmp_path / "certs") == ca
    assert ca.read_bytes() == before
    info = load_certificate_info(ca)
    assert info.subject_cn == info.issuer_cn == CA_COMMON_NAME
    assert info.not_after - info.not_before > dt.timedelta(days=3649)
    cert = x509.load_pem_x509_certificate(before)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert_matches_key(ca, tmp_path / "certs" / "ca.key")


def _race_worker(certs_dir: str, node: str, q) -> None:  # runs in a child process
    creds = ensure_node_credentials(Path(certs_dir), node)
    q.put(creds.ca_path.read_bytes())


def test_concurrent_processes_agree_on_one_ca(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(str(tmp_path / "c"), f"n{i}", q)) for i in range(4)]
    for p in procs:
        p.start()
    cas = {q.get(timeout=30) for _ in procs}
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert len(cas) == 1
    ca = tmp_path / "c" / "ca.pem"
    for i in range(4):
        cert = x509.load_pem_x509_certificate((tmp_path / "c" / f"n{i}.pem").read_bytes())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.read_bytes()))
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.endswith(".tmp")]


def test_node_certificate_fields(tmp_path: Path) -> None:
    creds = ensure_node_credentials(tmp_path, "node7", hosts=("127.0.0.1", "::1", "localhost", "n7.local"))
    assert creds.cert_path == tmp_path / "node7.pem" and creds.key_path == tmp_path / "node7.key"
    assert _mode(creds.key_path) == 0o600
    info = load_certificate_info(creds.cert_path)
    assert info.subject_cn == "node7"
    assert info.issuer_cn == CA_COMMON_NAME
    assert set(info.sans) == {"DNS:node7", "IP:127.0.0.1", "IP:::1", "DNS:localhost", "DNS:n7.local"}
    assert info.not_before.tzinfo is not None
    assert dt.timedelta(days=364) < info.not_after - info.not_before <= dt.timedelta(days=365)
    cert = x509.load_pem_x509_certificate(creds.cert_path.read_bytes())
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert_matches_key(creds.cert_path, creds.key_path)
    d = info.to_dict()
    assert d["not_after"].endswith("Z") and d["subject_cn"] == "node7"


def test_ensure_node_is_idempotent_but_replaces_expired(tmp_path: Path) -> None:
    creds = ensure_node_credentials(tmp_path, "node1")
    serial = load_certificate_info(creds.cert_path).serial
    assert ensure_node_credentials(tmp_path, "node1") == creds
    assert load_certificate_info(creds.cert_path).serial == serial
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    ensure_node_credentials(tmp_path, "node1", now=later)
    assert load_certificate_info(creds.cert_path).serial != serial


def test_expired_issue_and_key_mismatch(tmp_path: Path) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=5)
    creds = issue_node_certificate(
        tmp_path, "old", days=1, not_before=past, out_cert=tmp_path / "o.pem", out_key=tmp_path / "o.key"
    )
    info = load_certificate_info(creds.cert_path)
    assert info.not_after < dt.datetime.now(dt.UTC)
    other = ensure_node_credentials(tmp_path, "node2")
    assert not cert_matches_key(creds.cert_path, other.key_path)
    assert not cert_matches_key(tmp_path / "missing.pem", other.key_path)
    with pytest.raises(CertificateError):
        load_certificate_info(tmp_path / "missing.pem")


def test_rotate_issues_new_key_and_serial(tmp_path: Path) -> None:
    creds = ensure_node_credentials(tmp_path, "node1")
    old_key, old_info = creds.key_path.read_bytes(), load_certificate_info(creds.cert_path)
    new = rotate_node_credentials(tmp_path, "node1", days=30)
    assert new == creds
    assert creds.key_path.read_bytes() != old_key
    new_info = load_certificate_info(creds.cert_path)
    assert new_info.serial != old_info.serial and new_info.subject_cn == "node1"
    assert cert_matches_key(creds.cert_path, creds.key_path)
    assert _mode(creds.key_path) == 0o600


def test_install_validates_before_replacing(tmp_path: Path) -> None:
    creds = ensure_node_credentials(tmp_path / "c", "node1")
    staged = issue_node_certificate(
        tmp_path / "c", "node1", days=10, out_cert=tmp_path / "new.pem", out_key=tmp_path / "new.key"
    )
    info = install_node_certificate(tmp_path / "c", "node1", staged.cert_path, staged.key_path)
    assert info == load_certificate_info(creds.cert_path)
    assert cert_matches_key(creds.cert_path, creds.key_path)
    # wrong CN, foreign CA, and missing key are rejected and leave the live files alone
    wrong_cn = issue_node_certificate(
        tmp_path / "c", "node9", days=10, out_cert=tmp_path / "n9.pem", out_key=tmp_path / "n9.key"
    )
    foreign = ensure_node_credentials(tmp_path / "other", "node1")
    live = creds.cert_path.read_bytes()
    for cert, key in ((wrong_cn.cert_path, wrong_cn.key_path), (foreign.cert_path, foreign.key_path)):
        with pytest.raises(CertificateError):
            install_node_certificate(tmp_path / "c", "node1", cert, key)
    with pytest.raises(CertificateError):  # new cert with the node's *current* key: key mismatch
        install_node_certificate(tmp_path / "c", "node1", wrong_cn.cert_path)
    assert creds.cert_path.read_bytes() == live


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "ca", ".hidden", "x" * 64])
def test_node_id_validation(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="node_id"):
        ensure_node_credentials(tmp_path, bad)
