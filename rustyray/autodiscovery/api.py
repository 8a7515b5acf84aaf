"""The autodiscovery management operations (NETWORKING-026 to 030): ``AutodiscoveryApi``.

Why a facade: input validation and the API contract (operation names and arguments, response
fields, which error names which field) live apart from the I/O adapters, so that the adapters
only move packets and frames and the contract reads in one place. ``Node.call_api`` calls the
public methods here by name (``svc.api.<operation>``); each raises a ``rustyray.errors`` error
that names the offending field. The requests and results are the dataclasses of
:mod:`rustyray.autodiscovery.api_types`.

Network safety. mDNS, broadcast and beacons answer "conflict" with the TOML that enables them
when they are off. A broadcast address given in a request is used only if it is loopback or
listed in ``[autodiscovery.broadcast] allowed_broadcast_addresses``; otherwise the request is
refused ("forbidden") before anything is sent.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from rustyray.autodiscovery.api_types import (
    AntiEntropyStatus,
    AntiEntropySyncReport,
    AntiEntropySyncRequest,
    BeaconDisabled,
    BeaconStatus,
    BroadcastAnnounced,
    BroadcastAnnounceRequest,
    BroadcastCandidates,
    MdnsDiscovered,
    SerfClocks,
    SerfEventRequest,
    SerfEvents,
    SerfEventSent,
    SerfEventsRequest,
    SerfJoined,
    SerfJoinRequest,
    SerfMembers,
    SerfQueryRequest,
    SerfQueryResponse,
    SerfQueryResult,
    ViewEntry,
)
from rustyray.autodiscovery.errors import AutodiscoveryError, SerfSizeLimitExceeded
from rustyray.errors import conflict, forbidden, not_found, unavailable, unprocessable

if TYPE_CHECKING:
    from rustyray.autodiscovery.broadcast_adapter import BroadcastAdapter
    from rustyray.autodiscovery.serf_adapter import SerfAdapter
    from rustyray.autodiscovery.service import AutodiscoveryService

__all__ = ["HOW_TO", "LOOPBACK_NET", "AutodiscoveryApi"]

LOOPBACK_NET = ipaddress.IPv4Network("127.0.0.0/8")

HOW_TO = {
    "mdns": '[autodiscovery.mdns] enabled = true, interfaces = ["127.0.0.1"]',
    "broadcast": '[autodiscovery.broadcast] enabled = true, broadcast_address = "127.255.255.255", port = 7947',
    "beacon": "[autodiscovery.beacon] enabled = true, interval_ms = 1000, ttl_ms = 5000 "
    "(needs [autodiscovery.broadcast] enabled = true)",
    "serf": "[autodiscovery.serf] enabled = true",
    "anti_entropy": "[autodiscovery.anti_entropy] enabled = true",
}


class AutodiscoveryApi:
    """One method per management operation of the autodiscovery service."""

    def __init__(self, service: AutodiscoveryService) -> None:
        self._svc = service
        self._node_id = service.node.node_id

    # ------------------------------------------------------------ mDNS (026)
    def mdns_discovered(self) -> MdnsDiscovered:
        mdns = self._svc.mdns_adapter
        if not mdns.config.enabled:
            raise conflict(f"mDNS discovery is disabled on {self._node_id}; enable it in the node's "
                           f"TOML config: {HOW_TO['mdns']}")
        if "mdns" in self._svc.errors:
            raise unavailable(f"mDNS discovery failed to start on {self._node_id}: {self._svc.errors['mdns']}")
        nodes = mdns.discovered()
        return MdnsDiscovered(
            node=self._node_id,
            enabled=True,
            registered=mdns.registered,
            service_type=mdns.config.short_type,
            interfaces=list(mdns.config.interfaces or []),
            cluster_tag=mdns.config.cluster_name,
            discovered_nodes=nodes,
            total=len(nodes),
            peers_learned=mdns.learner.learned,
        )

    # ------------------------------------------------------------ broadcast (027) and beacons (028)
    def _check_broadcast_address(self, address: str) -> str:
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            raise unprocessable(f"broadcast_address {address!r} is not an IPv4 address",
                                "broadcast_address") from None
        if ip in LOOPBACK_NET or str(ip) in self._svc.allowed_broadcast:
            return str(ip)
        raise forbidden(f"broadcast_address {address} is refused: only loopback (127.0.0.0/8) or an address "
                        f"listed in [autodiscovery.broadcast] allowed_broadcast_addresses may be used; "
                        f"nothing was sent", "broadcast_address")

    def _broadcast(self) -> BroadcastAdapter:
        bc = self._svc.broadcast_adapter
        if not bc.enabled:
            raise conflict(f"UDP broadcast discovery is disabled on {self._node_id}; enable it on every "
                           f"node in the TOML config: {HOW_TO['broadcast']}")
        if bc.discovery is None:
            raise unavailable(f"broadcast discovery failed to start on {self._node_id}: "
                              f"{self._svc.errors.get('broadcast', 'not started')}")
        return bc

    async def broadcast_announce(self, req: BroadcastAnnounceRequest) -> BroadcastAnnounced:
        """The address is vetted before the port so a refused address is never sent to, whatever the port."""
        address = self._check_broadcast_address(req.broadcast_address)
        port, wait_ms = req.port, req.wait_ms
        if not 1 <= port <= 65535:
            raise unprocessable("port must be in 1..65535", "port")
        bc = self._broadcast()
        assert bc.discovery is not None
        core = bc.discovery.core
        wait = core.config.reply_wait_s if wait_ms is None else wait_ms / 1000.0
        result, learned = await bc.announce((address, port), wait)
        return BroadcastAnnounced(
            broadcast_sent=result["broadcast_sent"],
            listeners_notified=result["listeners_notified"],
            node=self._node_id,
            broadcast_address=address,
            port=port,
            wait_ms=round(wait * 1000),
            candidates=[c.node_id for c in core.candidates],
            peers_learned=learned,
        )

    def broadcast_candidates(self) -> BroadcastCandidates:
        bc = self._broadcast()
        assert bc.discovery is not None
        core = bc.discovery.core
        return BroadcastCandidates(node=self._node_id, candidates=core.candidates_status(bc.discovery.clock()),
                                   stats=dict(core.stats), peers_learned=bc.learner.learned)

    def beacon_status(self) -> BeaconStatus | BeaconDisabled:
        """Disabled beacons are a normal answer (with the TOML to enable them), not an error."""
        bc = self._svc.broadcast_adapter
        if not bc.beacon_config.enabled:
            return BeaconDisabled(node=self._node_id, enabled=False, how_to_enable=HOW_TO["beacon"],
                                  message=f"beacons are disabled on {self._node_id}; enable them in the TOML "
                                          f"config: {HOW_TO['beacon']}")
        if bc.beacon is None or bc.discovery is None:
            raise unavailable(f"beacons failed to start on {self._node_id}: "
                              f"{self._svc.errors.get('broadcast', 'not started')}")
        return BeaconStatus(node=self._node_id, **bc.beacon.status(),
                            candidates_expired=bc.expired, dropped=bc.discovery.core.stats["dropped"],
                            peers_learned=bc.learner.learned)

    # ------------------------------------------------------------ Serf (029)
    def _serf(self) -> SerfAdapter:
        serf = self._svc.serf_adapter
        if not serf.core.enabled:
            raise conflict(f"Serf events and queries are disabled on {self._node_id}; enable them in "
                           f"the TOML config: {HOW_TO['serf']}")
        return serf

    def serf_members(self) -> SerfMembers:
        """Our Serf members and, with ``wire = "serf"``, the foreign agents the memberlist member knows
        (their rows carry ``"wire": "memberlist"``)."""
        serf = self._serf()
        view = serf.core.members_view(serf.view())
        members = list(view["members"])
        memberlist = self._svc.memberlist
        if memberlist is not None:
            members += memberlist.core.serf_rows({m["name"] for m in members})
        alive = sum(1 for m in members if m["status"] == "alive")
        return SerfMembers(node=view["node"], members=members, total=len(members), alive=alive,
                           clocks=SerfClocks(**view["clocks"]))

    async def serf_join(self, req: SerfJoinRequest) -> SerfJoined:
        """Join a real Serf agent (push-pull over TCP); needs ``[autodiscovery.serf] wire = "serf"``."""
        svc = self._svc
        if svc.memberlist is None:
            raise conflict(f"{self._node_id} runs no memberlist member: set [autodiscovery.serf] wire = \"serf\" "
                           "to talk to Serf agents", "address")
        try:
            learned = await svc.join_serf(req.address)
        except PermissionError as exc:
            raise forbidden(f"address: not dialled: {exc}", "address") from None
        except ValueError as exc:
            raise unprocessable(str(exc), "address") from None
        except (OSError, TimeoutError) as exc:
            raise unavailable(f"address: could not join the Serf agent at {req.address}: {exc}", "address") from None
        return SerfJoined(joined=True, node=self._node_id, address=req.address, members_learned=learned,
                          members=svc.memberlist.members())

    async def serf_event(self, req: SerfEventRequest) -> SerfEventSent:
        """The name is checked only once Serf is known to be on, so a disabled Serf answers "conflict" first."""
        serf = self._serf()
        name, payload, coalesce = req.name, req.payload, req.coalesce
        if not name:
            raise unprocessable("name must not be empty", "name")
        try:
            result, sent = await serf.user_event(name, payload.encode(), coalesce)
        except SerfSizeLimitExceeded as exc:
            raise unprocessable(f"payload: {exc}", "payload") from None
        if self._svc.memberlist is not None:  # and to the real Serf agents this node knows
            sent += self._svc.memberlist.user_event(int(result["ltime"]), name, payload.encode(), coalesce)
        return SerfEventSent(event_sent=result["event_sent"], ltime=result["ltime"], node=self._node_id, name=name,
                             coalesce=coalesce, gossiped_to=sent)

    def serf_events(self, req: SerfEventsRequest) -> SerfEvents:
        return SerfEvents(**self._serf().core.events_view(self._node_id, req.limit))

    async def serf_query(self, req: SerfQueryRequest) -> SerfQueryResult:
        """Checked after Serf is known to be on, as ``serf_event``; the timeout defaults to Serf's formula."""
        serf = self._serf()
        name, payload, timeout_ms = req.name, req.payload, req.timeout_ms
        if not name:
            raise unprocessable("name must not be empty", "name")
        if timeout_ms is not None and not 1 <= timeout_ms <= 60_000:
            raise unprocessable("timeout_ms must be in 1..60000", "timeout_ms")
        nodes, tags, relay = _query_filters(req)
        try:
            state, start, end = await serf.query(name, payload.encode(),
                                                 None if timeout_ms is None else timeout_ms / 1000.0,
                                                 filter_nodes=nodes, filter_tags=tags, relay_factor=relay)
        except SerfSizeLimitExceeded as exc:
            raise unprocessable(f"payload: {exc}", "payload") from None
        expected = sorted(self._svc.node.live_members())
        body: dict[str, Any] = state.result(end)
        return SerfQueryResult(
            query_id=body["query_id"],
            responses=[SerfQueryResponse(**r) for r in body["responses"]],
            acks=body["acks"],
            timed_out=body["timed_out"],
            node=self._node_id,
            name=name,
            responses_received=len(state.responses),
            expected=expected,
            timeout_ms=round((state.deadline - start) * 1000),
            duration_ms=round((end - start) * 1000, 3),
        )

    # ------------------------------------------------------------ anti-entropy (030)
    def _require_ae(self) -> None:
        if not self._svc.ae_adapter.core.enabled:
            raise conflict(f"anti-entropy is disabled on {self._node_id}; enable it in the TOML "
                           f"config: {HOW_TO['anti_entropy']}")

    async def anti_entropy_sync(self, req: AntiEntropySyncRequest) -> AntiEntropySyncReport:
        """A failed session counts in the status (``syncs_failed``) and answers "unavailable" naming the target."""
        from rustyray.transport.mesh import RequestFailed

        target_node = req.target_node
        self._require_ae()
        peers = self._svc.node.peers
        if target_node == self._node_id:
            raise unprocessable("target_node must be another node, not the one running the sync", "target_node")
        if target_node not in peers:
            known = ", ".join(sorted(peers)) or "none"
            raise not_found(f"target_node {target_node!r} is not a known peer of {self._node_id} "
                            f"(known: {known})", "target_node")
        ae = self._svc.ae_adapter
        try:
            report = await ae.sync_with(target_node)
        except (ConnectionError, OSError, TimeoutError, RequestFailed, AutodiscoveryError) as exc:
            ae.core.failed()
            raise unavailable(f"target_node {target_node!r}: sync failed: {type(exc).__name__}: {exc}",
                              "target_node") from None
        return AntiEntropySyncReport.from_report(report)

    def anti_entropy_status(self) -> AntiEntropyStatus:
        self._require_ae()
        ae = self._svc.ae_adapter
        body = ae.core.status(ae.tree(), ae.state_source()[0])
        view = {nid: ViewEntry(**row) for nid, row in body.pop("view").items()}
        return AntiEntropyStatus(**body, view=view)


