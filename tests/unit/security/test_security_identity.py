"""Node identity: the signature binds context, verifier, prover, nonce and issue time; nothing else verifies."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.security.challenges import IdentityChallenge
from rustyray.security.errors import CertificateError
from rustyray.security.identity import (
    CHALLENGE_SIZE,
    CONTEXT,
    TrustLevel,
    identity_message,
    new_challenge,
    sign_challenge,
    verify_client_certificate,
    verify_signature,
)

CHAL = IdentityChallenge("node1", b"c" * 32, 1_700_000_000_000)


def test_full_trust_for_genuine_node(pki) -> None:
    challenge = new_challenge("node1", 1_700_000_000.5)
    assert len(challenge.nonce) == CHALLENGE_SIZE and challenge.issued_at_ms == 1_700_000_000_500
    sig = sign_challenge(pki.node2, "node2", challenge)
    result = verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", challenge, sig)
    assert result.to_dict() == {"verified": True, "node_id": "node2", "trust_level": "full", "reason": "ok"}
    # PEM text and bytes work as well as a path
    pem = pki.node2.cert_path.read_bytes()
    for form in (pem, pem.decode(), str(pki.node2.cert_path)):
        assert verify_signature(pki.node1.ca_path, form, "node2", challenge, sig).verified


def test_fresh_challenges_differ() -> None:
    assert new_challenge("node1", 0.0).nonce != new_challenge("node1", 0.0).nonce


@pytest.mark.parametrize("case", ["wrong_node", "other_nonce", "other_verifier", "other_time", "foreign_ca",
                                  "expired", "garbage_cert"])
def test_no_trust_otherwise(pki, case: str) -> None:
    creds, claimed, signed = pki.node2, "node2", CHAL
    if case == "wrong_node":
        claimed = "node1"
    elif case == "other_nonce":
        signed = IdentityChallenge("node1", b"d" * 32, CHAL.issued_at_ms)
    elif case == "other_verifier":  # a proof made for node3 replayed to node1
        signed = IdentityChallenge("node3", CHAL.nonce, CHAL.issued_at_ms)
    elif case == "other_time":
        signed = IdentityChallenge("node1", CHAL.nonce, CHAL.issued_at_ms + 1)
    elif case == "foreign_ca":
        creds = pki.foreign2
    elif case == "expired":
        creds = pki.expired2
    sig = sign_challenge(creds, "node2", signed)
    cert = b"not a cert" if case == "garbage_cert" else creds.cert_path
    result = verify_signature(pki.node1.ca_path, cert, claimed, CHAL, sig)
    assert (result.verified, result.trust_level) == (False, TrustLevel.NONE)
    assert result.reason


def _raw_sign(creds, message: bytes) -> bytes:
    key = serialization.load_pem_private_key(creds.key_path.read_bytes(), None)
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


@pytest.mark.parametrize("domain", ["bare_token", "bare_nonce", "v1_context", "tls13_context", "no_prover"])
def test_a_signature_over_another_domain_does_not_verify(pki, domain: str) -> None:
    """Only the v2 identity message verifies: not the bare challenge (the old fallback), nor v1, nor TLS's."""
    message = {
        "bare_token": CHAL.encode(),
        "bare_nonce": CHAL.nonce,
        "v1_context": b"rustyray-node-identity-v1\x00" + CHAL.nonce,
        "tls13_context": b" " * 64 + b"TLS 1.3, client CertificateVerify\x00" + CHAL.nonce,
        "no_prover": identity_message(CHAL, "node2").replace(b"\x05node2", b"", 1),
    }[domain]
    result = verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", CHAL, _raw_sign(pki.node2, message))
    assert not result.verified and "signature does not verify" in result.reason
    # the control: the same key over the real message does verify
    real = _raw_sign(pki.node2, identity_message(CHAL, "node2"))
    assert verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", CHAL, real).verified


def test_the_message_binds_each_field_once() -> None:
    msg = identity_message(CHAL, "node2")
    assert msg.startswith(CONTEXT) and msg == (CONTEXT + b"\x05node1" + b"\x05node2" + CHAL.nonce
                                               + CHAL.issued_at_ms.to_bytes(8, "big"))


@settings(max_examples=50, deadline=None)
@given(a=st.tuples(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8)),
       b=st.tuples(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8)))
def test_the_message_encoding_is_injective(a, b) -> None:
    """Length-prefixed ids: ("ab", "c") and ("a", "bc") never sign the same bytes."""
    ma = identity_message(IdentityChallenge(a[0], CHAL.nonce, 7), a[1])
    mb = identity_message(IdentityChallenge(b[0], CHAL.nonce, 7), b[1])
    assert (ma == mb) == (a == b)


def test_signature_from_another_nodes_key_fails(pki) -> None:
    """node1 presents node2's certificate but can only sign with its own key."""
    sig = sign_challenge(pki.node1, "node2", CHAL)
    result = verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", CHAL, sig)
    assert not result.verified and "signature" in result.reason


@settings(max_examples=25, deadline=None)
@given(nonce=st.binary(min_size=32, max_size=32), index=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_signature_byte_fails(pki, nonce: bytes, index: int, bit: int) -> None:
    challenge = IdentityChallenge("node1", nonce, 1)
    sig = bytearray(sign_challenge(pki.node2, "node2", challenge))  # ECDSA: randomised, length varies
    sig[index % len(sig)] ^= 1 << bit
    assert not verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", challenge, bytes(sig)).verified


def test_not_yet_valid_and_future_expiry(pki) -> None:
    sig = sign_challenge(pki.node2, "node2", CHAL)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=400)
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    for when, word in ((later, "expired"), (earlier, "not yet valid")):
        result = verify_signature(pki.node1.ca_path, pki.node2.cert_path, "node2", CHAL, sig, now=when)
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
