"""Security endpoints (NETWORKING-048 to 054): TLS report, mTLS check, encryption, ACL, firewall, certs, identity.

Every call runs on a live node's ``SecurityService``; rule changes are applied cluster-wide by that service.
Certificate rotation and identity signing run on the node they name (its own files and key); identity
verification runs on the node that issued the challenge (its book alone knows whether it is fresh).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from rustyray.errors import not_found
from rustyray.security.challenges import IdentityChallenge
from serve_apps.common import NodeParam, call, gateway

router = APIRouter()

Algorithm = str  # validated by the node (422 naming "algorithm"), so that spellings like "aes-256-gcm" work


class MtlsVerifyRequest(BaseModel):
    certificate_pem: str | None = Field(None, description="PEM client certificate to authenticate against the CA")


class EncryptRequest(BaseModel):
    data: str = Field(description="UTF-8 text to seal")
    algorithm: Algorithm = Field("AES256GCM", min_length=1, description="AES256GCM or ChaCha20Poly1305")


class DecryptRequest(BaseModel):
    ciphertext: str = Field(min_length=1, description="base64 sealed message from /security/encryption/encrypt")
    algorithm: Algorithm | None = Field(None, min_length=1, description="optional; must match the sealed one")


class AclRuleBody(BaseModel):
    source: str = Field(min_length=1, description="source CIDR, e.g. 10.0.1.0/24")
    destination: str = Field("*", min_length=1, description="node id or '*'")
    action: Literal["ALLOW", "DENY", "allow", "deny"] = "ALLOW"
    priority: int = Field(100, ge=0, le=2**31 - 1, description="lower is evaluated first")


class AclAddRequest(BaseModel):
    rule: AclRuleBody


class AclCheckRequest(BaseModel):
    source: str = Field(min_length=1, description="source IP address")
    destination: str = Field(min_length=1, description="destination node id")


class FirewallRuleBody(BaseModel):
    type: Literal["rate_limit", "protocol_filter", "connection_limit", "cidr_block", "geo_blocking"]
    threshold: float | None = Field(None, gt=0, description="rate_limit: connection attempts per second per source")
    burst: float | None = Field(None, gt=0, description="rate_limit: bucket size (default threshold)")
    allowed_protocols: list[Literal["TCP", "QUIC"]] | None = Field(None, min_length=1)
    max_connections: int | None = Field(None, ge=1, description="connection_limit: per source address")
    cidrs: list[str] | None = Field(None, min_length=1, description="cidr_block/geo_blocking: ranges to refuse")
    blocked_countries: list[str] | None = Field(None, description="geo_blocking: labels for the ranges")


class CertRotateRequest(BaseModel):
    node: str = Field(min_length=1, description="node whose certificate to rotate")
    new_cert_path: str | None = Field(None, min_length=1, description="install this PEM instead of issuing one")
    new_key_path: str | None = Field(None, min_length=1, description="key of new_cert_path (default: current)")


class IdentityVerifyRequest(BaseModel):
    node_id: str = Field(min_length=1)
    challenge: str = Field(min_length=1, description="base64 challenge token from POST /security/identity/challenge")
    signature: str = Field(min_length=1, description="base64 signature by the node's certificate key")


class IdentitySignRequest(BaseModel):
    node_id: str = Field(min_length=1, description="node that signs with its own key")
    challenge: str = Field(min_length=1, description="base64 challenge token issued by the verifying node")


@router.get("/security/tls/config")
async def tls_config(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "tls_config", node)


@router.post("/security/mtls/verify")
async def mtls_verify(request: Request, body: MtlsVerifyRequest | None = None, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "mtls_verify", node,
                      certificate_pem=body.certificate_pem if body else None)


@router.post("/security/encryption/encrypt")
async def encrypt(body: EncryptRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "encrypt", node, data=body.data, algorithm=body.algorithm)


@router.post("/security/encryption/decrypt")
async def decrypt(body: DecryptRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "decrypt", node, ciphertext=body.ciphertext, algorithm=body.algorithm)


@router.post("/security/encryption/rotate-key")
async def rotate_key(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "rotate_key", node)


@router.post("/security/acl/add")
async def acl_add(body: AclAddRequest, request: Request, node: str | None = NodeParam) -> Any:
    rule = body.rule.model_dump()
    rule["action"] = rule["action"].upper()
    return await call(request, "security", "acl_add", node, rule=rule)


@router.get("/security/acl/rules")
async def acl_rules(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "acl_rules", node)


@router.delete("/security/acl/rules/{rule_id}")
async def acl_delete(rule_id: str, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "acl_delete", node, rule_id=rule_id)


@router.post("/security/acl/check")
async def acl_check(body: AclCheckRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "acl_check", node, source=body.source, destination=body.destination)


@router.get("/security/firewall/rules")
async def firewall_rules(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "firewall_rules", node)


@router.post("/security/firewall/rules")
async def firewall_add(body: FirewallRuleBody, request: Request, node: str | None = NodeParam) -> Any:
    rule = body.model_dump(exclude_none=True)
    return await call(request, "security", "firewall_add", node, rule=rule)


@router.delete("/security/firewall/rules/{rule_id}")
async def firewall_delete(rule_id: str, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "firewall_delete", node, rule_id=rule_id)


@router.post("/security/certificates/rotate")
async def certificates_rotate(body: CertRotateRequest, request: Request) -> Any:
    # Runs on the named node: it rewrites that node's files and reloads that node's live TLS contexts.
    return await call(request, "security", "rotate", body.node, node=body.node, new_cert_path=body.new_cert_path,
                      new_key_path=body.new_key_path)


def _issuer(challenge: str) -> str | None:
    """The node that issued a challenge token (it alone can verify the answer); None when not a token."""
    try:
        return IdentityChallenge.decode(base64.b64decode(challenge, validate=True)).verifier
    except (ValueError, binascii.Error):
        return None  # the verifying node names the problem with the field


@router.post("/security/identity/verify")
async def identity_verify(body: IdentityVerifyRequest, request: Request, node: str | None = NodeParam) -> Any:
    if node is None:  # verify where the challenge was issued: only that node's book can say it is fresh
        issuer = _issuer(body.challenge)
        node = issuer if issuer in await gateway(request).node_ids() else None
    return await call(request, "security", "identity_verify", node, node_id=body.node_id,
                      challenge=body.challenge, signature=body.signature)


@router.post("/security/identity/challenge")
async def identity_challenge(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "security", "identity_challenge", node)


@router.post("/security/identity/sign")
async def identity_sign(body: IdentitySignRequest, request: Request) -> Any:
    # The named node signs with its own certificate key (the key never leaves it).
    known = await gateway(request).node_ids()
    if body.node_id not in known:  # name the body field, not the ?node= parameter this route lacks
        raise not_found(f"unknown node {body.node_id!r}; known nodes: {', '.join(known)}", "node_id")
    return await call(request, "security", "identity_sign", body.node_id, node_id=body.node_id,
                      challenge=body.challenge)