MAX_RELAY_FACTOR = 5
"""The largest ``relay_factor`` accepted: each answer then costs six packets; Serf's docs suggest 1 to 3."""


def _query_filters(req: SerfQueryRequest) -> tuple[list[str] | None, dict[str, str] | None, int]:
    """``filter_nodes``, ``filter_tags`` and ``relay_factor`` of a query, checked (422 naming the field)."""
    nodes, tags, relay = req.filter_nodes, req.filter_tags, req.relay_factor
    if nodes is not None and (not isinstance(nodes, list) or not all(isinstance(n, str) and n for n in nodes)):
        raise unprocessable("filter_nodes must be a list of non-empty node names", "filter_nodes")
    if tags is not None:
        if not isinstance(tags, dict) or not all(isinstance(k, str) and k and isinstance(v, str)
                                                 for k, v in tags.items()):
            raise unprocessable("filter_tags must map tag names to regular expressions", "filter_tags")
        for tag, expr in tags.items():
            try:
                re.compile(expr)
            except re.error as exc:
                raise unprocessable(f"filter_tags[{tag!r}]: bad regular expression {expr!r}: {exc}",
                                    "filter_tags") from None
    if isinstance(relay, bool) or not isinstance(relay, int) or not 0 <= relay <= MAX_RELAY_FACTOR:
        raise unprocessable(f"relay_factor must be an integer in 0..{MAX_RELAY_FACTOR}", "relay_factor")
    return nodes or None, tags or None, relay
