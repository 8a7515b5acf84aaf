"""The discovery API's contract (NETWORKING-020..024 and the status page): request and result dataclasses.

Why dataclasses: the field lists here are the API's schema, in one place a reader (and the facade's
tests) can see, instead of the backends' dict literals being passed through ``api.py`` unseen.
Requests check the fields they can check alone in ``__post_init__`` (a ``DomainError`` naming the
field); ``rustyray.api_binding.invoke`` builds them from the call's keyword arguments and ``to_wire``
turns results into JSON, field by field. The ``*Nodes`` results are the backends' bodies (built in the
``*_records`` modules) read into typed rows, so a body that drifts from the contract fails loudly here.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from rustyray.errors import not_found, unprocessable

__all__ = [
    "CLOUD_PROVIDERS",
    "CloudInstance",
    "CloudNodes",
    "CloudNodesRequest",
    "ConsulDeregisterRequest",
    "ConsulDeregistered",
    "ConsulNode",
    "ConsulNodes",
    "ConsulRegisterRequest",
    "ConsulRegistered",
    "DiscoveryStatus",
    "DnsNode",
    "DnsNodes",
    "EtcdNode",
    "EtcdNodes",
    "KubernetesNodes",
    "KubernetesPod",
    "is_host",
]

CLOUD_PROVIDERS = ("aws", "azure", "gcp")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


def is_host(address: object) -> bool:
    """True for an IP address or a DNS host name (no port, no spaces)."""
    if not isinstance(address, str):
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return bool(_HOSTNAME.match(address))
    return True


# ---------------------------------------------------------------------------------------------- requests
@dataclass(frozen=True)
class CloudNodesRequest:
    provider: str

    def __post_init__(self) -> None:
        if not isinstance(self.provider, str) or self.provider.lower() not in CLOUD_PROVIDERS:
            raise not_found(f"unknown cloud provider {self.provider!r}; known: {', '.join(CLOUD_PROVIDERS)}",
                            "provider")


@dataclass(frozen=True)
class ConsulRegisterRequest:
    """``service_name`` is checked against the configured service by the operation (it needs the config)."""

    node_id: str
    address: str
    port: int
    tags: list[str] | None = None
    service_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, str) or not self.node_id.strip() or "/" in self.node_id:
            raise unprocessable("node_id must be a non-empty string without '/'", "node_id")
        if not is_host(self.address):
            raise unprocessable(f"address must be a host name or IP address without a port, got {self.address!r}",
                                "address")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise unprocessable("port must be between 1 and 65535", "port")


@dataclass(frozen=True)
class ConsulDeregisterRequest:
    node_id: str


# ----------------------------------------------------------------------------------------------- results
class _BackendBody:
    """A ``*Nodes`` result: a backend's body read field by field, the ``rows`` fields as typed rows."""

    rows: ClassVar[Mapping[str, type]] = {}
    """List fields of the body and the row dataclass each entry is read into."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Any:
        """Every field from the key of its name (a missing key is a ``KeyError``; extra keys are ignored)."""
        return cls(**{f.name: [cls.rows[f.name](**row) for row in body[f.name]] if f.name in cls.rows
                      else body[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class DiscoveryStatus:
    """The status page. ``backends`` rows merge the registry's record with the formation state (each
    produced by its own module), ``learned_peers`` are the formation core's rows."""

    node: str
    health: str
    detail: str
    configured: list[str]
    joined_backends: list[str]
    refresh_interval_s: float
    register: bool
    watch: bool
    config_error: str | None
    backends: dict[str, dict[str, Any]]
    learned_peers: list[dict[str, Any]]


@dataclass(frozen=True)
class DnsNode:
    id: str
    address: str
    port: int


@dataclass(frozen=True)
class DnsNodes(_BackendBody):
    """NETWORKING-020."""

    discovered_nodes: list[DnsNode]
    discovery_method: str
    ttl_seconds: int

    rows = {"discovered_nodes": DnsNode}


@dataclass(frozen=True)
class KubernetesPod:
    pod: str
    ip: str
    ready: bool


@dataclass(frozen=True)
class KubernetesNodes(_BackendBody):
    """NETWORKING-021: every pod of the service with its readiness."""

    namespace: str
    service: str
    nodes: list[KubernetesPod]

    rows = {"nodes": KubernetesPod}


@dataclass(frozen=True)
class ConsulNode:
    id: str
    address: str
    port: int
    tags: list[str]


@dataclass(frozen=True)
class ConsulNodes(_BackendBody):
    """NETWORKING-022: the passing instances."""

    service: str
    datacenter: str | None
    consul_index: int
    nodes: list[ConsulNode]

    rows = {"nodes": ConsulNode}


@dataclass(frozen=True)
class EtcdNode:
    id: str
    address: str
    lease_id: int


@dataclass(frozen=True)
class EtcdNodes(_BackendBody):
    """NETWORKING-023."""

    nodes: list[EtcdNode]
    revision: int

    rows = {"nodes": EtcdNode}


@dataclass(frozen=True)
class CloudInstance:
    instance_id: str
    private_ip: str
    az: str | None


@dataclass(frozen=True)
class CloudNodes(_BackendBody):
    """NETWORKING-024."""

    provider: str
    region: str
    instances: list[CloudInstance]

    rows = {"instances": CloudInstance}


@dataclass(frozen=True)
class ConsulRegistered:
    registered: bool
    service_id: str
    consul_index: int


@dataclass(frozen=True)
class ConsulDeregistered:
    deregistered: bool
    service_id: str
