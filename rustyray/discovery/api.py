"""The discovery management operations (NETWORKING-020..024 and the status page): ``DiscoveryApi``.

Why a facade: input validation and the API contract (operation names, arguments, response bodies,
which ``DomainError`` answers what) live apart from the I/O adapter, so the service is left with the
loops and the backends' lifecycles. ``Node.call_api("discovery", op, kwargs)`` calls ``svc.api.<op>``.

The ``*_nodes`` operations run one live ``discover()`` through the service (recorded in its status,
joined if the backend is joined) and return the backend's body unchanged; a
:class:`~rustyray.discovery.errors.DiscoveryError` becomes a ``DomainError`` of its ``kind``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from typing import TYPE_CHECKING, Any

from rustyray.discovery.errors import (
    BackendMisconfiguredError,
    BackendNotConfiguredError,
    DiscoveryError,
    UnknownBackendError,
)
from rustyray.errors import DomainError, not_found, unprocessable

if TYPE_CHECKING:
    from rustyray.discovery.service import DiscoveryService

CLOUD_PROVIDERS = ("aws", "azure", "gcp")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


class DiscoveryApi:
    """The discovery operations of one node, over its :class:`DiscoveryService`."""

    def __init__(self, service: DiscoveryService) -> None:
        self._svc = service

    def status(self) -> dict[str, Any]:
        """Every backend (configured or not, with the hint), what it found and when, and what was joined."""
        svc = self._svc
        joined = svc.joined_backends()
        backends: dict[str, Any] = {}
        for name, info in svc.registry.status().items():
            backends[name] = {**info, "joined": name in joined, "registration": self._registration_view(name),
                              **svc.core.state[name].view()}
        status, detail = svc.health()
        return {
            "node": svc.node.node_id,
            "health": status,
            "detail": detail,
            "configured": svc.registry.configured(),
            "joined_backends": joined,
            "refresh_interval_s": svc.config.refresh_interval_s,
            "register": svc.config.register,
            "watch": svc.config.watch,
            "config_error": svc.config_error,
            "backends": backends,
            "learned_peers": svc.core.learned_peers(svc.node),
        }

    async def refresh(self) -> dict[str, Any]:
        """Run one round on every joined backend now (errors are recorded, not raised), then the status."""
        for name in self._svc.joined_backends():
            with contextlib.suppress(DiscoveryError):
                await self._svc.discover(name)
        return self.status()

    async def dns_nodes(self) -> dict[str, Any]:
        """NETWORKING-020: ``{"discovered_nodes": [{id, address, port}], "discovery_method", "ttl_seconds"}``.

        The answer is cached for its DNS TTL (bounded by ``min_refresh_s`` / ``max_refresh_s``).
        """
        return await self._nodes("dns")

    async def kubernetes_nodes(self) -> dict[str, Any]:
        """NETWORKING-021: ``{"namespace", "service", "nodes": [{pod, ip, ready}]}``."""
        return await self._nodes("kubernetes")

    async def consul_nodes(self) -> dict[str, Any]:
        """NETWORKING-022: the passing instances ``{"service", "datacenter", "consul_index", "nodes"}``."""
        return await self._nodes("consul")

    async def etcd_nodes(self) -> dict[str, Any]:
        """NETWORKING-023: ``{"nodes": [{id, address, lease_id}], "revision"}``."""
        return await self._nodes("etcd")

    async def cloud_nodes(self, provider: str) -> dict[str, Any]:
        """NETWORKING-024: ``{"provider", "region", "instances": [{instance_id, private_ip, az}]}``."""
        name = provider.lower()
        if name not in CLOUD_PROVIDERS:
            raise not_found(f"unknown cloud provider {provider!r}; known: {', '.join(CLOUD_PROVIDERS)}",
                           "provider")
        return await self._nodes(name)

    async def consul_register(self, node_id: str, address: str, port: int, tags: list[str] | None = None,
                              service_name: str | None = None) -> dict[str, Any]:
        """NETWORKING-022: register a node in Consul; this node keeps its TTL check passing while it runs."""
        if not isinstance(node_id, str) or not node_id.strip() or "/" in node_id:
            raise unprocessable("node_id must be a non-empty string without '/'", "node_id")
        if not is_host(address):
            raise unprocessable(f"address must be a host name or IP address without a port, got {address!r}",
                           "address")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise unprocessable("port must be between 1 and 65535", "port")
        try:
            backend: Any = self._svc.registry.get("consul")
        except DiscoveryError as exc:
            raise api_error("consul", exc) from exc
        configured = backend.config.service_name
        if service_name is not None and service_name != configured:
            raise unprocessable(f"service_name must be the configured Consul service {configured!r} "
                                f"([discovery.consul] service_name), got {service_name!r}", "service_name")
        try:
            return await backend.register(node_id, address, port, tags=list(tags or ()))
        except DiscoveryError as exc:
            raise api_error("consul", exc) from exc

    async def consul_deregister(self, node_id: str) -> dict[str, Any]:
        """Remove ``<service>-<node_id>`` from the Consul agent."""
        try:
            backend: Any = self._svc.registry.get("consul")
            result = await backend.deregister(node_id)
        except DiscoveryError as exc:
            raise api_error("consul", exc) from exc
        if node_id == self._svc.node.node_id:
            self._svc.core.deregistered("consul")
        return result

    async def _nodes(self, name: str) -> dict[str, Any]:
        try:
            result = await self._svc.discover(name)
        except DiscoveryError as exc:
            raise api_error(name, exc) from exc
        return result.as_response()

    def _registration_view(self, name: str) -> dict[str, Any] | None:
        reg = self._svc.core.state[name].registration
        if reg is None:
            return None
        out = dict(reg)
        if name == "etcd":  # the lease id changes when an expired lease is re-granted
            with contextlib.suppress(DiscoveryError):
                live = self._svc.registry.get("etcd").registration(self._svc.node.node_id)  # type: ignore[attr-defined]
                if live is not None:
                    out["lease_id"] = live.lease_id
                    out["keepalives"] = live.keepalives
        return out


def api_error(name: str, exc: DiscoveryError) -> DomainError:
    """The error the API answers with: configuration errors carry the hint, failures the reason."""
    if isinstance(exc, BackendNotConfiguredError | BackendMisconfiguredError | UnknownBackendError):
        return DomainError(exc.kind, str(exc))
    return DomainError(exc.kind, f"discovery backend {name!r} failed: {exc}")


def is_host(address: object) -> bool:
    """True for an IP address or a DNS host name (no port, no spaces)."""
    if not isinstance(address, str):
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return bool(_HOSTNAME.match(address))
    return True
