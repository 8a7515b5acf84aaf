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
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rustyray.autodiscovery.anti_entropy import AntiEntropyConfig
from rustyray.autodiscovery.anti_entropy_adapter import AntiEntropyAdapter, PeerView
from rustyray.autodiscovery.anti_entropy_node import AESyncStep, AESyncStepReply, AntiEntropyNode
from rustyray.autodiscovery.api import AutodiscoveryApi
from rustyray.autodiscovery.beacon import BeaconConfig
from rustyray.autodiscovery.broadcast_adapter import BroadcastAdapter
from rustyray.autodiscovery.broadcast_core import BroadcastConfig
from rustyray.autodiscovery.mdns_adapter import MdnsAdapter
from rustyray.autodiscovery.mdns_core import MdnsConfig
from rustyray.autodiscovery.memberlist_adapter import MemberlistAgent
from rustyray.autodiscovery.memberlist_core import Deliver, QueryIn, QueryResponseIn
from rustyray.autodiscovery.memberlist_wire import Keyring
from rustyray.autodiscovery.serf import (
    SerfConfig,
    SerfCore,
    SerfMemberUpdate,
    SerfQuery,
    SerfQueryResponse,
    SerfUserEvent,
)
from rustyray.autodiscovery.serf_adapter import SerfAdapter
from rustyray.autodiscovery.serf_node import SerfNode
from rustyray.protocol.addresses import parse_address

if TYPE_CHECKING:
    from rustyray.autodiscovery.broadcast import BroadcastDiscovery
    from rustyray.autodiscovery.mdns import MdnsDiscovery
    from rustyray.transport.api import Host

__all__ = ["AESyncStep", "AESyncStepReply", "AutodiscoveryService"]

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- config


