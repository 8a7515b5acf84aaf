"""The security management API (NETWORKING-048 to 054): one method per operation the REST routes call.

Why a facade apart from the service: the API contract (argument names and defaults, input validation,
which error names which field, the response fields) is one concern, and running security on a live node
(TLS hooks, admission on every connection, replication, files) is another. ``SecurityService`` is the
I/O adapter and builds this facade as ``service.api``; ``Node.call_api("security", op, kwargs)`` builds
the operation's request dataclass (``api_types``) from ``kwargs`` and calls ``service.api.<op>(req)``.
The facade reaches files and peers only through the service's collaborators (``NodeCertificates``,
``ClusterKeyStore``, ``SecurityReplication``) and reads the clock through the injected ``clock``;
refusals are ``rustyray.errors.DomainError`` naming the bad input.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.errors import DomainError, bad_request, conflict, not_found, unavailable, unprocessable
from rustyray.security.api_types import (
    AclAddRequest,
    AclCheckRequest,
    AclCheckResult,
    AclDeleteRequest,
    AclRules,
    CertRotated,
    CertRotateRequest,
    ChallengeIssued,
    ClientVerified,
    Decrypted,
    DecryptRequest,
    Encrypted,
    EncryptRequest,
    FirewallAddRequest,
    FirewallDeleteRequest,
    FirewallRules,
    IdentitySigned,
    IdentitySignRequest,
    IdentityVerified,
    IdentityVerifyRequest,
    KeyRotated,
    MtlsVerifyRequest,
    RuleAdded,
    RuleDeleted,
    TlsConfigReport,
)
from rustyray.security.challenges import (
    SCHEME,
    ChallengeBook,
    Freshness,
    FreshnessCheck,
    IdentityChallenge,
    TrustLevel,
)
from rustyray.security.encryption import CipherAlgorithm, MessageCipher, encrypt_response
from rustyray.security.errors import CertificateError, DecryptionError, InvalidRuleError
from rustyray.security.rotation import RotationPlan, RotationSource, rotation_report

if TYPE_CHECKING:
    from pathlib import Path

    from rustyray.security.service import SecurityService

__all__ = ["SecurityApi"]


def _b64(value: str, field: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise unprocessable(f"{field}: not valid base64", field) from None


def _rule_error(exc: InvalidRuleError, prefix: str = "") -> DomainError:
    """InvalidRuleError messages start with the field name ("source: ..."); keep it in the API error."""
    name = str(exc).split(":", 1)[0].strip() or "rule"
    return unprocessable(str(exc), f"{prefix}{name}")


def _parse_algorithm(value: str) -> CipherAlgorithm:
    try:
        return CipherAlgorithm.parse(value)
    except ValueError as exc:
        raise unprocessable(str(exc), "algorithm") from None


def _no_ca() -> DomainError:
    return unavailable("TLS is disabled on this node: there is no cluster CA to verify against")


def _not_this_node(me: str, other: str, field: str) -> DomainError:
    return not_found(f"this is {me}, not {other!r}; route the call to {other}", field)


class SecurityApi:
    """The ``security`` operations of one node (see the module docstring for why it is a class of its own)."""

    def __init__(self, service: SecurityService, *, clock: Callable[[], float]) -> None:
        self._svc = service
        self._node = service.node
        self._clock = clock  # wall clock, epoch seconds
        self.challenges = ChallengeBook()  # identity challenges this node issued, until answered
        self.rotations = 0  # certificate rotations done through this API

    @property
    def _cipher(self) -> MessageCipher:
        assert self._svc.cipher is not None
        return self._svc.cipher

    # ------------------------------------------------------------------------------------------- TLS
    def tls_config(self) -> TlsConfigReport:
        node, svc = self._node, self._svc
        live = [c for c in node.connections.values() if not c.is_closed]
        return TlsConfigReport(report=svc.certs.tls_report(), connections={
            "encrypted": sum(1 for c in live if c.tls_version is not None),
            "plaintext": sum(1 for c in live if c.tls_version is None),
            "payload_sealed": sum(1 for c in live if c.payload_encrypted),
        }, payload_encryption={
            "enabled": svc.config.encrypt_payloads,
            "key_id": svc.cipher.ring.primary.key_id if svc.cipher is not None else None,
        }, refusals={
            "total": node.stats.handshake_refusals,
            "by_reason": dict(node.stats.refusals),
            "admission": dict(svc.admission.refusals),
        }, node=node.node_id)

    def mtls_verify(self, req: MtlsVerifyRequest) -> ClientVerified:
        certificate_pem = req.certificate_pem
        node = self._node
        if node.credentials is None:
            raise _no_ca()
        if not certificate_pem:
            return ClientVerified(False, None, False, "no client certificate: this API is plain HTTP, so send the "
                                                      "PEM certificate to check in the JSON body as certificate_pem")
        try:
            check = self._svc.certs.check_client(certificate_pem)
        except ValueError as exc:
            raise unprocessable(f"certificate_pem: not a PEM certificate ({exc})", "certificate_pem") from None
        result = check.result
        now = self._clock()
        if result.verified:
            reason = "issued by the cluster CA and currently valid"
        elif not (check.not_before.timestamp() <= now < check.not_after.timestamp()):
            reason = "certificate is outside its validity period"
        else:
            reason = "certificate is not issued by the cluster CA"
        return ClientVerified(result.authenticated, result.client_cn, result.verified, reason,
                              member=result.client_cn in node.live_members() if result.verified else False,
                              not_after=check.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"))

    # ------------------------------------------------------------------------------------------- encryption
    def encrypt(self, req: EncryptRequest) -> Encrypted:
        cipher = self._cipher
        sealed = encrypt_response(cipher, req.data.encode(), _parse_algorithm(req.algorithm))
        return Encrypted(**sealed, node=self._node.node_id)  # type: ignore[arg-type]

    def decrypt(self, req: DecryptRequest) -> Decrypted:
        ciphertext, algorithm = req.ciphertext, req.algorithm
        cipher = self._cipher
        sealed = _b64(ciphertext, "ciphertext")
        if algorithm is not None:
            alg = _parse_algorithm(algorithm)
            if len(sealed) >= 5 and sealed[4] != alg.wire_id:
                raise bad_request(f"algorithm: ciphertext was sealed with another algorithm than {alg.value}",
                               "algorithm")
        try:
            plain = cipher.open(sealed)
        except DecryptionError as exc:
            # a key another node just rotated in may not have reached this node yet: look on the shared disk
            if "unknown key id" not in str(exc) or not self._svc.keys.reload_into(cipher.ring):
                raise bad_request(f"ciphertext: {exc}", "ciphertext") from None
            try:
                plain = cipher.open(sealed)
            except DecryptionError as exc2:
                raise bad_request(f"ciphertext: {exc2}", "ciphertext") from None
        key_id = int.from_bytes(sealed[:4], "big")
        used = next(a for a in CipherAlgorithm if a.wire_id == sealed[4])
        try:
            return Decrypted(True, used.value, key_id, self._node.node_id, plain.decode())
        except UnicodeDecodeError:
            return Decrypted(True, used.value, key_id, self._node.node_id, base64.b64encode(plain).decode(),
                             encoding="base64")

    async def rotate_key(self) -> KeyRotated:
        svc = self._svc
        previous = self._cipher.ring.primary.key_id
        ring, new_id = svc.keys.rotate(self._cipher.ring, self._clock())
        svc.cipher = MessageCipher(ring)
        reloaded = await svc.replication.push_key_ring(ring)
        return KeyRotated(rotated=True, key_id=new_id, previous_key_id=previous, key_ids=ring.key_ids(),
                          reloaded_on=reloaded, node=self._node.node_id)

    # ------------------------------------------------------------------------------------------- ACL
    async def acl_add(self, req: AclAddRequest) -> RuleAdded:
        try:
            added = self._svc.acl.add_from_dict(req.rule)
        except InvalidRuleError as exc:
            raise _rule_error(exc, "rule.") from None
        return await self._added("acl", added)

    def acl_rules(self) -> AclRules:
        acl = self._svc.acl
        return AclRules(rules=acl.to_dicts(), default_action=acl.config.default_action.value,
                        version=self._svc.rules.version("acl"),
                        refused=self._svc.admission.refusals["acl_denied"], node=self._node.node_id)

    async def acl_delete(self, req: AclDeleteRequest) -> RuleDeleted:
        if not self._svc.acl.remove(req.rule_id):
            raise not_found(f"no ACL rule {req.rule_id!r}", "rule_id")
        return await self._deleted("acl", req.rule_id)

    def acl_check(self, req: AclCheckRequest) -> AclCheckResult:
        try:
            decision = self._svc.acl.check(req.source, req.destination)
        except InvalidRuleError as exc:
            raise unprocessable(f"source: {exc}", "source") from None
        return AclCheckResult(allowed=decision.allowed, rule_id=decision.rule_id, action=decision.action.value,
                              reason=decision.reason, source=req.source, destination=req.destination)

    async def _added(self, kind: str, added: Any) -> RuleAdded:
        """Replicate the ``kind`` rule list after ``added`` joined it, and say so."""
        applied = await self._svc.rules.replicate(kind)
        return RuleAdded(rule_added=True, rule_id=added.rule_id, rule=added.to_dict(), applied_on=applied,
                         version=self._svc.rules.version(kind))

    async def _deleted(self, kind: str, rule_id: str) -> RuleDeleted:
        applied = await self._svc.rules.replicate(kind)
        return RuleDeleted(deleted=True, rule_id=rule_id, applied_on=applied, version=self._svc.rules.version(kind))

    # ------------------------------------------------------------------------------------------- firewall
    def firewall_rules(self) -> FirewallRules:
        svc = self._svc
        return FirewallRules(rules=svc.firewall.to_dicts(), version=svc.rules.version("firewall"),
                             stats={**svc.firewall.stats(), "admitted": svc.admission.admitted,
                                    "messages_refused": dict(svc.admission.message_refusals)},
                             node=self._node.node_id)

    async def firewall_add(self, req: FirewallAddRequest) -> RuleAdded:
        svc = self._svc
        try:
            added = svc.firewall.add_rule(req.rule)
        except InvalidRuleError as exc:
            raise _rule_error(exc) from None
        svc.sync_message_filter()
        return await self._added("firewall", added)

    async def firewall_delete(self, req: FirewallDeleteRequest) -> RuleDeleted:
        if not self._svc.firewall.remove_rule(req.rule_id):
            raise not_found(f"no firewall rule {req.rule_id!r}", "rule_id")
        self._svc.sync_message_filter()
        return await self._deleted("firewall", req.rule_id)

    # ------------------------------------------------------------------------------------------- certificates
    def rotate(self, req: CertRotateRequest) -> CertRotated:
        me, certs = self._node, self._svc.certs
        if req.node != me.node_id:
            raise _not_this_node(me.node_id, req.node, "node")
        if me.credentials is None:
            raise conflict("TLS is disabled on this node; enable transport.tls to rotate certificates")
        plan = RotationPlan(req.new_cert_path, req.new_key_path)
        previous = certs.info()
        for field, path in plan.required_files():
            if not certs.exists(path):
                raise unprocessable(f"{field}: no such file {path}", field)
        if plan.source is RotationSource.INSTALLED:
            try:
                certs.install(plan)
            except CertificateError as exc:
                raise unprocessable(f"new_cert_path: {exc}; the current certificate stays in force",
                               "new_cert_path") from None
        else:
            certs.reissue()
        me.reload_tls()
        self.rotations += 1
        return CertRotated(**rotation_report(plan, me.node_id, previous, certs.info(), me.credentials.cert_path))

    # ------------------------------------------------------------------------------------------- identity
    def _cert_of(self, node_id: str) -> Path:
        if not node_id or not all(c.isalnum() or c in "-_." for c in node_id) or node_id.startswith("."):
            raise unprocessable(f"node_id: invalid node id {node_id!r}", "node_id")
        path = self._svc.certs.member_certificate(node_id)
        if path is None:
            raise not_found(f"no certificate for node {node_id!r} in the cluster", "node_id")
        return path

    def _token(self, challenge: str) -> IdentityChallenge:
        try:
            return IdentityChallenge.decode(_b64(challenge, "challenge"))
        except ValueError as exc:
            raise unprocessable(f"challenge: {exc}; get one from POST /security/identity/challenge",
                                "challenge") from None

    def identity_verify(self, req: IdentityVerifyRequest) -> IdentityVerified:
        """Verify a prover's answer to a challenge this node issued: fresh, single use, domain-separated.

        The challenge is spent by this call whatever the outcome (one attempt per nonce), and it is
        spent before the signature is checked, so a failed guess cannot be retried with the same nonce.
        """
        me, node_id = self._node, req.node_id
        if me.credentials is None:
            raise _no_ca()
        cert_path = self._cert_of(node_id)
        token = self._token(req.challenge)
        sig = _b64(req.signature, "signature")
        if token.verifier != me.node_id:
            freshness = FreshnessCheck(Freshness.UNKNOWN, f"challenge was issued by {token.verifier}, not by "
                                                          f"{me.node_id}: only its issuer can verify the answer")
        else:
            freshness = self.challenges.consume(token, self._clock())
        out = IdentityVerified(**self._svc.certs.verify_identity(node_id, cert_path, token, sig),
                               fresh=freshness.fresh, freshness=freshness.freshness.value, verifier=me.node_id)
        if not freshness.fresh:  # a valid signature over a stale, replayed or foreign challenge proves nothing
            reason = freshness.reason if out.verified else f"{freshness.reason}; also {out.reason}"
            out = dataclasses.replace(out, verified=False, trust_level=TrustLevel.NONE.value, reason=reason)
        return out

    def identity_challenge(self) -> ChallengeIssued:
        now = self._clock()
        token = self._svc.certs.new_challenge(now)
        expires = self.challenges.issue(token, now)
        return ChallengeIssued(challenge=base64.b64encode(token.encode()).decode(), bytes=len(token.encode()),
                               issued_by=self._node.node_id, nonce_bytes=len(token.nonce),
                               expires_in_s=round(expires - now, 3), single_use=True)

    def identity_sign(self, req: IdentitySignRequest) -> IdentitySigned:
        """This node answers a challenge as itself (admin only at the API: it exercises the node's key)."""
        me = self._node
        if req.node_id != me.node_id:
            raise _not_this_node(me.node_id, req.node_id, "node_id")
        if me.credentials is None:
            raise conflict("TLS is disabled on this node: it has no certificate key to sign with")
        token = self._token(req.challenge)
        sig = self._svc.certs.sign(token)
        return IdentitySigned(node_id=me.node_id, challenge=req.challenge, verifier=token.verifier,
                              signature=base64.b64encode(sig).decode(),
                              scheme=f"{SCHEME} (context, verifier, prover, nonce and issue time, signed with the "
                                     "node's certificate key)")
