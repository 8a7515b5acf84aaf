from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.security.errors import CertificateError
from rustyray.security.identity import (
    CHALLENGE_SIZE,
    TrustLevel,
    new_challenge,
    sign_challenge,
    verify_client_certificate,
    verify_signature,
)


def test_full_trust_for_genuine_node(pki) -> None:
    challenge = new_challenge()
    assert len(challenge) == CHALLENGE_SIZE
    sig = sign_challenge(pki.node2, challenge)
    result = verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", challenge, sig)
    assert result.to_dict() == {"verified": True, "node_id": "node2", "trust_level": "full", "reason": "ok"}
    # PEM text and bytes work as well as a path
    pem = pki.node2.cert_path.read_bytes()
    for form in (pem, pem.decode(), str(pki.node2.cert_path)):
        assert verify_signature(pki.node1.ca_path, form, "node2", challenge, sig).verified


@pytest.mark.parametrize("case", ["wrong_node", "other_challenge", "foreign_ca", "expired", "garbage_cert"])
def test_no_trust_otherwise(pki, case: str) -> None:
    challenge = b"c" * 32
    creds, claimed, signed = pki.node2, "node2", challenge
    if case == "wrong_node":
        claimed = "node1"
    elif case == "other_challenge":
        signed = b"d" * 32
    elif case == "foreign_ca":
        creds = pki.foreign2
    elif case == "expired":
        creds = pki.expired2
    sig = sign_challenge(creds, signed)
    cert = b"not a cert" if case == "garbage_cert" else creds.cert_path
    result = verify_signature(pki.node1.ca_path, cert, claimed, challenge, sig)
    assert (result.verified, result.trust_level) == (False, TrustLevel.NONE)
    assert result.reason


def test_signature_from_another_nodes_key_fails(pki) -> None:
    """node1 presents node2's certificate but can only sign with its own key."""
    challenge = b"x" * 32
    sig = sign_challenge(pki.node1, challenge)
    result = verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", challenge, sig)
    assert not result.verified and "signature" in result.reason


@settings(max_examples=25, deadline=None)
@given(challenge=st.binary(min_size=1, max_size=64), index=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_signature_byte_fails(pki, challenge: bytes, index: int, bit: int) -> None:
    sig = bytearray(sign_challenge(pki.node2, challenge))  # ECDSA: randomised, length varies
    sig[index % len(sig)] ^= 1 << bit
    assert not verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", challenge, bytes(sig)).verified


def test_not_yet_valid_and_future_expiry(pki) -> None:
    challenge = b"y" * 32
    sig = sign_challenge(pki.node2, challenge)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    for when, word in ((later, "expired"), (earlier, "not yet valid")):
        result = verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", challenge, sig, now=when)
        assert not result.verified and word in result.reason


def test_client_certificate_check(pki) -> None:
    ok = verify_client_certificate(pki.node1.ca_path, pki.node2.cert_path.read_bytes())
    assert ok == (True, "node2", True)
    assert ok.to_dict() == {"authenticated": True, "client_cn": "node2", "verified": True}
    assert verify_client_certificate(pki.node1.ca_path, pki.foreign2.cert_path) == (False, "node2", False)
    assert verify_client_certificate(pki.node1.ca_path, pki.expired2.cert_path) == (False, "node2", False)
    assert verify_client_certificate(pki.node1.ca_path, b"junk") == (False, None, False)


def test_unusable_local_ca_raises(pki, tmp_path) -> None:
    with pytest.raises(CertificateError):
        verify_client_certificate(tmp_path / "missing.pem", pki.node2.cert_path)
