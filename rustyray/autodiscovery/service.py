"""Autodiscovery service: mDNS, UDP broadcast, beacons, Serf and anti-entropy on a live node.

Backs NETWORKING-026 to 030. This is the wiring: it reads the node's ``[autodiscovery.*]``
TOML tables, builds one adapter per protocol and hands each its collaborators, registers the
frame handlers, and starts, stops and probes them. The operations are ``api.AutodiscoveryApi``.

=========================  ==========================  ==========================================
protocol                   adapter (I/O)               sans-I/O core
=========================  ==========================  ==========================================
mDNS (026)                 ``mdns_adapter``, ``mdns``  ``mdns_core``, ``peer_learning``
broadcast, beacons (027-8) ``broadcast_adapter``,      ``broadcast_core``, ``beacon``,
                           ``broadcast``,              ``peer_learning``
                           ``beacon_runner``
Serf (029)                 ``serf_adapter``            ``serf_node``, ``serf``
anti-entropy (030)         ``anti_entropy_adapter``    ``anti_entropy_node``, ``anti_entropy``
=========================  ==========================  ==========================================

Network safety. mDNS, broadcast and beacons are off unless ``[autodiscovery.mdns]`` /
``[autodiscovery.broadcast]`` / ``[autodiscovery.beacon]`` say ``enabled = true``, and even then
they bind loopback only (``127.0.0.1``, broadcasts to ``127.255.255.255``) unless the same
tables name other interfaces or addresses; ``api.py`` refuses other broadcast addresses.

Serf and anti-entropy are on by default: their traffic is node messages over the node's own
mTLS connections, never new sockets.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rustyray.autodiscovery.anti_entropy_adapter import AntiEntropyAdapter, PeerView
from rustyray.autodiscovery.anti_entropy_node import AESyncStep, AESyncStepReply, AntiEntropyNode
from rustyray.autodiscovery.api import AutodiscoveryApi
from rustyray.autodiscovery.broadcast_adapter import BroadcastAdapter
from rustyray.autodiscovery.config import AutodiscoveryConfig
from rustyray.autodiscovery.mdns_adapter import MdnsAdapter
from rustyray.autodiscovery.memberlist_adapter import MemberlistAgent
from rustyray.autodiscovery.memberlist_core import Deliver, MemberlistConfig, QueryIn, QueryResponseIn
from rustyray.autodiscovery.memberlist_wire import Keyring
from rustyray.autodiscovery.serf import (
    SerfCore,
    SerfMemberUpdate,
    SerfQuery,
    SerfQueryResponse,
    SerfUserEvent,
)
from rustyray.autodiscovery.serf_adapter import SerfAdapter
from rustyray.autodiscovery.serf_node import SerfNode
from rustyray.config_loader import build
from rustyray.protocol.addresses import parse_address

if TYPE_CHECKING:
    from rustyray.autodiscovery.broadcast import BroadcastDiscovery
    from rustyray.autodiscovery.mdns import MdnsDiscovery
    from rustyray.transport.api import Host

__all__ = ["AESyncStep", "AESyncStepReply", "AutodiscoveryService"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- config


# ---------------------------------------------------------------- service


class AutodiscoveryService:
    """Zero-config discovery and gossip extensions for one node (see the module docstring)."""

    def __init__(self, node: Host, *, membership: Any | None = None) -> None:
        self.node = node
        self.membership = membership
        """The membership service whose view anti-entropy synchronises (None: the peer table)."""
        self.rng = random.Random(node.rng.getrandbits(64))
        self.memberlist: MemberlistAgent | None = None
        """The memberlist (real Serf) member, with ``[autodiscovery.serf] wire = "serf"``."""
        self.errors: dict[str, str] = {}
        """Protocol name -> why it failed to start (the health probe and the API report it)."""
        self._load_config()
        self.mdns_adapter = MdnsAdapter(node, self.mdns_config, self.errors)
        bc, serf_cfg, ae = self.settings.broadcast, self.settings.serf, self.settings.anti_entropy
        self.broadcast_adapter = BroadcastAdapter(
            node, enabled=bc.enabled, settings=bc.core_kwargs(), secret=bc.secret, secret_file=bc.secret_file,
            beacon=self.beacon_config, errors=self.errors)
        serf = SerfCore(serf_cfg.layer, node_name=node.node_id, addr=node.advertise_host, port=node.tcp_port,
                        rng=random.Random(self.rng.getrandbits(64)), tags=dict(serf_cfg.tags))
        self.serf_adapter = SerfAdapter(node, SerfNode(
            serf, enabled=serf_cfg.enabled, retransmit_mult=serf_cfg.retransmit_mult,
            recent_events=serf_cfg.recent_events, rng=self.rng))
        self.ae_adapter = AntiEntropyAdapter(
            node, AntiEntropyNode(ae.tree, node_id=node.node_id, enabled=ae.enabled, interval_s=ae.interval_s,
                                  rng=self.rng),
            membership=membership, request_timeout_s=ae.request_timeout_s)

        for msg_type in (SerfUserEvent, SerfQuery, SerfQueryResponse, SerfMemberUpdate):
            node.on(msg_type, self.serf_adapter.on_message)
        node.on(AESyncStep, self.ae_adapter.on_step)
        self.api = AutodiscoveryApi(self)

    # ------------------------------------------------------------ configuration
    def _load_config(self) -> None:
        """The typed ``[autodiscovery]`` table, by the one config loader.

        Read here from the node's raw table rather than ``NodeConfig.cluster``: ``launch`` refuses a bad
        file before any actor starts, but a node built by hand with a bad table must fail its start naming
        the key, not run with the defaults (``config._SELF_REPORTING``).
        """
        cfg = self.node.config
        self.settings = settings = build(AutodiscoveryConfig, cfg.section("autodiscovery"), "autodiscovery")
        self.mdns_config = settings.mdns.core(cfg.cluster_name)
        broadcast = settings.broadcast
        self.allowed_broadcast = frozenset(str(ipaddress.IPv4Address(a)) for a in broadcast.allowed_broadcast_addresses)
        self.broadcast_enabled = broadcast.enabled
        self.beacon_config = settings.beacon

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.serf_adapter.start(dict(self.settings.serf.tags))
        if self.settings.serf.wire == "serf":
            await self._start_memberlist()
        self.mdns_adapter.start()
        await self.broadcast_adapter.start()
        self.ae_adapter.start()

    async def _start_memberlist(self) -> None:
        """The memberlist member real Serf agents talk to; a join that fails is logged, not fatal."""
        opts = self.settings.serf
        ring_file = Path(opts.keyring_file).expanduser() if opts.keyring_file else None
        try:
            keyring = Keyring.from_base64(json.loads(ring_file.read_text())) if ring_file else None
        except (OSError, ValueError) as exc:
            self.errors["serf"] = f"keyring_file {ring_file}: {exc}"
            return
        self.memberlist = MemberlistAgent(self.node.node_id, opts.bind, opts.port, dict(opts.tags),
                                          on_event=self._foreign_event, on_query=self._foreign_query,
                                          on_query_response=self._foreign_response, keyring=keyring,
                                          keyring_file=ring_file,
                                          config=MemberlistConfig(compression=opts.compression, label=opts.label))
        try:
            await self.memberlist.start()
        except OSError as exc:
            self.errors["serf"] = f"memberlist member on {opts.bind}:{opts.port}: {exc}"
            self.memberlist = None
            return
        agent, serf = self.memberlist, self.serf_adapter
        serf.foreign_responder = lambda send: agent.answer(send.addr, send.port, send.response.ltime,
                                                           send.response.id, send.response.node, send.response.payload,
                                                           send.response.ack)
        serf.on_query_started = agent.query
        serf.foreign_members = agent.live_agents
        for address in opts.join:
            try:
                await self.join_serf(str(address))
            except (OSError, TimeoutError, ValueError) as exc:
                log.warning("%s could not join Serf agent %s: %s", self.node.node_id, address, exc)

    def _foreign_event(self, event: Deliver) -> None:
        self.serf_adapter.on_foreign(SerfUserEvent(ltime=event.ltime, name=event.name, payload=event.payload,
                                                   coalesce=event.coalesce))

    def _foreign_query(self, q: QueryIn) -> None:
        """An agent's query: our Serf layer answers it (and gossips it to the mesh, whose nodes answer too)."""
        self.serf_adapter.on_foreign(SerfQuery(ltime=q.ltime, id=q.id, origin="", addr=q.host, port=q.port,
                                               timeout_s=q.timeout_s or 5.0, name=q.name, payload=q.payload,
                                               filter_nodes=q.filter_nodes, filter_tags=q.filter_tags,
                                               request_ack=q.ack))

    def _foreign_response(self, r: QueryResponseIn) -> None:
        self.serf_adapter.on_foreign(SerfQueryResponse(ltime=r.ltime, id=r.id, node=r.node, ack=r.ack,
                                                       payload=r.payload))

    async def join_serf(self, address: str) -> int:
        """Push-pull with the Serf agent at ``address`` (host:port); the members learned."""
        assert self.memberlist is not None
        host, port = parse_address(address, field="address")
        refusal = self.node.dial_policy.refusal(host)
        if refusal is not None:
            raise PermissionError(refusal)
        return await self.memberlist.join(host, port)

    async def stop(self) -> None:
        if self.memberlist is not None:
            await self.memberlist.stop(leave=True)
        self.serf_adapter.stop()
        await self.broadcast_adapter.stop()
        await self.mdns_adapter.stop()

    def health(self) -> tuple[str, str]:
        parts = []
        s = self.settings
        for name, on in (("mdns", s.mdns.enabled), ("broadcast", s.broadcast.enabled), ("beacon", s.beacon.enabled),
                         ("serf", s.serf.enabled), ("anti_entropy", s.anti_entropy.enabled)):
            if name in self.errors:
                parts.append(f"{name} failed: {self.errors[name]}")
            else:
                parts.append(f"{name} {'on' if on else 'off'}")
        status = "degraded" if self.errors else "healthy"
        return status, "; ".join(parts)

    def on_peer_event(self, event: str, peer_id: str) -> None:
        self.ae_adapter.on_peer_event(event, peer_id)
        self.serf_adapter.on_peer_event(event, peer_id)

    # ------------------------------------------------------------ what tests and embedders reach
    @property
    def mdns(self) -> MdnsDiscovery | None:
        return self.mdns_adapter.discovery

    @property
    def broadcast(self) -> BroadcastDiscovery | None:
        return self.broadcast_adapter.discovery

    @property
    def beacon_expired(self) -> int:
        return self.broadcast_adapter.expired

    @property
    def peer_view(self) -> PeerView:
        return self.ae_adapter.peer_view

    @property
    def ae_source(self) -> Any | None:
        """Replaces the membership view anti-entropy synchronises (see ``AntiEntropyAdapter.source``)."""
        return self.ae_adapter.source

    @ae_source.setter
    def ae_source(self, source: Any | None) -> None:
        self.ae_adapter.source = source

    @property
    def ae_stats(self) -> dict[str, int]:
        return self.ae_adapter.core.stats