def _split(table: dict[str, Any], where: str, own: dict[str, Any], core: type | None,
           skip: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate service-level keys (``own``: name -> default) from core-config keys.

    Unknown keys are errors naming the table, so a typo never silently leaves a feature off.
    """
    core_names = {f.name for f in fields(core)} - set(skip) if core is not None else set()
    mine = dict(own)
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key in own:
            mine[key] = value
        elif key in core_names:
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        else:
            known = ", ".join(sorted(set(own) | core_names))
            raise ValueError(f"[{where}] has no setting {key!r}; known: {known}")
    return mine, kwargs


def _ipv4(value: str, where: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not an IPv4 address") from None


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
        self.broadcast_adapter = BroadcastAdapter(
            node, enabled=self.broadcast_enabled, settings=self._broadcast_kwargs, secret=self._broadcast_secret_cfg,
            secret_file=self._broadcast_secret_file, beacon=self.beacon_config, errors=self.errors)
        serf = SerfCore(self.serf_config, addr=node.advertise_host, port=node.tcp_port,
                        rng=random.Random(self.rng.getrandbits(64)), tags=self.serf_tags)
        self.serf_adapter = SerfAdapter(node, SerfNode(
            serf, enabled=self.serf_opts["enabled"], retransmit_mult=self.serf_opts["retransmit_mult"],
            recent_events=self.serf_opts["recent_events"], rng=self.rng))
        self.ae_adapter = AntiEntropyAdapter(
            node, AntiEntropyNode(self.ae_config, node_id=node.node_id, enabled=self.ae_opts["enabled"],
                                  interval_s=self.ae_opts["interval_s"], rng=self.rng),
            membership=membership, request_timeout_s=float(self.ae_opts["request_timeout_s"]))

        for msg_type in (SerfUserEvent, SerfQuery, SerfQueryResponse, SerfMemberUpdate):
            node.on(msg_type, self.serf_adapter.on_message)
        node.on(AESyncStep, self.ae_adapter.on_step)
        self.api = AutodiscoveryApi(self)

    # ------------------------------------------------------------ configuration
    def _load_config(self) -> None:
        cfg = self.node.config
        cluster = cfg.cluster_name

        where = "autodiscovery.mdns"
        own, kw = _split(cfg.section(where), where, {}, MdnsConfig, skip=("cluster_name",))
        kw.setdefault("interfaces", ("127.0.0.1",))  # loopback unless the operator names interfaces
        self.mdns_config = MdnsConfig(cluster_name=cluster, **kw)
        self.mdns_config.validate()

        where = "autodiscovery.broadcast"
        own, kw = _split(cfg.section(where), where,
                         {"allowed_broadcast_addresses": [], "secret_file": None}, BroadcastConfig,
                         skip=("cluster_name",))
        secret = kw.pop("secret", None)
        kw.setdefault("broadcast_address", "127.255.255.255")
        kw.setdefault("unicast_bind_address", "127.0.0.1")
        kw.setdefault("reply_wait_s", 0.5)
        for key in ("broadcast_address", "unicast_bind_address", "listen_address"):
            if kw.get(key) is not None:
                _ipv4(kw[key], f"{where}.{key}")
        self.allowed_broadcast = frozenset(
            str(_ipv4(a, f"{where}.allowed_broadcast_addresses")) for a in own["allowed_broadcast_addresses"])
        self._broadcast_kwargs = kw
        self._broadcast_secret_cfg: str | None = secret
        self._broadcast_secret_file: str | None = own["secret_file"]
        self.broadcast_enabled = bool(kw.get("enabled", False))
        if self.broadcast_enabled:  # fail at node start on a bad table, not at the first announce
            probe = BroadcastConfig(cluster_name=cluster, secret=(secret or "x" * 16).encode(), **kw)
            probe.validate()

        where = "autodiscovery.beacon"
        own, kw = _split(cfg.section(where), where, {}, BeaconConfig)
        self.beacon_config = BeaconConfig(**kw)
        self.beacon_config.validate()
        if self.beacon_config.enabled and not self.broadcast_enabled:
            raise ValueError("autodiscovery.beacon.enabled requires [autodiscovery.broadcast] enabled = true "
                             "(beacons travel on the broadcast sockets)")

        where = "autodiscovery.serf"
        own, kw = _split(cfg.section(where), where,
                         {"enabled": True, "tags": {}, "retransmit_mult": 4, "recent_events": 256,
                          "wire": "rustyray", "bind": "127.0.0.1", "port": 0, "join": [], "keyring_file": ""},
                         SerfConfig, skip=("node_name",))
        if int(own["retransmit_mult"]) < 1:
            raise ValueError(f"{where}.retransmit_mult must be >= 1")
        if int(own["recent_events"]) < 1:
            raise ValueError(f"{where}.recent_events must be >= 1")
        if not isinstance(own["tags"], dict):
            raise ValueError(f"{where}.tags must be a table of strings")
        if own["wire"] not in ("rustyray", "serf"):
            raise ValueError(f"{where}.wire must be 'rustyray' or 'serf', not {own['wire']!r}")
        self.serf_opts = own
        self.serf_tags = {str(k): str(v) for k, v in own["tags"].items()}
        self.serf_config = SerfConfig(node_name=self.node.node_id, **kw)
        self.serf_config.validate()

        where = "autodiscovery.anti_entropy"
        own, kw = _split(cfg.section(where), where,
                         {"enabled": True, "interval_s": 30.0, "request_timeout_s": 5.0}, AntiEntropyConfig)
        if float(own["interval_s"]) <= 0:
            raise ValueError(f"{where}.interval_s must be > 0")
        if float(own["request_timeout_s"]) <= 0:
            raise ValueError(f"{where}.request_timeout_s must be > 0")
        self.ae_opts = own
        self.ae_config = AntiEntropyConfig(**kw)
        self.ae_config.validate()

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.serf_adapter.start(self.serf_tags)
        if self.serf_opts["wire"] == "serf":
            await self._start_memberlist()
        self.mdns_adapter.start()
        await self.broadcast_adapter.start()
        self.ae_adapter.start()

    async def _start_memberlist(self) -> None:
        """The memberlist member real Serf agents talk to; a join that fails is logged, not fatal."""
        opts = self.serf_opts
        ring_file = Path(str(opts["keyring_file"])).expanduser() if opts["keyring_file"] else None
        try:
            keyring = Keyring.from_base64(json.loads(ring_file.read_text())) if ring_file else None
        except (OSError, ValueError) as exc:
            self.errors["serf"] = f"keyring_file {ring_file}: {exc}"
            return
        self.memberlist = MemberlistAgent(self.node.node_id, str(opts["bind"]), int(opts["port"]), self.serf_tags,
                                          on_event=self._foreign_event, on_query=self._foreign_query,
                                          on_query_response=self._foreign_response, keyring=keyring,
                                          keyring_file=ring_file)
        try:
            await self.memberlist.start()
        except OSError as exc:
            self.errors["serf"] = f"memberlist member on {opts['bind']}:{opts['port']}: {exc}"
            self.memberlist = None
            return
        agent, serf = self.memberlist, self.serf_adapter
        serf.foreign_responder = lambda send: agent.answer(send.addr, send.port, send.response.ltime,
                                                           send.response.id, send.response.node, send.response.payload,
                                                           send.response.ack)
        serf.on_query_started = agent.query
        serf.foreign_members = agent.live_agents
        for address in opts["join"]:
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
        for name, on in (("mdns", self.mdns_config.enabled), ("broadcast", self.broadcast_enabled),
                         ("beacon", self.beacon_config.enabled), ("serf", self.serf_opts["enabled"]),
                         ("anti_entropy", self.ae_opts["enabled"])):
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
