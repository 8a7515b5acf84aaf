"""The security API facade without a node: its contract with the routes, and its validation order."""

from __future__ import annotations

import asyncio
import base64
import random
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import serve_apps.routes.security as routes
from rustyray.api_binding import invoke, to_wire
from rustyray.errors import DomainError, ErrorKind
from rustyray.security.acl import Acl
from rustyray.security.admission import Admission
from rustyray.security.api import SecurityApi
from rustyray.security.api_types import (
    AclAddRequest,
    AclCheckRequest,
    CertRotateRequest,
    DecryptRequest,
    EncryptRequest,
    IdentitySignRequest,
)
from rustyray.security.challenges import IdentityChallenge
from rustyray.security.encryption import KeyRing, MessageCipher
from rustyray.security.errors import CertificateError
from rustyray.security.firewall import Firewall
from rustyray.security.rotation import RotationPlan


class FakeCerts:
    def __init__(self, files: set[str], fail_install: bool = False) -> None:
        self.files, self.fail_install, self.calls = files, fail_install, []
        self.serial = 0x10

    def info(self) -> Any:
        self.serial += 1
        return SimpleNamespace(serial=self.serial, fingerprint_sha256="fp", to_dict=lambda s=self.serial: {
            "not_after": "2030-01-01T00:00:00Z", "not_before": "2029-01-01T00:00:00Z", "serial": format(s, "x")})

    def exists(self, path: str) -> bool:
        self.calls.append(("exists", path))
        return path in self.files

    def install(self, plan: RotationPlan) -> None:
        self.calls.append(("install", plan.new_cert_path))
        if self.fail_install:
            raise CertificateError("certificate names node3")

    def reissue(self) -> None:
        self.calls.append(("reissue",))

    @staticmethod
    def new_challenge(now: float) -> IdentityChallenge:
        return IdentityChallenge.issue("node2", bytes(range(32)), now)


def _api(certs: FakeCerts | None = None, tls: bool = True, now: float = 1000.0) -> tuple[SecurityApi, Any]:
    reloads: list[int] = []
    creds = SimpleNamespace(cert_path=Path("/c/node2.pem")) if tls else None
    node = SimpleNamespace(node_id="node2", credentials=creds, reload_tls=lambda: reloads.append(1))
    acl, fw = Acl(), Firewall()
    rng = random.Random(7)
    svc = SimpleNamespace(node=node, acl=acl, firewall=fw, admission=Admission(acl, fw, "node2"), certs=certs,
                          cipher=MessageCipher(KeyRing.generate(0.0, rng.randbytes), random_bytes=rng.randbytes),
                          keys=SimpleNamespace(reload_into=lambda ring: False))
    return SecurityApi(svc, clock=lambda: now), reloads  # type: ignore[arg-type]


def _raises(kind: ErrorKind, field: str | None, fn, *args, **kwargs) -> DomainError:
    with pytest.raises(DomainError) as info:
        fn(*args, **kwargs)
    assert (info.value.kind, info.value.field) == (kind, field)
    return info.value


def test_every_route_operation_is_a_facade_method_and_nothing_else_is_public() -> None:
    called = set(re.findall(r'call\(request, "security", "(\w+)"', Path(routes.__file__).read_text()))
    public = {n for n in vars(SecurityApi) if not n.startswith("_") and callable(getattr(SecurityApi, n))}
    assert called == public and len(public) == 16


def test_rotate_checks_node_then_tls_then_files_key_first() -> None:
    certs = FakeCerts(files={"/x/new.pem"})
    api, reloads = _api(certs)
    _raises(ErrorKind.NOT_FOUND, "node", api.rotate, CertRotateRequest("node9"))
    _raises(ErrorKind.CONFLICT, None, _api(certs, tls=False)[0].rotate, CertRotateRequest("node2"))
    err = _raises(ErrorKind.UNPROCESSABLE, "new_key_path", api.rotate,
                  CertRotateRequest("node2", "/nope.pem", "/nope.key"))
    assert str(err) == "new_key_path: no such file /nope.key" and certs.calls == [("exists", "/nope.key")]
    _raises(ErrorKind.UNPROCESSABLE, "new_cert_path", api.rotate, CertRotateRequest("node2", "/nope.pem"))
    assert reloads == [] and api.rotations == 0


def test_rotate_install_failure_keeps_the_current_certificate() -> None:
    certs = FakeCerts(files={"/x/new.pem"}, fail_install=True)
    api, reloads = _api(certs)
    err = _raises(ErrorKind.UNPROCESSABLE, "new_cert_path", api.rotate, CertRotateRequest("node2", "/x/new.pem"))
    assert "the current certificate stays in force" in str(err) and reloads == [] and api.rotations == 0


