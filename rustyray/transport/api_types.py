"""The transport API's contract (NETWORKING-001, 002, 004, 005, 006): request and result dataclasses.

Why dataclasses: the field lists are the API's schema in one place (see ``rustyray.api_binding``:
``invoke`` builds the request from the call's keyword arguments, ``to_wire`` serialises the result).
A result whose keys depend on the outcome says so with its own type (``ConnectFailed``) or with a
``to_dict`` that leaves the absent key out (``HandshakeResult.reason``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rustyray.errors import unprocessable
from rustyray.records import record

__all__ = [
    "CheckDialRequest",
    "ConnectFailed",
    "ConnectRequest",
    "Connected",
    "ConnectionsList",
    "DialAllowed",
    "EncodeRequest",
    "EncodeResult",
    "HandshakeRequest",
    "HandshakeResult",
]


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class ConnectRequest:
    protocol: str
    host: str
    port: int
    node_id: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise unprocessable("port must be between 1 and 65535", "port")
        if not self.host:
            raise unprocessable("host must not be empty", "host")


@dataclass(frozen=True)
class CheckDialRequest:
    hosts: list[str]
    field: str = "host"  # the request field a refusal names (the caller's, e.g. "seed_nodes")


@dataclass(frozen=True)
class EncodeRequest:
    message_type: str
    compression: str = "none"
    data: dict[str, Any] | None = None
    message_id: int | None = None


@dataclass(frozen=True)
class HandshakeRequest:
    node_id: str
    protocol_version: int
    capabilities: list[str]


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Connected:
    success: bool
    connection_id: str
    state: str
    protocol: str
    encrypted: bool
    tls_version: str | None
    node_id: str
    peer_address: str
    local_address: str
    negotiated_protocol: str
    compression: str
    latency_ms: float


@dataclass(frozen=True)
class ConnectFailed:
    success: bool
    protocol: str
    state: str
    address: str
    error: str
    latency_ms: float


@dataclass(frozen=True)
class DialAllowed:
    allowed: bool


@dataclass(frozen=True)
class ConnectionsList:
    node: str
    connections: list[dict[str, Any]]  # Connection.describe() rows
    total: int


@dataclass(frozen=True)
class EncodeResult:
    encoded_size: int
    payload_size: int
    compressed_payload_size: int
    compression: str
    compression_ratio: float
    checksum: str
    message_id: int
    message_type: str
    wire_type: str
    header_hex: str
    round_trip: bool


@dataclass(frozen=True)
class HandshakeResult:
    accepted: bool
    peer_capabilities: list[str]
    negotiated_protocol: str | None
    compression: str | None
    peer_node: str
    supported_versions: list[int]
    reason: str | None = field(default=None)  # present only when refused

    def to_dict(self) -> dict[str, Any]:
        return record(self, exclude=("reason",) if self.accepted else ())
