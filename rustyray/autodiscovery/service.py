"""Autodiscovery service: mDNS, UDP broadcast, beacons, Serf and anti-entropy on a live node.

Backs NETWORKING-026 to 030. The protocols live in the sans-I/O cores of this package; this
adapter reads the node's TOML tables, opens the sockets, feeds the cores with frames and the
clock, and turns their actions into node messages.

Network safety. mDNS, broadcast and beacons are off unless ``[autodiscovery.mdns]`` /
``[autodiscovery.broadcast]`` / ``[autodiscovery.beacon]`` say ``enabled = true``, and even then
they bind loopback only (``127.0.0.1``, broadcasts to ``127.255.255.255``) unless the same
tables name other interfaces or addresses. A broadcast address given in an API request is used
only if it is loopback or listed in ``allowed_broadcast_addresses``; otherwise the request is
refused (403) before anything is sent.

Serf and anti-entropy are on by default: their traffic is node messages over the node's own
mTLS connections, never new sockets. Serf events and queries are gossiped to
``retransmit_mult * ceil(log10(n + 1))`` random live members per hop (memberlist's transmit
limit), every node forwarding a message only the first time it sees it. Anti-entropy runs one
``AntiEntropySession`` per sync, its byte exchanges wrapped in ``AESyncStep`` requests.

Membership state for anti-entropy comes from the membership service (given by the node) when it offers
``entries() -> {node_id: (incarnation, status)}`` and
``apply_entries(list[(node_id, incarnation, status)])``. Otherwise ``PeerView`` derives it from
``node.peers`` (Alive when connected, else Suspect, incarnation from the peer's hello) merged
with the entries earlier syncs brought in; such an entry is dropped when a fresh connection to
that peer is made (a handshake is first-hand evidence).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hashlib
import ipaddress
import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rustyray._aio import cancel_and_wait
from rustyray.autodiscovery.anti_entropy import (
    AEEntry,
    AntiEntropyConfig,
    AntiEntropySession,
    EntryStatus,
    MerkleTree,
    precedence,
)
from rustyray.autodiscovery.beacon import BeaconConfig, BeaconCore
from rustyray.autodiscovery.broadcast_core import BroadcastConfig, BroadcastCore, CandidateSeen, NodeIdentity
from rustyray.autodiscovery.errors import AutodiscoveryError, SerfError, SerfSizeLimitExceeded
from rustyray.autodiscovery.mdns_core import DiscoveredNode, MdnsConfig
from rustyray.autodiscovery.serf import (
    DeliverEvent,
    DeliverQuery,
    MemberStatus,
    QueryState,
    Rebroadcast,
    SendResponse,
    SerfConfig,
    SerfCore,
    SerfMemberUpdate,
    SerfQuery,
    SerfQueryResponse,
    SerfUserEvent,
)
from rustyray.errors import ApiError
from rustyray.protocol.control import ErrorReply
from rustyray.protocol.messages import Message
from rustyray.transport.tcp import format_address, parse_address

if TYPE_CHECKING:
    from rustyray.autodiscovery.beacon_runner import BeaconRunner
    from rustyray.autodiscovery.broadcast import BroadcastDiscovery
    from rustyray.autodiscovery.mdns import MdnsDiscovery
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)

__all__ = ["AESyncStep", "AESyncStepReply", "AutodiscoveryService"]

LOOPBACK_NET = ipaddress.IPv4Network("127.0.0.0/8")
_SECRET_DOMAIN = b"rustyray-autodiscovery-broadcast-v1\x00"

HOW_TO = {
    "mdns": '[autodiscovery.mdns] enabled = true, interfaces = ["127.0.0.1"]',
    "broadcast": '[autodiscovery.broadcast] enabled = true, broadcast_address = "127.255.255.255", port = 7947',
    "beacon": "[autodiscovery.beacon] enabled = true, interval_ms = 1000, ttl_ms = 5000 "
    "(needs [autodiscovery.broadcast] enabled = true)",
    "serf": "[autodiscovery.serf] enabled = true",
    "anti_entropy": "[autodiscovery.anti_entropy] enabled = true",
}


class AESyncStep(Message):
    """One anti-entropy message (an encoded AE* struct) from the initiator of a sync."""

    session: int
    data: bytes


class AESyncStepReply(Message):
    """The responder's answer to one ``AESyncStep``."""

    data: bytes


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


