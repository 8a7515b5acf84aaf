"""The membership management operations (SWIM, Raft, the view, join/leave/bootstrap): ``MembershipApi``.

Why a facade: input validation and the API contract (operation names and arguments, response
fields, which error names which field) live apart from the I/O adapters (``service.py``,
``swim_adapter.py``, ``formation_adapter.py``), so that those only drive SWIM and Raft and move
messages, and the contract reads in one place. ``Node.call_api("membership", op, kwargs)`` calls
the public methods here by name (``svc.api.<op>``); an operation with arguments takes one request
dataclass and each returns a result dataclass (``api_types.py``, the schema).
Each raises a ``rustyray.errors`` error that names the offending field. The wall clock (for
timestamps in responses) is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rustyray.errors import conflict, unprocessable
from rustyray.membership.api_types import (
    BootstrapRequest,
    BootstrapResult,
    EventsReport,
    EventsRequest,
    GossipState,
    LeaveRequest,
    LeaveResult,
    MembershipViewReport,
    MembersReport,
    RaftStatusReport,
    RemoveRequest,
    RemoveResult,
    SwimStatus,
)
from rustyray.membership.formation import LEADER_WAIT_S, BootstrapOutcome, bootstrap_report
from rustyray.membership.messages import MembershipChange
from rustyray.membership.swim_bridge import member_rows
from rustyray.membership.view import iso_utc

if TYPE_CHECKING:
    from rustyray.membership.service import MembershipService

__all__ = ["EVENTS_MAX_WAIT_S", "MembershipApi"]

EVENTS_MAX_WAIT_S = 30.0
"""Longest long-poll of ``events`` (seconds), whatever ``timeout_s`` asks."""


class MembershipApi:
    """One method per management operation of the membership service."""

    def __init__(self, service: MembershipService, *, wall_clock: Callable[[], float]) -> None:
        self._svc = service
        self._node_id = service.node.node_id
        self._wall_clock = wall_clock

    # ------------------------------------------------------------------ reads
    def members(self) -> MembersReport:
        swim = self._svc.swim
        assert swim is not None
        return MembersReport(node=self._node_id, members=member_rows(swim.members(), self._svc.raft.members()))

    def view(self) -> MembershipViewReport:
        svc = self._svc
        body = svc.view.to_dict(include_departed=False)
        return MembershipViewReport(**body, observer=self._node_id, cluster_name=svc.cluster_name,
                                    cluster_id=svc.cluster_id)

    def swim_status(self) -> SwimStatus:
        svc = self._svc
        swim = svc.swim
        assert swim is not None
        return SwimStatus(**swim.status(), node=self._node_id, incarnation=swim.incarnation,
                          awareness=swim.awareness, lifeguard=svc.swim_config.lifeguard,
                          indirect_checks=svc.swim_config.indirect_checks)

    def gossip_state(self) -> GossipState:
        swim = self._svc.swim
        assert swim is not None
        return GossipState(**swim.gossip_state(), node=self._node_id, protocol="SWIM")

    def raft_status(self) -> RaftStatusReport:
        svc = self._svc
        cfg = svc.raft_config
        tick_ms = cfg.election_tick * cfg.tick_interval * 1000
        return RaftStatusReport(status=svc.raft.status(), node=self._node_id, cluster_name=svc.cluster_name,
                                cluster_id=svc.cluster_id, election_timeout_ms=[round(tick_ms), round(2 * tick_ms)],
                                configuration_log=list(svc.config_log)[-20:])

    async def events(self, req: EventsRequest) -> EventsReport:
        """Long-polls (up to ``timeout_s``, capped) so a watcher need not spin when nothing happened."""
        log = self._svc.event_log
        if req.cursor >= log.seq and req.timeout_s > 0:
            await self._svc.wait_for_event(min(req.timeout_s, EVENTS_MAX_WAIT_S))
        return EventsReport(events=log.after(req.cursor), cursor=log.seq, node=self._node_id)

    # ------------------------------------------------------------------ changes
    async def bootstrap(self, req: BootstrapRequest) -> BootstrapResult:
        """Refuses a node that already has a cluster: bootstrap writes a fresh configuration."""
        svc = self._svc
        members = req.members
        if svc.raft.started:
            raise conflict(f"this node already belongs to cluster {svc.cluster_name!r} "
                           f"({svc.cluster_id}); bootstrap only forms a new cluster", "initial_nodes")
        if self._node_id not in members:
            raise unprocessable("the bootstrapping node must be one of the initial nodes", "initial_nodes")
        rf = req.replication_factor
        if rf is not None and not 1 <= rf <= len(members):
            raise unprocessable(f"replication_factor must be between 1 and {len(members)}", "replication_factor")
        table = {n: [m["address"], m.get("quic_address", "")] for n, m in members.items()}
        formation = svc.formation
        cluster_id, unreached = await formation.bootstrap_all(req.cluster_name, table)
        leader = await formation.wait_for_leader(LEADER_WAIT_S)
        record_error = None if leader is None else \
            await formation.record_cluster(req.cluster_name, cluster_id, rf, leader)
        return BootstrapResult.from_report(bootstrap_report(BootstrapOutcome(
            req.cluster_name, cluster_id, tuple(table), unreached, leader, record_error, LEADER_WAIT_S)))

    async def leave(self, req: LeaveRequest) -> LeaveResult:
        """Graceful leave: hand off leadership, leave the Raft configuration, announce Left over SWIM."""
        svc = self._svc
        removed = await svc.leave()
        size = len([m for m in svc.live_members() if m != self._node_id])
        return LeaveResult(success=True, node_id=self._node_id, reason=req.reason, removed_from_raft=removed,
                           cluster_size=size, left_at=iso_utc(self._wall_clock()),
                           membership_version=svc.view.version)

    async def remove(self, req: RemoveRequest) -> RemoveResult:
        """Remove a (dead) member from the configuration on its behalf."""
        svc = self._svc
        result = await svc.formation.change(MembershipChange(op="remove", node_id=req.node_id))
        if not result.ok:
            raise conflict(f"could not remove {req.node_id}: {result.error}", "node_id")
        svc.forget_member(req.node_id)
        return RemoveResult(success=True, node_id=req.node_id, members=result.members)