def test_rotate_reissues_and_reports() -> None:
    certs = FakeCerts(files=set())
    api, reloads = _api(certs)
    out = api.rotate(CertRotateRequest("node2"))
    assert ("reissue",) in certs.calls and reloads == [1] and api.rotations == 1
    assert (out.previous_serial, out.serial, out.source) == ("11", "12", "issued by the cluster CA")
    assert out.cert_path == "/c/node2.pem" and out.node == "node2"


def test_encryption_round_trip_and_input_errors() -> None:
    api, _ = _api()
    sealed = api.encrypt(EncryptRequest("hello", "ChaCha20Poly1305"))
    assert (sealed.encrypted, sealed.algorithm, sealed.node) == (True, "ChaCha20Poly1305", "node2")
    out = api.decrypt(DecryptRequest(sealed.ciphertext))
    assert to_wire(out) == {"decrypted": True, "algorithm": "ChaCha20Poly1305", "key_id": sealed.key_id,
                            "node": "node2", "data": "hello"}  # no "encoding": the plaintext is UTF-8
    _raises(ErrorKind.INVALID, "algorithm", api.decrypt, DecryptRequest(sealed.ciphertext, "AES256GCM"))
    _raises(ErrorKind.UNPROCESSABLE, "algorithm", api.encrypt, EncryptRequest("x", "ROT13"))
    _raises(ErrorKind.UNPROCESSABLE, "ciphertext", api.decrypt, DecryptRequest("not base64!!"))
    unknown_key = base64.b64encode(b"\x00\x00\x00\x09" + bytes(40)).decode()
    _raises(ErrorKind.INVALID, "ciphertext", api.decrypt, DecryptRequest(unknown_key))  # nothing new on disk either


def test_acl_validation_names_the_field() -> None:
    api, _ = _api()
    bad = AclAddRequest({"source": "10.0.1.300/24"})
    _raises(ErrorKind.UNPROCESSABLE, "rule.source", asyncio.run, api.acl_add(bad))
    _raises(ErrorKind.UNPROCESSABLE, "source", api.acl_check, AclCheckRequest("nope", "node1"))
    assert api.acl_check(AclCheckRequest("10.0.0.1", "node2")).allowed is True


def test_challenges_are_booked_on_the_injected_clock() -> None:
    api, _ = _api(FakeCerts(set()), now=42.0)
    out = api.identity_challenge()
    token = IdentityChallenge.decode(base64.b64decode(out.challenge))
    assert token == IdentityChallenge("node2", bytes(range(32)), 42_000)
    assert (out.issued_by, out.expires_in_s, out.single_use) == ("node2", 30.0, True)
    assert token in api.challenges and api.challenges._issued[token.nonce][1] == 42.0
    _raises(ErrorKind.NOT_FOUND, "node_id", api.identity_sign, IdentitySignRequest("node1", out.challenge))


def test_route_keyword_arguments_build_the_requests_and_results_go_out_as_the_old_dicts() -> None:
    """What the routes send (``call(..., **kwargs)``) binds to the request fields; ``to_wire`` is the old body."""
    api, _ = _api(FakeCerts(set()))
    out = to_wire(invoke(api.rotate, {"node": "node2", "new_cert_path": None, "new_key_path": None}))
    assert out == {"rotated": True, "node": "node2", "new_cert_expiry": "2030-01-01T00:00:00Z", "serial": "12",
                   "previous_serial": "11", "not_before": "2029-01-01T00:00:00Z", "fingerprint_sha256": "fp",
                   "cert_path": "/c/node2.pem", "source": "issued by the cluster CA"}
    check = to_wire(invoke(api.acl_check, {"source": "10.0.0.1", "destination": "node2"}))
    assert list(check) == ["allowed", "rule_id", "action", "reason", "source", "destination"]
    assert (check["allowed"], check["action"], check["rule_id"]) == (True, "ALLOW", None)
    sealed = to_wire(invoke(api.encrypt, {"data": "hi"}))
    assert list(sealed) == ["encrypted", "algorithm", "ciphertext", "key_id", "node"]
    assert sealed["algorithm"] == "AES256GCM"
    _raises(ErrorKind.UNPROCESSABLE, "nodes", invoke, api.rotate, {"nodes": "node2"})
    _raises(ErrorKind.UNPROCESSABLE, "rule_id", invoke, api.acl_delete, {})
