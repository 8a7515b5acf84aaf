"""mDNS discovery on a node (NETWORKING-026): ``MdnsDiscovery`` wired to the node's peer table.

``mdns.py`` speaks zeroconf; this adapter gives it the node's identity and ports, tags the
cluster name with the CA fingerprint (``mdns_core.cluster_tag``, reading the CA file here), and
hands every discovered node to a ``PeerLearner``, learning the peers it accepts. A failure to
start is recorded in the service's ``errors`` (the health probe and the API report it), not raised.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from rustyray._aio import cancel_and_wait
from rustyray.autodiscovery.errors import AutodiscoveryError
from rustyray.autodiscovery.mdns_core import DiscoveredNode, MdnsConfig, cluster_tag
from rustyray.autodiscovery.peer_learning import PeerLearner

if TYPE_CHECKING:
    import asyncio

    from rustyray.autodiscovery.mdns import MdnsDiscovery
    from rustyray.transport.api import Host

log = logging.getLogger(__name__)

__all__ = ["MdnsAdapter"]


class MdnsAdapter:
    """Registers and browses when ``config.enabled``; ``discovery`` is the running ``MdnsDiscovery``."""

    def __init__(self, node: Host, config: MdnsConfig, errors: dict[str, str]) -> None:
        self.node = node
        self.config = config
        """As loaded; once started, with the CA-tagged cluster name."""
        self.errors = errors
        self.discovery: MdnsDiscovery | None = None
        self.learner = PeerLearner(node.node_id)
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        """Registration probes take a while: they run in the background."""
        if self.config.enabled:
            self._task = self.node.spawn(self._start(), name="autodiscovery mdns")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task], 2.0, owner="mdns")
        if self.discovery is not None:
            with contextlib.suppress(Exception):  # best effort: the node is going away
                await self.discovery.stop()

    def _cluster_tag(self) -> str:
        cfg = self.node.config
        try:
            ca: bytes | None = (cfg.certs_dir / "ca.pem").read_bytes()
        except OSError:
            ca = None
        return cluster_tag(cfg.cluster_name, ca)

    async def _start(self) -> None:
        from rustyray.autodiscovery.mdns import MdnsDiscovery

        node = self.node
        self.config = dataclasses.replace(self.config, cluster_name=self._cluster_tag())
        ports = {"tcp": node.tcp_port}
        if node.quic_port:
            ports["quic"] = node.quic_port
        self.discovery = MdnsDiscovery(self.config, node_id=node.node_id, port=node.tcp_port, ports=ports,
                                       on_change=self._on_change)
        try:
            await self.discovery.start()
        except AutodiscoveryError as exc:
            self.errors["mdns"] = str(exc)
            log.warning("mDNS did not start on %s: %s", node.node_id, exc)

    def _on_change(self, found: DiscoveredNode, added: bool) -> None:
        if not added:
            return
        tcp, quic = found.transport_addresses()
        learn = self.learner.offer(found.node_id, tcp, quic, known=self.node.peers)
        if learn is not None:
            log.info("%s learned %s at %s via mdns", self.node.node_id, learn.node_id, learn.tcp_address)
            self.node.learn_peer(learn.node_id, learn.tcp_address, learn.quic_address)

    @property
    def registered(self) -> bool:
        return self.discovery is not None and self.discovery.running

    def discovered(self) -> list[dict[str, Any]]:
        """Discovered nodes with their ports and whether the node already knows them as peers."""
        if self.discovery is None:
            return []
        return [{**d.as_dict(), "ports": dict(d.ports), "known_peer": d.node_id in self.node.peers}
                for d in self.discovery.registry.nodes()]
