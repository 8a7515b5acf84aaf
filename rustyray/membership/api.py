"""The membership management operations (SWIM, Raft, the view, join/leave/bootstrap): ``MembershipApi``.

Why a facade: input validation and the API contract (operation names and arguments, response
fields, which error names which field) live apart from the I/O adapters (``service.py``,
``swim_adapter.py``, ``formation_adapter.py``), so that those only drive SWIM and Raft and move
messages, and the contract reads in one place. ``Node.call_api("membership", op, kwargs)`` calls
the public methods here by name (``svc.api.<op>``); each raises a ``rustyray.errors`` error that
names the offending field. The wall clock (for timestamps in responses) is injected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.errors import conflict, unprocessable
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
    def members(self) -> dict[str, Any]:
        swim = self._svc.swim
        assert swim is not None
        return {"node": self._node_id, "members": member_rows(swim.members(), self._svc.raft.members())}

    def view(self) -> dict[str, Any]:
        svc = self._svc
        body = svc.view.to_dict(include_departed=False)
        return {**body, "observer": self._node_id, "cluster_name": svc.cluster_name, "cluster_id": svc.cluster_id}

    def swim_status(self) -> dict[str, Any]:
        svc = self._svc
        swim = svc.swim
        assert swim is not None
        body = swim.status()
        body.update(node=self._node_id, incarnation=swim.incarnation, awareness=swim.awareness,
                    lifeguard=svc.swim_config.lifeguard, indirect_checks=svc.swim_config.indirect_checks)
        return body

    def gossip_state(self) -> dict[str, Any]:
        swim = self._svc.swim
        assert swim is not None
        return {**swim.gossip_state(), "node": self._node_id, "protocol": "SWIM"}

    def raft_status(self) -> dict[str, Any]:
        svc = self._svc
        cfg = svc.raft_config
        status = svc.raft.status()
        status["node"] = self._node_id
        status["cluster_name"] = svc.cluster_name
        status["cluster_id"] = svc.cluster_id
        status["election_timeout_ms"] = [round(cfg.election_tick * cfg.tick_interval * 1000),
                                         round(2 * cfg.election_tick * cfg.tick_interval * 1000)]
        status["configuration_log"] = list(svc.config_log)[-20:]
        return status

    async def events(self, cursor: int = 0, timeout_s: float = 0.0) -> dict[str, Any]:
        """Events after ``cursor`` (long-polls up to ``timeout_s`` when there are none yet)."""
        log = self._svc.event_log
        if cursor >= log.seq and timeout_s > 0:
            await self._svc.wait_for_event(min(timeout_s, EVENTS_MAX_WAIT_S))
        return {"events": log.after(cursor), "cursor": log.seq, "node": self._node_id}

    # ------------------------------------------------------------------ changes
    async def bootstrap(self, cluster_name: str, members: dict[str, dict[str, str]],
                        replication_factor: int | None = None) -> dict[str, Any]:
        svc = self._svc
        if svc.raft.started:
            raise conflict(f"this node already belongs to cluster {svc.cluster_name!r} "
                                f"({svc.cluster_id}); bootstrap only forms a new cluster", "initial_nodes")
        if self._node_id not in members:
            raise unprocessable("the bootstrapping node must be one of the initial nodes", "initial_nodes")
        if replication_factor is not None and not 1 <= replication_factor <= len(members):
            raise unprocessable(f"replication_factor must be between 1 and {len(members)}", "replication_factor")
        table = {n: [m["address"], m.get("quic_address", "")] for n, m in members.items()}
        formation = svc.formation
        cluster_id, unreached = await formation.bootstrap_all(cluster_name, table)
        leader = await formation.wait_for_leader(LEADER_WAIT_S)
        record_error = None if leader is None else \
            await formation.record_cluster(cluster_name, cluster_id, replication_factor, leader)
        return bootstrap_report(BootstrapOutcome(cluster_name, cluster_id, tuple(table), unreached, leader,
                                                 record_error, LEADER_WAIT_S))

    async def leave(self, reason: str = "requested") -> dict[str, Any]:
        """Graceful leave: hand off leadership, leave the Raft configuration, announce Left over SWIM."""
        svc = self._svc
        removed = await svc.leave()
        size = len([m for m in svc.live_members() if m != self._node_id])
        return {"success": True, "node_id": self._node_id, "reason": reason, "removed_from_raft": removed,
                "cluster_size": size, "left_at": iso_utc(self._wall_clock()), "membership_version": svc.view.version}

    async def remove(self, node_id: str) -> dict[str, Any]:
        """Remove a (dead) member from the configuration on its behalf."""
        svc = self._svc
        result = await svc.formation.change(MembershipChange(op="remove", node_id=node_id))
        if not result.ok:
            raise conflict(f"could not remove {node_id}: {result.error}", "node_id")
        svc.forget_member(node_id)
        return {"success": True, "node_id": node_id, "members": result.members}