def _status(value: Any) -> EntryStatus:
    raw = getattr(value, "value", value)
    for cand in (raw, str(raw).capitalize()):
        with contextlib.suppress(ValueError):
            return EntryStatus(cand)
    raise ValueError(f"unknown membership status {value!r}")


# ---------------------------------------------------------------- membership view without SWIM


class PeerView:
    """Fallback membership view for anti-entropy when no membership service offers one.

    Alive if the outbound connection is up, else Suspect; the incarnation is the one the peer's
    hello carried. Entries brought by syncs are kept in ``overrides`` and win by SWIM precedence.
    """

    def __init__(self, node: Host) -> None:
        self.node = node
        self.overrides: dict[str, tuple[int, EntryStatus]] = {}

    def entries(self) -> dict[str, tuple[int, EntryStatus]]:
        view = {self.node.node_id: (self.node.incarnation, EntryStatus.ALIVE)}
        for peer in self.node.peers.values():
            view[peer.node_id] = (peer.incarnation, EntryStatus.ALIVE if peer.connected else EntryStatus.SUSPECT)
        for nid, entry in self.overrides.items():
            if nid not in view or precedence(*entry) > precedence(*view[nid]):
                view[nid] = entry
        return view

    def apply_entries(self, entries: list[tuple[str, int, str]]) -> None:
        for node_id, incarnation, status in entries:
            entry = (incarnation, EntryStatus(status))
            cur = self.overrides.get(node_id)
            if cur is None or precedence(*entry) > precedence(*cur):
                self.overrides[node_id] = entry
            peer = self.node.peers.get(node_id)
            if peer is not None:
                peer.incarnation = max(peer.incarnation, incarnation)


# ---------------------------------------------------------------- service


