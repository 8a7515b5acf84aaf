"""The node: the composition root of one cluster member.

Why here and nowhere else: a service is an adapter for one subsystem, written
against the transport verbs of ``Host`` (``rustyray.transport.api``). Which
services a node runs, in which order, and what each needs from the others (the
balancer's load gate for routing, the pool's request channel for the mesh, the
membership view for health and anti-entropy) is decided in this file only, by
plain constructor arguments. No service looks another up, none patches the mesh,
and none imports this module.

``Node`` is a ``Mesh`` (listeners, peers, dispatch; ``rustyray.transport.mesh``)
with the services wired on it. It never imports ``ray``: the Ray actor in
``rustyray.ray_edge`` wraps it, and tests run several nodes in one event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Collection
from typing import Any

from rustyray.api_binding import invoke, to_wire
from rustyray.config import NodeConfig
from rustyray.errors import not_found
from rustyray.transport.mesh import (
    DialNotAllowed,
    Mesh,
    NodeStats,
    Peer,
    RequestContext,
    RequestFailed,
    percentile,
)

__all__ = ["SERVICE_NAMES", "DialNotAllowed", "Node", "NodeStats", "Peer", "RequestContext", "RequestFailed",
           "percentile"]

log = logging.getLogger(__name__)

SERVICE_NAMES: tuple[str, ...] = ("transport", "security", "discovery", "membership", "autodiscovery", "pool",
                                  "loadbalancer", "routing", "health", "manager")
"""Every service a node runs, in start order (stopped in reverse)."""


class Node(Mesh):
    """One cluster member: the mesh plus the services wired onto it (see the module docstring)."""

    def __init__(self, config: NodeConfig, *, services: Collection[str] | None = None,
                 rng: random.Random | None = None) -> None:
        from rustyray.security.tls_adapter import ClusterTls

        super().__init__(config, tls=ClusterTls(config.certs_dir, config.node_id), rng=rng)
        wanted = SERVICE_NAMES if services is None else tuple(services)
        unknown = sorted(set(wanted) - set(SERVICE_NAMES))
        if unknown:
            raise ValueError(f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_NAMES)}")
        self._wanted = frozenset(wanted)
        self.services: dict[str, Any] = {}
        """The running services by name: read by the management API (``call_api``) and tests."""
        self.settings: Any = None
        """The cluster-wide settings channel (``rustyray.settings``) the pool, balancer and security share."""

    # ------------------------------------------------------------------ wiring
    def _build(self) -> None:
        """Construct the wanted services in start order and connect each to what it needs."""
        want = self._wanted
        s = self.services
        if "transport" in want:
            from rustyray.transport.service import TransportService

            s["transport"] = TransportService(self)
        settings = None
        if want & {"security", "pool", "loadbalancer"}:
            from rustyray.settings.channel_adapter import SettingsChannel

            settings = SettingsChannel(self)
            settings.load()
            self.settings = settings
            self.peer_listeners.append(settings.on_peer_event)
        if "security" in want:
            from rustyray.security.service import SecurityService

            s["security"] = security = SecurityService(self, settings=settings)
            self.admission_filters.append(security.admit)
            self.quic_server_hooks.append(security.watch_quic)
            if security.config.encrypt_payloads:
                self.extra_capabilities.append("encryption")
                self.handshake_hooks.append(security.encrypt_connection)
        if "discovery" in want:
            from rustyray.discovery.service import DiscoveryService

            s["discovery"] = DiscoveryService(self)
        membership = None
        if "membership" in want:
            from rustyray.membership.service import MembershipService

            s["membership"] = membership = MembershipService(self)
            self.members_provider = membership.live_members
            self.peer_listeners.append(membership.on_peer_event)
        if "autodiscovery" in want:
            from rustyray.autodiscovery.service import AutodiscoveryService

            s["autodiscovery"] = auto = AutodiscoveryService(self, membership=membership)
            self.peer_listeners.append(auto.on_peer_event)
        pool = None
        if "pool" in want:
            from rustyray.pool.mux_adapter import MUX_CAPABILITY
            from rustyray.pool.service import PoolService

            s["pool"] = pool = PoolService(self, settings=settings)
            self.request_channel = pool.request_on
            if "multiplexing" in self.config.transport.capabilities:
                self.extra_capabilities.append(MUX_CAPABILITY)
                self.handshake_hooks.append(pool.on_handshake)
            self.peer_listeners.append(pool.on_peer_event)
        balancer = None
        if "loadbalancer" in want:
            from rustyray.loadbalancer.service import LoadBalancerService

            s["loadbalancer"] = balancer = LoadBalancerService(self, pool=pool, settings=settings)
        routing = None
        if "routing" in want:
            from rustyray.routing.service import RoutingService

            s["routing"] = routing = RoutingService(self, balancer=balancer)
        health = None
        if "health" in want:
            from rustyray.health.service import HealthService

            s["health"] = health = HealthService(self, membership=membership, routing=routing)
            self.peer_listeners.append(health.on_peer_event)
            self.heartbeat_targets = health.heartbeat_targets
        if "manager" in want:
            from rustyray.manager.service import COMPONENTS, ManagerService

            probes = {seed_name: getattr(s[name], "health", None) for seed_name, name in COMPONENTS if name in s}
            s["manager"] = ManagerService(self, probes=probes, routing=routing, sample_sources={
                "membership": membership, "health": health, "balancer": balancer, "pool": pool})

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Bind listeners, build and start the services, then dial seeds and start the loops."""
        await self.open()
        self._build()
        for name, svc in self.services.items():
            start = getattr(svc, "start", None)
            if start is not None:
                try:
                    await start()
                except Exception:
                    log.exception("service %s failed to start on %s", name, self.node_id)
                    raise
        self.begin()

    async def stop(self, *, graceful: bool = True) -> None:
        """Stop the services (reverse order), then say goodbye and close the mesh."""
        if not self.running:
            return
        self.stopping = True
        for name, svc in reversed(list(self.services.items())):
            stop = getattr(svc, "stop", None)
            if stop is not None:
                try:
                    await asyncio.wait_for(stop(), 5)
                except Exception:
                    log.exception("service %s failed to stop", name)
        await self.close(graceful=graceful)

    # ------------------------------------------------------------------ management API
    def metric_samples(self) -> list[dict[str, Any]]:
        """The labelled metric samples of this node (empty without the manager service)."""
        manager = self.services.get("manager")
        return manager.samples() if manager is not None else []

    async def call_api(self, service: str, method: str, kwargs: dict[str, Any]) -> Any:
        """Invoke one management operation: the one entry point the management API uses.

        The operation is ``method`` of the service's API facade (``svc.api``, a class in the
        subsystem's ``api.py``), or ``api_<method>`` of a service without one. The arguments are
        bound before the call, so a wrong or missing argument is the caller's error (422 naming it)
        and a ``TypeError`` raised inside the operation stays a bug (500).
        """
        svc = self.services.get(service)
        if svc is None:
            raise not_found(f"service {service!r} is not running on {self.node_id}")
        fn = None
        facade = getattr(svc, "api", None)
        if facade is not None and not method.startswith("_") and callable(getattr(type(facade), method, None)):
            fn = getattr(facade, method)
        if fn is None:
            fn = getattr(svc, f"api_{method}", None)
        if fn is None:
            raise not_found(f"service {service!r} has no operation {method!r}")
        result = invoke(fn, kwargs)
        if inspect.isawaitable(result):
            result = await result
        return to_wire(result)
