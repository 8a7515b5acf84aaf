"""The security API's contract (NETWORKING-048 to 054): the request and result dataclasses of ``SecurityApi``.

Why dataclasses: the field lists here are the API's schema, in one place a reader (and the facade's tests)
can see, instead of dict literals spread over ``api.py``. Request field names and defaults are the keyword
arguments the REST routes (``serve_apps/routes/security.py``) pass, because ``rustyray.api_binding.invoke``
builds the request from them; result fields are the response keys, turned into JSON by ``to_wire``.

Three operations keep a plain dict result, because some of their keys are present only in some answers and
adding them as ``None`` would change the wire: ``tls_config`` (the TLS report of ``security.tls`` has more
keys when TLS is on), ``mtls_verify`` (``member``/``not_after`` only when a certificate was sent) and
``decrypt`` (``encoding`` only for binary plaintext).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rustyray.api_base import omit_none
from rustyray.records import record

__all__ = [
    "AclAddRequest",
    "AclCheckRequest",
    "AclCheckResult",
    "AclDeleteRequest",
    "AclRules",
    "CertRotateRequest",
    "CertRotated",
    "ChallengeIssued",
    "DecryptRequest",
    "EncryptRequest",
    "Encrypted",
    "FirewallAddRequest",
    "FirewallDeleteRequest",
    "FirewallRules",
    "IdentitySignRequest",
    "IdentitySigned",
    "IdentityVerified",
    "IdentityVerifyRequest",
    "KeyRotated",
    "MtlsVerifyRequest",
    "RuleAddRequest",
    "RuleAdded",
    "RuleDeleteRequest",
    "RuleDeleted",
]


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class MtlsVerifyRequest:
    certificate_pem: str | None = None


@dataclass(frozen=True)
class EncryptRequest:
    data: str
    algorithm: str = "AES256GCM"


@dataclass(frozen=True)
class DecryptRequest:
    ciphertext: str
    algorithm: str | None = None


@dataclass(frozen=True)
class RuleAddRequest:
    """``acl_add`` and ``firewall_add``: the rule's fields, parsed by the list it is added to."""

    rule: dict[str, Any]


@dataclass(frozen=True)
class RuleDeleteRequest:
    """``acl_delete`` and ``firewall_delete``."""

    rule_id: str


AclAddRequest = FirewallAddRequest = RuleAddRequest
AclDeleteRequest = FirewallDeleteRequest = RuleDeleteRequest


@dataclass(frozen=True)
class AclCheckRequest:
    source: str
    destination: str


@dataclass(frozen=True)
class CertRotateRequest:
    node: str
    new_cert_path: str | None = None
    new_key_path: str | None = None


@dataclass(frozen=True)
class IdentityVerifyRequest:
    node_id: str
    challenge: str
    signature: str


@dataclass(frozen=True)
class IdentitySignRequest:
    node_id: str
    challenge: str


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Encrypted:
    """NETWORKING-050: the sealed message (``security.encryption.encrypt_response``) and the sealing node."""

    encrypted: bool
    algorithm: str
    ciphertext: str
    key_id: int
    node: str


@dataclass(frozen=True)
class KeyRotated:
    rotated: bool
    key_id: int
    previous_key_id: int
    key_ids: list[int]
    reloaded_on: list[str]
    node: str


@dataclass(frozen=True)
class RuleAdded:
    """An ACL or firewall rule, applied here and replicated; ``rule`` is the rule's own ``to_dict()``."""

    rule_added: bool
    rule_id: str
    rule: dict[str, Any]
    applied_on: list[str]
    version: int


@dataclass(frozen=True)
class RuleDeleted:
    deleted: bool
    rule_id: str
    applied_on: list[str]
    version: int


@dataclass(frozen=True)
class AclRules:
    rules: list[dict[str, Any]]
    default_action: str
    version: int
    refused: int
    node: str


@dataclass(frozen=True)
class AclCheckResult:
    """The ACL's decision (``AclDecision``) echoed with the addresses it was asked about."""

    allowed: bool
    rule_id: str | None
    action: str
    reason: str
    source: str
    destination: str


@dataclass(frozen=True)
class FirewallRules:
    """``stats`` is the firewall's own counters plus the admission's (admitted, messages_refused)."""

    rules: list[dict[str, Any]]
    version: int
    stats: dict[str, Any]
    node: str


@dataclass(frozen=True)
class CertRotated:
    """A completed rotation (``security.rotation.rotation_report``): the certificate now served and the old one."""

    rotated: bool
    node: str
    new_cert_expiry: str
    serial: str
    previous_serial: str
    not_before: str
    fingerprint_sha256: str
    cert_path: str
    source: str


@dataclass(frozen=True)
class IdentityVerified:
    """NETWORKING-054: the signature check (``IdentityResult`` plus its scheme) and the challenge's freshness.

    ``verified`` is True only for a valid signature over a fresh challenge this node issued.
    """

    verified: bool
    node_id: str
    trust_level: str
    reason: str
    scheme: str
    fresh: bool
    freshness: str
    verifier: str


@dataclass(frozen=True)
class ChallengeIssued:
    challenge: str
    bytes: int
    issued_by: str
    nonce_bytes: int
    expires_in_s: float
    single_use: bool


@dataclass(frozen=True)
class IdentitySigned:
    node_id: str
    challenge: str
    verifier: str
    signature: str
    scheme: str


@dataclass(frozen=True)
class TlsConfigReport:
    """``tls_config``: the TLS report of ``security.tls`` (its keys depend on whether TLS is on), with live
    connection, payload-encryption and refusal counts beside it."""

    report: dict[str, Any]
    connections: dict[str, int]
    payload_encryption: dict[str, Any]
    refusals: dict[str, Any]
    node: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.report, "connections": self.connections, "payload_encryption": self.payload_encryption,
                "refusals": self.refusals, "node": self.node}


@dataclass(frozen=True)
class ClientVerified:
    """``mtls_verify``; ``member`` and ``not_after`` only when a certificate was sent."""

    authenticated: bool
    client_cn: str | None
    verified: bool
    reason: str
    member: bool | None = None
    not_after: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return record(self, exclude=() if self.not_after is not None else ("member", "not_after"))


@dataclass(frozen=True)
class Decrypted:
    """``decrypt``; ``encoding`` ("base64") only when the plaintext is not UTF-8."""

    decrypted: bool
    algorithm: str
    key_id: int
    node: str
    data: str
    encoding: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return omit_none(self, "encoding")