class AutodiscoveryService:
    """Zero-config discovery and gossip extensions for one node (see the module docstring)."""

    def __init__(self, node: Host, *, membership: Any | None = None) -> None:
        self.node = node
        self.membership = membership
        """The membership service whose view anti-entropy synchronises (None: the peer table)."""
        self.rng = random.Random(node.rng.getrandbits(64))
        self.errors: dict[str, str] = {}
        self._load_config()
        # mDNS
        self.mdns: MdnsDiscovery | None = None
        self._mdns_task: asyncio.Task[Any] | None = None
        self.mdns_learned = 0
        # broadcast + beacon
        self.broadcast: BroadcastDiscovery | None = None
        self.beacon: BeaconRunner | None = None
        self.broadcast_learned = 0
        self.beacon_expired = 0
        # serf
        self.serf = SerfCore(self.serf_config, addr=node.advertise_host, port=node.tcp_port,
                             rng=random.Random(self.rng.getrandbits(64)), tags=self.serf_tags)
        self._serf_timer: asyncio.TimerHandle | None = None
        self.serf_events: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.serf_opts["recent_events"])
        self.serf_delivered = 0
        self.serf_gossip_sent = 0
        self.serf_answered = 0
        self._query_waiters: dict[tuple[int, int], asyncio.Event] = {}
        self.query_responders: dict[str, Callable[[bytes], bytes]] = {}
        # anti-entropy
        self.peer_view = PeerView(node)
        self.ae_source: Any | None = None
        """An object with ``entries()`` and ``apply_entries(list[(node_id, incarnation, status)])``
        that replaces the membership view anti-entropy synchronises (None: see ``state_source``)."""
        self._ae_responders: collections.OrderedDict[tuple[str | None, int], tuple[AntiEntropySession, int]] = (
            collections.OrderedDict())
        self.ae_stats = {"syncs_completed": 0, "syncs_failed": 0, "syncs_answered": 0, "entries_repaired": 0}
        self.ae_last: dict[str, Any] | None = None
        self._started = False
        self._loop: asyncio.AbstractEventLoop | None = None

        node.on(SerfUserEvent, self._on_serf)
        node.on(SerfQuery, self._on_serf)
        node.on(SerfQueryResponse, self._on_serf)
        node.on(SerfMemberUpdate, self._on_serf)
        node.on(AESyncStep, self._on_ae_step)

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
                         {"enabled": True, "tags": {}, "retransmit_mult": 4, "recent_events": 256},
                         SerfConfig, skip=("node_name",))
        if int(own["retransmit_mult"]) < 1:
            raise ValueError(f"{where}.retransmit_mult must be >= 1")
        if int(own["recent_events"]) < 1:
            raise ValueError(f"{where}.recent_events must be >= 1")
        if not isinstance(own["tags"], dict):
            raise ValueError(f"{where}.tags must be a table of strings")
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

    def _broadcast_secret(self) -> bytes:
        """Configured secret, else a key every node of the cluster derives from the shared CA."""
        if self._broadcast_secret_cfg:
            return self._broadcast_secret_cfg.encode()
        if self._broadcast_secret_file:
            return Path(self._broadcast_secret_file).read_bytes().strip()
        ca = self.node.config.certs_dir / "ca.pem"
        try:
            return hashlib.sha256(_SECRET_DOMAIN + ca.read_bytes()).digest()
        except OSError as exc:
            raise AutodiscoveryError(
                f"no broadcast secret: set [autodiscovery.broadcast] secret or secret_file, or run with TLS "
                f"so the cluster CA ({ca}) can derive it ({exc})") from exc

    def _cluster_tag(self) -> str:
        name = self.node.config.cluster_name
        try:
            ca = (self.node.config.certs_dir / "ca.pem").read_bytes()
        except OSError:
            return name
        return f"{name}~{hashlib.sha256(ca).hexdigest()[:12]}"

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._started = True
        self._serf_dispatch(self.serf.set_tags(self.serf_tags), sender=None)
        if self.mdns_config.enabled:
            self._mdns_task = self.node.spawn(self._start_mdns(), name="autodiscovery mdns")
        if self.broadcast_enabled:
            await self._start_broadcast()
        if self.ae_opts["enabled"]:
            self.node.spawn(self._ae_loop(), name="autodiscovery anti-entropy")

    async def stop(self) -> None:
        self._started = False
        if self._serf_timer is not None:
            self._serf_timer.cancel()
            self._serf_timer = None
        if self.beacon is not None:
            self.beacon.stop()
        if self.broadcast is not None:
            await self.broadcast.close()
        if self._mdns_task is not None:
            await cancel_and_wait([self._mdns_task], 2.0, owner="mdns")
        if self.mdns is not None:
            with contextlib.suppress(Exception):
                await self.mdns.stop()

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

    # ------------------------------------------------------------ peers
    def _learn(self, node_id: str, tcp: str, quic: str | None, source: str) -> bool:
        """A discovered node becomes a candidate peer (the node dials it) unless already known."""
        if node_id == self.node.node_id or node_id in self.node.peers or not tcp:
            return False
        try:
            parse_address(tcp, field="tcp_address")
        except ValueError:
            return False
        log.info("%s learned %s at %s via %s", self.node.node_id, node_id, tcp, source)
        self.node.learn_peer(node_id, tcp, quic or "")
        return True

    def on_peer_event(self, event: str, peer_id: str) -> None:
        peer = self.node.peers.get(peer_id)
        if event == "connected" and peer is not None:
            self.peer_view.overrides.pop(peer_id, None)
            host, port = parse_address(peer.tcp_address, field="tcp_address")
            self._serf_dispatch(self.serf.member_joined(peer_id, host, port), sender=None)
            me = self.serf.me  # tell the newcomer our tags (older ltimes are ignored there)
            update = SerfMemberUpdate(ltime=me.ltime, name=me.name, addr=me.addr, port=me.port, tags=me.tags,
                                      status=me.status.value)
            self.node.spawn(self._send_quietly(peer_id, update), name="serf member update")
        elif event == "disconnected" and self._serf_status(peer_id) is not MemberStatus.LEFT:
            self._serf_dispatch(self.serf.set_member_status(peer_id, MemberStatus.FAILED), sender=None)
        elif event == "goodbye":
            self._serf_dispatch(self.serf.set_member_status(peer_id, MemberStatus.LEFT), sender=None)

    def _serf_status(self, name: str) -> MemberStatus | None:
        status = next((m["status"] for m in self.serf.members() if m["name"] == name), None)
        return None if status is None else MemberStatus(status)

    async def _send_quietly(self, peer_id: str, msg: Message) -> bool:
        try:
            await self.node.send(peer_id, msg)
        except (ConnectionError, OSError, KeyError, TimeoutError) as exc:
            log.debug("%s could not send %s to %s: %s", self.node.node_id, type(msg).__name__, peer_id, exc)
            return False
        return True

    # ------------------------------------------------------------ mDNS (026)
    async def _start_mdns(self) -> None:
        from rustyray.autodiscovery.mdns import MdnsDiscovery

        node = self.node
        # Only peers that share our CA can complete a handshake with us: tag the cluster name with
        # the CA fingerprint so a same-named cluster on the LAN is ignored rather than dialled.
        self.mdns_config = dataclasses.replace(self.mdns_config, cluster_name=self._cluster_tag())
        ports = {"tcp": node.tcp_port}
        if node.quic_port:
            ports["quic"] = node.quic_port
        self.mdns = MdnsDiscovery(self.mdns_config, node_id=node.node_id, port=node.tcp_port, ports=ports,
                                  on_change=self._on_mdns_change)
        try:
            await self.mdns.start()
        except AutodiscoveryError as exc:
            self.errors["mdns"] = str(exc)
            log.warning("mDNS did not start on %s: %s", node.node_id, exc)

    def _on_mdns_change(self, found: DiscoveredNode, added: bool) -> None:
        if not added:
            return
        tcp = format_address(found.ip, found.ports.get("tcp", found.port))
        quic = format_address(found.ip, found.ports["quic"]) if "quic" in found.ports else ""
        if self._learn(found.node_id, tcp, quic, "mdns"):
            self.mdns_learned += 1

    def api_mdns_discovered(self) -> dict[str, Any]:
        if not self.mdns_config.enabled:
            raise ApiError(409, f"mDNS discovery is disabled on {self.node.node_id}; enable it in the node's "
                                f"TOML config: {HOW_TO['mdns']}")
        if "mdns" in self.errors:
            raise ApiError(503, f"mDNS discovery failed to start on {self.node.node_id}: {self.errors['mdns']}")
        running = self.mdns is not None and self.mdns.running
        nodes = []
        if self.mdns is not None:
            for d in self.mdns.registry.nodes():
                nodes.append({**d.as_dict(), "ports": dict(d.ports),
                              "known_peer": d.node_id in self.node.peers})
        return {
            "node": self.node.node_id,
            "enabled": True,
            "registered": running,
            "service_type": self.mdns_config.short_type,
            "interfaces": list(self.mdns_config.interfaces or []),
            "cluster_tag": self.mdns_config.cluster_name,
            "discovered_nodes": nodes,
            "total": len(nodes),
            "peers_learned": self.mdns_learned,
        }

    # ------------------------------------------------------------ broadcast (027) and beacons (028)
    async def _start_broadcast(self) -> None:
        from rustyray.autodiscovery.beacon_runner import BeaconRunner
        from rustyray.autodiscovery.broadcast import BroadcastDiscovery

        node = self.node
        try:
            cfg = BroadcastConfig(cluster_name=node.config.cluster_name, secret=self._broadcast_secret(),
                                  **self._broadcast_kwargs)
            identity = NodeIdentity(node.node_id, node.tcp_address, node.quic_address or None)
            core = BroadcastCore(cfg, identity, random.SystemRandom())
            bd = BroadcastDiscovery(core, on_candidate=self._on_candidate)
            await bd.start()
        except (AutodiscoveryError, OSError) as exc:
            self.errors["broadcast"] = str(exc)
            log.warning("broadcast discovery did not start on %s: %s", node.node_id, exc)
            return
        self.broadcast = bd
        if self.beacon_config.enabled:
            self.beacon = BeaconRunner(BeaconCore(self.beacon_config, core), bd, on_expired=self._on_expired)
            self.beacon.start()

    def _on_candidate(self, seen: CandidateSeen) -> None:
        c = seen.candidate
        if self._learn(c.node_id, c.tcp_addr, c.quic_addr, c.via):
            self.broadcast_learned += 1

    def _on_expired(self, ids: list[str]) -> None:
        self.beacon_expired += len(ids)

    def _check_broadcast_address(self, address: str) -> str:
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            raise ApiError(422, f"broadcast_address {address!r} is not an IPv4 address",
                           "broadcast_address") from None
        if ip in LOOPBACK_NET or str(ip) in self.allowed_broadcast:
            return str(ip)
        raise ApiError(403, f"broadcast_address {address} is refused: only loopback (127.0.0.0/8) or an address "
                            f"listed in [autodiscovery.broadcast] allowed_broadcast_addresses may be used; "
                            f"nothing was sent", "broadcast_address")

    def _require_broadcast(self) -> BroadcastDiscovery:
        if not self.broadcast_enabled:
            raise ApiError(409, f"UDP broadcast discovery is disabled on {self.node.node_id}; enable it on every "
                                f"node in the TOML config: {HOW_TO['broadcast']}")
        if self.broadcast is None:
            raise ApiError(503, f"broadcast discovery failed to start on {self.node.node_id}: "
                                f"{self.errors.get('broadcast', 'not started')}")
        return self.broadcast

    async def api_broadcast_announce(self, broadcast_address: str, port: int,
                                     wait_ms: int | None = None) -> dict[str, Any]:
        address = self._check_broadcast_address(broadcast_address)
        if not 1 <= port <= 65535:
            raise ApiError(422, "port must be in 1..65535", "port")
        bd = self._require_broadcast()
        core = bd.core
        learned_before = self.broadcast_learned
        nonce, dgram = core.announce(bd.clock())
        bd.send(type(dgram)(dgram.data, (address, port)))
        wait = core.config.reply_wait_s if wait_ms is None else wait_ms / 1000.0
        await asyncio.sleep(wait)
        return {
            **core.announce_result(nonce),
            "node": self.node.node_id,
            "broadcast_address": address,
            "port": port,
            "wait_ms": round(wait * 1000),
            "candidates": [c.node_id for c in core.candidates],
            "peers_learned": self.broadcast_learned - learned_before,
        }

    def api_broadcast_candidates(self) -> dict[str, Any]:
        bd = self._require_broadcast()
        now = bd.clock()
        return {
            "node": self.node.node_id,
            "candidates": [{"node_id": c.node_id, "tcp_address": c.tcp_addr, "quic_address": c.quic_addr,
                            "via": c.via, "last_seen_ms": round(max(0.0, now - c.last_seen) * 1000)}
                           for c in bd.core.candidates],
            "stats": dict(bd.core.stats),
            "peers_learned": self.broadcast_learned,
        }

    def api_beacon_status(self) -> dict[str, Any]:
        if not self.beacon_config.enabled:
            return {"node": self.node.node_id, "enabled": False, "how_to_enable": HOW_TO["beacon"],
                    "message": f"beacons are disabled on {self.node.node_id}; enable them in the TOML config: "
                               f"{HOW_TO['beacon']}"}
        if self.beacon is None or self.broadcast is None:
            raise ApiError(503, f"beacons failed to start on {self.node.node_id}: "
                                f"{self.errors.get('broadcast', 'not started')}")
        return {"node": self.node.node_id, **self.beacon.status(), "candidates_expired": self.beacon_expired,
                "dropped": self.broadcast.core.stats["dropped"], "peers_learned": self.broadcast_learned}

    # ------------------------------------------------------------ Serf (029)
    def _require_serf(self) -> None:
        if not self.serf_opts["enabled"]:
            raise ApiError(409, f"Serf events and queries are disabled on {self.node.node_id}; enable them in "
                                f"the TOML config: {HOW_TO['serf']}")

    def _gossip_targets(self, exclude: str | None) -> list[str]:
        live = set(self.node.live_members())
        cands = sorted(p for p, peer in self.node.peers.items()
                       if peer.connected and p in live and p != exclude and p != self.node.node_id)
        limit = self.serf_opts["retransmit_mult"] * max(1, math.ceil(math.log10(len(live) + 1)))
        return cands if len(cands) <= limit else self.rng.sample(cands, limit)

    async def _gossip(self, msg: Message, exclude: str | None) -> int:
        targets = self._gossip_targets(exclude)
        sent = await asyncio.gather(*(self._send_quietly(t, msg) for t in targets))
        self.serf_gossip_sent += sum(sent)
        return sum(sent)

    def _node_at(self, addr: str, port: int) -> str | None:
        where = format_address(addr, port)
        if where == self.node.tcp_address:
            return self.node.node_id
        return next((p.node_id for p in self.node.peers.values() if p.tcp_address == where), None)

    def _serf_dispatch(self, actions: list[Any], sender: str | None) -> None:
        """Carry out the core's actions; never raises into a frame handler."""
        now = time.monotonic()
        for action in actions:
            if isinstance(action, Rebroadcast):
                if self._started:
                    self.node.spawn(self._gossip(action.message, sender), name="serf gossip")
            elif isinstance(action, DeliverEvent):
                e = action.event
                self.serf_delivered += 1
                self.serf_events.append({"name": e.name, "payload": e.payload.decode("utf-8", "replace"),
                                         "ltime": e.ltime, "coalesce": e.coalesce, "delivered_at": time.time()})
            elif isinstance(action, DeliverQuery):
                self._answer_query(action, now)
            elif isinstance(action, SendResponse):
                self._route_response(action)
        self._serf_rearm()

    def _answer_query(self, delivered: DeliverQuery, now: float) -> None:
        q = delivered.query
        responder = self.query_responders.get(q.name)
        if responder is not None:
            payload = responder(q.payload)
        else:
            payload = json.dumps({"node_id": self.node.node_id, "incarnation": self.node.incarnation,
                                  "uptime_s": round(time.monotonic() - self.node.started_mono, 3)}).encode()
        try:
            send = self.serf.respond(delivered, payload, now)
        except SerfError as exc:
            log.debug("%s does not answer query %s: %s", self.node.node_id, q.name, exc)
            return
        self.serf_answered += 1
        self._route_response(send, origin=q.origin)

    def _route_response(self, send: SendResponse, origin: str | None = None) -> None:
        target = origin or self._node_at(send.addr, send.port)
        if target == self.node.node_id:
            self._serf_receive(send.response, sender=None)
        elif target is not None and self._started:
            self.node.spawn(self._send_quietly(target, send.response), name="serf response")

    def _serf_receive(self, msg: Message, sender: str | None) -> None:
        if not self.serf_opts["enabled"]:
            return
        self._serf_dispatch(self.serf.receive(msg, time.monotonic()), sender)
        if isinstance(msg, SerfQueryResponse):
            waiter = self._query_waiters.get((msg.ltime, msg.id))
            if waiter is not None:
                waiter.set()

    def _on_serf(self, ctx: RequestContext, msg: Message) -> None:
        self._serf_receive(msg, ctx.peer_id)

    def _serf_rearm(self) -> None:
        if self._serf_timer is not None:
            self._serf_timer.cancel()
            self._serf_timer = None
        deadline = self.serf.next_deadline()
        if deadline is None or not self._started or self._loop is None:
            return
        self._serf_timer = self._loop.call_later(max(0.0, deadline - time.monotonic()), self._serf_tick)

    def _serf_tick(self) -> None:
        self._serf_timer = None
        self._serf_dispatch(self.serf.tick(time.monotonic()), sender=None)

    def api_serf_members(self) -> dict[str, Any]:
        self._require_serf()
        live = set(self.node.live_members())
        members = {m["name"]: m for m in self.serf.members()}
        for node_id in live - set(members):
            peer = self.node.peers.get(node_id)
            host, port = parse_address(peer.tcp_address) if peer else (self.node.advertise_host, self.node.tcp_port)
            members[node_id] = {"name": node_id, "addr": host, "port": port, "tags": {}, "status": "alive"}
        out = []
        for name in sorted(members):
            m = dict(members[name])
            if m["status"] in (MemberStatus.LEFT.value, MemberStatus.LEAVING.value):
                pass  # an explicit goodbye wins until the member connects again
            elif name in live:
                m["status"] = MemberStatus.ALIVE.value
            else:
                m["status"] = MemberStatus.FAILED.value
            peer = self.node.peers.get(name)
            if peer is not None:
                m["incarnation"] = peer.incarnation
            elif name == self.node.node_id:
                m["incarnation"] = self.node.incarnation
            out.append(m)
        return {"node": self.node.node_id, "members": out, "total": len(out),
                "alive": sum(1 for m in out if m["status"] == "alive"),
                "clocks": {"member": self.serf.clock.time(), "event": self.serf.event_clock.time(),
                           "query": self.serf.query_clock.time()}}

    async def api_serf_event(self, name: str, payload: str = "", coalesce: bool = True) -> dict[str, Any]:
        self._require_serf()
        if not name:
            raise ApiError(422, "name must not be empty", "name")
        try:
            result, actions = self.serf.user_event(name, payload.encode(), time.monotonic(), coalesce=coalesce)
        except SerfSizeLimitExceeded as exc:
            raise ApiError(422, f"payload: {exc}", "payload") from None
        targets = self._gossip_targets(None)
        self._serf_dispatch([a for a in actions if not isinstance(a, Rebroadcast)], sender=None)
        rebroadcast = [a.message for a in actions if isinstance(a, Rebroadcast)]
        sent = 0
        for msg in rebroadcast:
            sent += sum(await asyncio.gather(*(self._send_quietly(t, msg) for t in targets)))
        self.serf_gossip_sent += sent
        return {**result, "node": self.node.node_id, "name": name, "coalesce": coalesce, "gossiped_to": sent}

    def api_serf_events(self, limit: int = 100) -> dict[str, Any]:
        self._require_serf()
        events = list(self.serf_events)[-limit:] if limit > 0 else []
        return {"node": self.node.node_id, "events": events, "total_delivered": self.serf_delivered,
                "event_clock": self.serf.event_clock.time(), "stats": dict(self.serf.stats)}

    async def api_serf_query(self, name: str, payload: str = "", timeout_ms: int | None = None) -> dict[str, Any]:
        self._require_serf()
        if not name:
            raise ApiError(422, "name must not be empty", "name")
        if timeout_ms is not None and not 1 <= timeout_ms <= 60_000:
            raise ApiError(422, "timeout_ms must be in 1..60000", "timeout_ms")
        start = time.monotonic()
        try:
            state, actions = self.serf.start_query(name, payload.encode(), start,
                                                   timeout_s=None if timeout_ms is None else timeout_ms / 1000.0)
        except SerfSizeLimitExceeded as exc:
            raise ApiError(422, f"payload: {exc}", "payload") from None
        key = (state.ltime, state.id)
        waiter = self._query_waiters[key] = asyncio.Event()
        try:
            self._serf_dispatch(actions, sender=None)
            await self._await_answers(state, waiter)
        finally:
            self._query_waiters.pop(key, None)
        now = time.monotonic()
        expected = sorted(self.node.live_members())
        result = state.result(now)
        return {**result, "node": self.node.node_id, "name": name, "responses_received": len(state.responses),
                "expected": expected, "timeout_ms": round((state.deadline - start) * 1000),
                "duration_ms": round((now - start) * 1000, 3)}

    async def _await_answers(self, state: QueryState, waiter: asyncio.Event) -> None:
        """Until the deadline, or earlier once every live member has answered."""
        while True:
            if set(self.node.live_members()) <= set(state.responses):
                return
            left = state.deadline - time.monotonic()
            if left <= 0:
                return
            waiter.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), min(left, 0.25))

    # ------------------------------------------------------------ anti-entropy (030)
    def state_source(self) -> tuple[str, Any]:
        """Where the membership view comes from: ``ae_source`` (tests, embedding), the membership
        service when it offers ``entries()`` / ``apply_entries()``, else the peer table."""
        if self.ae_source is not None:
            return "custom", self.ae_source
        svc = self.membership
        if callable(getattr(svc, "entries", None)) and callable(getattr(svc, "apply_entries", None)):
            return "membership", svc
        return "peers", self.peer_view

    def membership_entries(self) -> dict[str, tuple[int, EntryStatus]]:
        """This node's view: ``node_id -> (incarnation, status)``."""
        _, src = self.state_source()
        return {nid: (int(inc), _status(st)) for nid, (inc, st) in src.entries().items()}

    def _apply_entries(self, entries: list[AEEntry]) -> None:
        if not entries:
            return
        self.ae_stats["entries_repaired"] += len(entries)
        _, src = self.state_source()
        src.apply_entries([(e.node_id, e.incarnation, e.status) for e in entries])

    def _tree(self) -> MerkleTree:
        tree = MerkleTree(self.ae_config)
        for nid, (inc, st) in self.membership_entries().items():
            tree.set(nid, inc, st)
        return tree

    def _on_ae_step(self, ctx: RequestContext, msg: AESyncStep) -> Message:
        if not self.ae_opts["enabled"]:
            return ErrorReply(code="disabled", message=f"anti-entropy is disabled on {self.node.node_id}")
        key = (ctx.peer_id, msg.session)
        held = self._ae_responders.get(key)
        if held is None:
            session = AntiEntropySession(self._tree(), initiator=False, session_id=msg.session)
            held = (session, 0)
            self.ae_stats["syncs_answered"] += 1
        session, applied = held
        try:
            reply = session.receive(msg.data)
        except AutodiscoveryError as exc:
            self._ae_responders.pop(key, None)
            return ErrorReply(code="anti_entropy_protocol", message=str(exc))
        self._apply_entries(session.applied[applied:])
        self._ae_responders[key] = (session, len(session.applied))
        self._ae_responders.move_to_end(key)
        while len(self._ae_responders) > 64:
            self._ae_responders.popitem(last=False)
        assert reply is not None, "a responder always answers"
        return AESyncStepReply(data=reply)

    async def sync_with(self, target: str) -> dict[str, Any]:
        """Run one anti-entropy session with ``target`` and apply what it brings."""
        start = time.monotonic()
        tree = self._tree()
        entries = len(tree)
        session = AntiEntropySession(tree, initiator=True, rng=self.rng)
        timeout = float(self.ae_opts["request_timeout_s"])
        data: bytes | None = session.start()
        while data is not None:
            reply = await self.node.request(target, AESyncStep(session=session.session_id, data=data),
                                            timeout=timeout)
            if not isinstance(reply, AESyncStepReply):
                raise AutodiscoveryError(f"unexpected reply {type(reply).__name__}")
            data = session.receive(reply.data)
        self._apply_entries(session.applied)
        report = {**session.report().as_dict(), "node": self.node.node_id, "target_node": target,
                  "entries": entries, "root": tree.root.hex(),
                  "duration_ms": round((time.monotonic() - start) * 1000, 3)}
        self.ae_stats["syncs_completed"] += 1
        self.ae_last = {**report, "at": time.time()}
        return report

    def _require_ae(self) -> None:
        if not self.ae_opts["enabled"]:
            raise ApiError(409, f"anti-entropy is disabled on {self.node.node_id}; enable it in the TOML "
                                f"config: {HOW_TO['anti_entropy']}")

    async def api_anti_entropy_sync(self, target_node: str) -> dict[str, Any]:
        from rustyray.transport.mesh import RequestFailed

        self._require_ae()
        if target_node == self.node.node_id:
            raise ApiError(422, "target_node must be another node, not the one running the sync", "target_node")
        if target_node not in self.node.peers:
            known = ", ".join(sorted(self.node.peers)) or "none"
            raise ApiError(404, f"target_node {target_node!r} is not a known peer of {self.node.node_id} "
                                f"(known: {known})", "target_node")
        try:
            return await self.sync_with(target_node)
        except (ConnectionError, OSError, TimeoutError, RequestFailed, AutodiscoveryError) as exc:
            self.ae_stats["syncs_failed"] += 1
            raise ApiError(503, f"target_node {target_node!r}: sync failed: {type(exc).__name__}: {exc}",
                           "target_node") from None

    def api_anti_entropy_status(self) -> dict[str, Any]:
        self._require_ae()
        tree = self._tree()
        return {"node": self.node.node_id, "entries": len(tree), "root": tree.root.hex(),
                "view": {nid: {"incarnation": inc, "status": st.value} for nid, (inc, st) in tree.items()},
                "source": self.state_source()[0],
                "interval_s": self.ae_opts["interval_s"], **self.ae_stats, "last_sync": self.ae_last}

    async def _ae_loop(self) -> None:
        """Periodic anti-entropy with one random live peer (Demers et al. 1987)."""
        interval = float(self.ae_opts["interval_s"])
        while True:
            await asyncio.sleep(interval * self.rng.uniform(0.8, 1.2))
            live = set(self.node.live_members())
            peers = sorted(p for p, peer in self.node.peers.items() if peer.connected and p in live)
            if not peers:
                continue
            target = self.rng.choice(peers)
            try:
                await self.sync_with(target)
            except Exception as exc:  # a failed round is retried at the next interval
                self.ae_stats["syncs_failed"] += 1
                log.debug("anti-entropy with %s failed on %s: %s", target, self.node.node_id, exc)
