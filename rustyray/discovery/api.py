"""The discovery management operations (NETWORKING-020..024 and the status page): ``DiscoveryApi``.

Why a facade: input validation and the API contract (operation names, arguments, response bodies,
which ``DomainError`` answers what) live apart from the I/O adapter, so the service is left with the
loops and the backends' lifecycles. ``Node.call_api("discovery", op, kwargs)`` calls ``svc.api.<op>``;
the requests and results are the dataclasses of :mod:`rustyray.discovery.api_types`.

The ``*_nodes`` operations run one live ``discover()`` through the service (recorded in its status,
joined if the backend is joined) and return the backend's body, read into its result dataclass; a
:class:`~rustyray.discovery.errors.DiscoveryError` becomes a ``DomainError`` of its ``kind``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from rustyray.discovery.api_types import (
    CLOUD_PROVIDERS,
    CloudNodes,
    CloudNodesRequest,
    ConsulDeregistered,
    ConsulDeregisterRequest,
    ConsulNodes,
    ConsulRegistered,
    ConsulRegisterRequest,
    DiscoveryStatus,
    DnsNodes,
    EtcdNodes,
    KubernetesNodes,
    is_host,
)
from rustyray.discovery.errors import (
    BackendMisconfiguredError,
    BackendNotConfiguredError,
    DiscoveryError,
    UnknownBackendError,
)
from rustyray.errors import DomainError, unprocessable

if TYPE_CHECKING:
    from rustyray.discovery.service import DiscoveryService

__all__ = ["CLOUD_PROVIDERS", "DiscoveryApi", "api_error", "is_host"]

_Body = TypeVar("_Body")


class DiscoveryApi:
    """The discovery operations of one node, over its :class:`DiscoveryService`."""

    def __init__(self, service: DiscoveryService) -> None:
        self._svc = service

    def status(self) -> DiscoveryStatus:
        """Every backend (configured or not, with the hint), what it found and when, and what was joined."""
        svc = self._svc
        joined = svc.joined_backends()
        backends: dict[str, dict[str, Any]] = {}
        for name, info in svc.registry.status().items():
            backends[name] = {**info, "joined": name in joined, "registration": self._registration_view(name),
                              **svc.core.state[name].view()}
        status, detail = svc.health()
        return DiscoveryStatus(
            node=svc.node.node_id,
            health=status,
            detail=detail,
            configured=svc.registry.configured(),
            joined_backends=joined,
            refresh_interval_s=svc.config.refresh_interval_s,
            register=svc.config.register,
            watch=svc.config.watch,
            config_error=svc.config_error,
            backends=backends,
            learned_peers=svc.core.learned_peers(svc.node),
        )

    async def refresh(self) -> DiscoveryStatus:
        """Run one round on every joined backend now (errors are recorded, not raised), then the status."""
        for name in self._svc.joined_backends():
            with contextlib.suppress(DiscoveryError):
                await self._svc.discover(name)
        return self.status()

    async def dns_nodes(self) -> DnsNodes:
        """NETWORKING-020. The answer is cached for its DNS TTL (bounded by ``min_refresh_s`` / ``max_refresh_s``)."""
        return await self._nodes("dns", DnsNodes.from_body)

    async def kubernetes_nodes(self) -> KubernetesNodes:
        """NETWORKING-021: every pod is listed, but only ready ones become candidates."""
        return await self._nodes("kubernetes", KubernetesNodes.from_body)

    async def consul_nodes(self) -> ConsulNodes:
        """NETWORKING-022: only passing instances, so a node whose TTL check lapsed drops out."""
        return await self._nodes("consul", ConsulNodes.from_body)

    async def etcd_nodes(self) -> EtcdNodes:
        """NETWORKING-023: the lease id shows which registrations expire together."""
        return await self._nodes("etcd", EtcdNodes.from_body)

    async def cloud_nodes(self, req: CloudNodesRequest) -> CloudNodes:
        """NETWORKING-024: the provider name is case-insensitive (``AWS`` is ``aws``)."""
        return await self._nodes(req.provider.lower(), CloudNodes.from_body)

    async def consul_register(self, req: ConsulRegisterRequest) -> ConsulRegistered:
        """NETWORKING-022: register a node in Consul; this node keeps its TTL check passing while it runs."""
        try:
            backend: Any = self._svc.registry.get("consul")
        except DiscoveryError as exc:
            raise api_error("consul", exc) from exc
        configured = backend.config.service_name
        if req.service_name is not None and req.service_name != configured:
            raise unprocessable(f"service_name must be the configured Consul service {configured!r} "
                                f"([discovery.consul] service_name), got {req.service_name!r}", "service_name")
        try:
            body = await backend.register(req.node_id, req.address, req.port, tags=list(req.tags or ()))
        except DiscoveryError as exc:
            raise api_error("consul", exc) from exc
        return ConsulRegistered(**body)

    async def consul_deregister(self, req: ConsulDeregisterRequest) -> ConsulDeregistered:
        """Remove ``<service>-<node_id>`` from the Consul agent (and stop reporting it as registered here)."""
        try:
            backend: Any = self._svc.registry.get("consul")
            body = await backend.deregister(req.node_id)
        except DiscoveryError as exc:
            raise api_error("consul", exc) from exc
        if req.node_id == self._svc.node.node_id:
            self._svc.core.deregistered("consul")
        return ConsulDeregistered(**body)

    async def _nodes(self, name: str, read: Callable[[Mapping[str, Any]], _Body]) -> _Body:
        try:
            result = await self._svc.discover(name)
        except DiscoveryError as exc:
            raise api_error(name, exc) from exc
        return read(result.as_response())

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
