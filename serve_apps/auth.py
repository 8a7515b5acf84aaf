"""Who may call the management API: bearer tokens with two roles, read and admin.

Why: whoever reaches the API port could otherwise rotate certificates, rewrite ACL and
firewall rules, make nodes leave and send messages as the cluster. The model is Consul's
ACL tokens and etcd's auth, cut down to what an operator of one cluster needs:

- **admin** may do everything; every request that changes something needs it (every
  method but GET/HEAD/OPTIONS, and GraphQL mutations over HTTP or WebSocket);
- **read** may GET, run GraphQL queries and open subscriptions, and make the few POSTs
  that only compute an answer (``READ_POSTS``: encode a frame, negotiate a handshake,
  pick a node, check an ACL, verify a certificate or an identity, encrypt); decrypting,
  sending, configuring, joining and leaving stay admin;
- **no token** gets the read role only when ``read_open`` is set. ``launch`` sets it only
  when the API binds a loopback address, so the seed's read-only curl commands work as
  written on one machine; beyond loopback every endpoint needs a token.

Tokens are compared as SHA-256 digests with ``hmac.compare_digest``: the replica holds only
the digests (``launch`` passes them), never the tokens, and timing says nothing about them.
A missing or unknown token is 401, a read token on an admin operation 403; both are JSON
naming ``authorization`` and are counted (``rustyray_api_auth_failures_total`` in
``/metrics``). ``/healthz`` stays open: it is what a load balancer's health check hits.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphql import OperationType, parse
from graphql.error import GraphQLError
from graphql.utilities import get_operation_ast

__all__ = [
    "ADMIN_TOKEN_FILE",
    "READ_TOKEN_FILE",
    "ApiAuth",
    "AuthMiddleware",
    "Role",
    "admin_headers",
    "ensure_tokens",
    "is_loopback",
]

ADMIN_TOKEN_FILE = "api-token"
"""Admin token file in the state directory (mode 0600), made by ``launch`` when absent."""
READ_TOKEN_FILE = "api-token.read"
"""Read-only token file beside it."""

OPEN_PATHS = frozenset({"/healthz", "/health"})
READ_POSTS = frozenset(f"/api/v1/network{p}" for p in (
    "/protocol/encode", "/protocol/handshake", "/loadbalancer/select", "/security/acl/check",
    "/security/mtls/verify", "/security/identity/challenge", "/security/identity/verify",
    "/security/encryption/encrypt",
))
"""POSTs that change nothing but counters: they take a body only because their input is structured."""
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Role(enum.IntEnum):
    """Ordered: a role may do what every lower role may."""

    NONE = 0
    READ = 1
    ADMIN = 2


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(value: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (a bare token is accepted too)."""
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else value.strip()
    return token or None


@dataclass
class ApiAuth:
    """The replica's policy: token digests per role and whether reading needs a token."""

    admin_digests: tuple[str, ...]
    read_digests: tuple[str, ...] = ()
    read_open: bool = False
    failures: Counter[str] = field(default_factory=Counter)
    """``missing`` / ``invalid`` / ``forbidden`` refusals since the replica started."""

    @classmethod
    def from_tokens(cls, admin: str, read: str | None = None, *, read_open: bool = False) -> ApiAuth:
        return cls((digest(admin),), (digest(read),) if read else (), read_open)

    def role_of(self, token: str | None) -> Role | None:
        """The role ``token`` grants; None for a token that matches no role (wrong token)."""
        if token is None:
            return Role.READ if self.read_open else Role.NONE
        d = digest(token)
        if any(hmac.compare_digest(d, a) for a in self.admin_digests):
            return Role.ADMIN
        if any(hmac.compare_digest(d, r) for r in self.read_digests):
            return Role.READ
        return None

    def refusal(self, token: str | None, needed: Role) -> tuple[int, str] | None:
        """``(status, message)`` when ``token`` may not do what needs ``needed``; None when it may."""
        role = self.role_of(token)
        if role is not None and role >= needed:
            return None
        role_name = needed.name.lower()
        if role is None:
            reason, status, msg = "invalid", 401, "authorization: the token is not valid for this cluster"
        elif token is None:
            reason, status = "missing", 401
            msg = f"authorization: this operation needs a token of the {role_name} role " \
                  "(send 'Authorization: Bearer <token>')"
        else:
            reason, status, msg = "forbidden", 403, f"authorization: this operation needs the {role_name} role"
        self.failures[reason] += 1
        return status, msg


def graphql_needs(body: bytes) -> Role:
    """ADMIN for a GraphQL request that would run a mutation (or that cannot be read), else READ."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return Role.READ  # not JSON: strawberry refuses it before anything runs
    if not isinstance(payload, dict):
        return Role.ADMIN  # a batch: judged as its most powerful member would be
    query = payload.get("query")
    if not isinstance(query, str):
        return Role.READ
    try:
        op = get_operation_ast(parse(query), payload.get("operationName"))
    except GraphQLError:
        return Role.READ  # a syntax error runs nothing
    if op is None:
        return Role.ADMIN  # several operations and no (valid) operationName: assume the worst
    return Role.ADMIN if op.operation is OperationType.MUTATION else Role.READ


def _json_response(status: int, message: str) -> tuple[dict[str, Any], bytes]:
    body = json.dumps({"error": message, "status": status, "field": "authorization"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="rustyray"'))
    return {"type": "http.response.start", "status": status, "headers": headers}, body


class AuthMiddleware:
    """ASGI middleware for HTTP requests; WebSockets are judged at ``connection_init`` (graphql_schema)."""

    def __init__(self, app: Any, auth: ApiAuth, graphql_paths: tuple[str, ...]) -> None:
        self.app = app
        self.auth = auth
        self.graphql_paths = graphql_paths

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        token = bearer(_header(scope, b"authorization"))
        method = scope["method"].upper()
        replay = receive
        if method in READ_METHODS or (method == "POST" and scope["path"].rstrip("/") in READ_POSTS):
            needed = Role.READ
        elif scope["path"].rstrip("/") in self.graphql_paths and method == "POST":
            body, replay = await _buffer(receive)
            needed = graphql_needs(body)
        else:
            needed = Role.ADMIN
        refused = self.auth.refusal(token, needed)
        if refused is not None:
            start, body = _json_response(*refused)
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, replay, send)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _buffer(receive: Any) -> tuple[bytes, Any]:
    """Read the whole body (the body-limit middleware outside us caps it) and a ``receive`` that replays it."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


# ----------------------------------------------------------------------------------------------- tokens on disk


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read_or_make(path: Path) -> str:
    if path.exists():
        token = path.read_text().strip()
        if not token:
            raise ValueError(f"{path}: the token file is empty")
        return token
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never overwrite another launch's token
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def admin_headers(state_dir: str | Path) -> dict[str, str]:
    """``{"Authorization": "Bearer <admin token>"}`` of a launched cluster's state directory."""
    return {"Authorization": f"Bearer {(Path(state_dir) / ADMIN_TOKEN_FILE).read_text().strip()}"}


def ensure_tokens(state_dir: Path, admin_token: str | None = None) -> tuple[str, str]:
    """The admin and read tokens of a state directory, created (0600) when absent.

    ``admin_token`` (``--api-token`` / ``RUSTYRAY_API_TOKEN``) replaces the admin file's content.
    """
    admin_path = state_dir / ADMIN_TOKEN_FILE
    if admin_token:
        admin_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(admin_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(admin_token + "\n")
        admin_path.chmod(0o600)  # an existing file keeps its old mode through O_CREAT
    return _read_or_make(admin_path), _read_or_make(state_dir / READ_TOKEN_FILE)
