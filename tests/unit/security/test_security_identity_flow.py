"""The identity flow through the security facade with real keys: challenge, sign, verify, and every refusal.

The verifier is node1 (a real ``NodeCertificates`` over the test PKI, a fake wall clock); provers sign with
their own certificate keys. Each refusal is ``verified: false`` with a reason, never an error status.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rustyray.api_binding import to_wire
from rustyray.errors import DomainError
from rustyray.security.api import SecurityApi
from rustyray.security.api_types import IdentitySignRequest, IdentityVerifyRequest
from rustyray.security.challenges import IdentityChallenge
from rustyray.security.credentials_adapter import NodeCertificates
from rustyray.security.identity import sign_challenge


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _verifier(pki, node_id: str = "node1", creds=None) -> tuple[SecurityApi, Clock]:
    node = SimpleNamespace(node_id=node_id, credentials=creds or pki.node1,
                           config=SimpleNamespace(certs_dir=pki.certs_dir))
    clock = Clock()
    svc = SimpleNamespace(node=node, certs=NodeCertificates(node))  # type: ignore[arg-type]
    return SecurityApi(svc, clock=clock), clock  # type: ignore[arg-type]


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _answer(creds, prover: str, challenge: str) -> str:
    token = IdentityChallenge.decode(base64.b64decode(challenge))
    return _b64(sign_challenge(creds, prover, token))


def _verify(api: SecurityApi, node_id: str, challenge: str, signature: str) -> dict[str, Any]:
    return to_wire(api.identity_verify(IdentityVerifyRequest(node_id, challenge, signature)))


def test_a_fresh_answer_is_full_trust_and_its_replay_is_not(pki) -> None:
    api, clock = _verifier(pki)
    chal = api.identity_challenge().challenge
    sig = _answer(pki.node2, "node2", chal)
    first = _verify(api, "node2", chal, sig)
    assert (first["verified"], first["trust_level"], first["fresh"]) == (True, "full", True)
    assert first["node_id"] == "node2" and first["verifier"] == "node1"
    clock.now += 1
    replay = _verify(api, "node2", chal, sig)
    assert (replay["verified"], replay["trust_level"], replay["freshness"]) == (False, "none", "replayed")
    assert "replayed" in replay["reason"]


def test_an_answer_after_the_ttl_is_expired(pki) -> None:
    api, clock = _verifier(pki)
    chal = api.identity_challenge().challenge
    sig = _answer(pki.node2, "node2", chal)
    clock.now += api.challenges.ttl_s
    out = _verify(api, "node2", chal, sig)
    assert (out["verified"], out["freshness"]) == (False, "expired") and "expired" in out["reason"]


def test_another_nodes_key_does_not_pass_for_node2(pki) -> None:
    api, _ = _verifier(pki)
    chal = api.identity_challenge().challenge
    for prover in ("node1", "node2"):  # node1's key, claiming to be node2 either way
        out = _verify(api, "node2", chal, _answer(pki.node1, prover, chal))
        assert (out["verified"], out["trust_level"]) == (False, "none") and "signature" in out["reason"]
        chal = api.identity_challenge().challenge


@pytest.mark.parametrize("domain", ["bare_token", "bare_nonce"])
def test_a_signature_over_another_domain_is_refused(pki, domain: str) -> None:
    """The old fallback (ECDSA over the raw challenge, what anyone with node2.key makes) is gone."""
    api, _ = _verifier(pki)
    chal = api.identity_challenge().challenge
    token = IdentityChallenge.decode(base64.b64decode(chal))
    key = serialization.load_pem_private_key(pki.node2.key_path.read_bytes(), None)
    message = token.encode() if domain == "bare_token" else token.nonce
    out = _verify(api, "node2", chal, _b64(key.sign(message, ec.ECDSA(hashes.SHA256()))))
    assert (out["verified"], out["trust_level"]) == (False, "none") and "another domain" in out["reason"]


def test_a_challenge_from_another_verifier_or_never_issued_is_refused(pki) -> None:
    api1, _ = _verifier(pki)
    api2, _ = _verifier(pki, "node2", pki.node2)
    chal = api2.identity_challenge().challenge  # node2 issued it; node1 is asked to verify it
    out = _verify(api1, "node2", chal, _answer(pki.node2, "node2", chal))
    assert (out["verified"], out["freshness"]) == (False, "unknown") and "issued by node2" in out["reason"]
    forged = _b64(IdentityChallenge("node1", b"z" * 32, 1_700_000_000_000).encode())
    out = _verify(api1, "node2", forged, _answer(pki.node2, "node2", forged))
    assert (out["verified"], out["freshness"]) == (False, "unknown")


def test_a_node_signs_only_challenge_tokens_as_itself(pki) -> None:
    api1, _ = _verifier(pki)
    api2, _ = _verifier(pki, "node2", pki.node2)
    chal = api1.identity_challenge().challenge
    signed = api2.identity_sign(IdentitySignRequest("node2", chal))
    assert signed.verifier == "node1" and _verify(api1, "node2", chal, signed.signature)["verified"]
    with pytest.raises(DomainError) as info:
        api2.identity_sign(IdentitySignRequest("node2", _b64(b"arbitrary bytes to be signed")))
    assert info.value.field == "challenge"
