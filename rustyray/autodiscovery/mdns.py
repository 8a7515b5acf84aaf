"""Asyncio adapter for mDNS discovery (NETWORKING-026) on python-zeroconf's async API.

``MdnsDiscovery.start()`` registers this node's ``_rustydb._tcp.local.`` instance with an
``AsyncZeroconf`` bound to the configured IPv4 interfaces, then runs an ``AsyncServiceBrowser``;
each Added/Updated instance is resolved with ``AsyncServiceInfo.async_request`` and fed to the
sans-I/O ``MdnsRegistry`` (``mdns_core``), each Removed one is dropped. Nothing happens while
``config.enabled`` is False.

With ``interfaces=("127.0.0.1",)`` zeroconf sets IP_MULTICAST_IF to loopback, so queries and
answers never leave the host; Linux loops multicast back to every socket in the group.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from typing import Any

from zeroconf import IPVersion, ServiceStateChange, Zeroconf, get_all_addresses
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from rustyray.autodiscovery.errors import MdnsError
from rustyray.autodiscovery.mdns_core import (
    DiscoveredNode,
    MdnsConfig,
    MdnsRegistry,
    build_txt,
    instance_name,
    parse_service,
)

__all__ = ["MdnsDiscovery"]


class MdnsDiscovery:
    """Registers this node and keeps the list of peers found by mDNS browsing.

    ``port`` is the primary (SRV) port, normally the TCP transport; ``ports`` adds named ports
    to TXT (``{"tcp": 7000, "quic": 7001}`` becomes ``tcp_port=7000 quic_port=7001``).
    ``on_change(node, added)`` is called when a peer appears/updates (True) or leaves (False).
    """

    def __init__(
        self,
        config: MdnsConfig,
        *,
        node_id: str,
        port: int,
        ports: Mapping[str, int] | None = None,
        on_change: Callable[[DiscoveredNode, bool], None] | None = None,
    ) -> None:
        config.validate()
        self.config = config
        self.node_id = node_id
        self.port = port
        self.ports = dict(ports or {})
        self.registry = MdnsRegistry(node_id, config.cluster_name)
        self._on_change = on_change
        self._azc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._azc is not None

    def _addresses(self) -> list[str]:
        cfg = self.config
        if cfg.advertise_addresses is not None:
            return list(cfg.advertise_addresses)
        if cfg.interfaces is not None:
            return list(cfg.interfaces)
        return [a for a in get_all_addresses() if not a.startswith("127.")] or ["127.0.0.1"]

    async def start(self) -> None:
        """Register and browse; a no-op when disabled or already running."""
        if not self.config.enabled or self._azc is not None:
            return
        cfg = self.config
        interfaces: Any = list(cfg.interfaces) if cfg.interfaces is not None else None
        try:
            azc = (
                AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
                if interfaces is not None
                else AsyncZeroconf(ip_version=IPVersion.V4Only)
            )
        except OSError as exc:
            raise MdnsError(f"cannot open mDNS sockets: {exc}") from exc
        name = instance_name(self.node_id, cfg.service_type)
        self._info = AsyncServiceInfo(
            cfg.service_type,
            name,
            addresses=[socket.inet_aton(a) for a in self._addresses()],
            port=self.port,
            properties=build_txt(self.node_id, self.ports, cfg.cluster_name),
            server=name.removesuffix(cfg.service_type) + "local.",
        )
        try:
            # The call returns a task that completes once probing and announcing are done.
            await (await azc.async_register_service(self._info, allow_name_change=True))
        except Exception as exc:
            await azc.async_close()
            raise MdnsError(f"cannot register {name}: {exc}") from exc
        self._azc = azc
        self._browser = AsyncServiceBrowser(azc.zeroconf, [cfg.service_type], handlers=[self._on_state])

    async def stop(self) -> None:
        """Unregister (sends goodbye packets), stop browsing, close sockets."""
        if self._azc is None:
            return
        if self._browser is not None:
            await self._browser.async_cancel()
        for t in list(self._tasks):
            t.cancel()
        if self._info is not None:
            await (await self._azc.async_unregister_service(self._info))  # sends goodbye packets
        await self._azc.async_close()
        self._azc = self._browser = self._info = None

    def discovered(self) -> list[dict[str, object]]:
        return self.registry.discovered()

    def status(self) -> dict[str, object]:
        """NETWORKING-026 response body."""
        return {
            "enabled": self.config.enabled,
            "service_type": self.config.short_type,
            "discovered_nodes": self.discovered(),
        }

    async def wait_for(self, node_id: str, timeout: float) -> DiscoveredNode:
        """Wait until ``node_id`` is discovered; raises ``TimeoutError``."""
        async with asyncio.timeout(timeout):
            while True:
                for n in self.registry.nodes():
                    if n.node_id == node_id:
                        return n
                self._changed.clear()
                await self._changed.wait()

    # -- zeroconf callbacks (run in the event loop thread)

    def _on_state(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            gone = self.registry.remove(name)
            if gone is not None:
                self._notify(gone, False)
            return
        task = asyncio.ensure_future(self._resolve(zeroconf, service_type, name))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve(self, zeroconf: Zeroconf, service_type: str, name: str) -> None:
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, self.config.resolve_timeout_ms):
            return
        node = parse_service(
            server=info.server,
            addresses=info.parsed_addresses(IPVersion.V4Only),
            port=info.port,
            properties=info.properties,
        )
        if node is not None and self.registry.update(name, node):
            self._notify(node, True)

    def _notify(self, node: DiscoveredNode, added: bool) -> None:
        self._changed.set()
        if self._on_change is not None:
            self._on_change(node, added)
