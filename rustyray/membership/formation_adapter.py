"""The Raft configuration over the wire: bootstrap, join, change and leave (the I/O half of ``formation``).

Answers ``ClusterBootstrap`` and ``MembershipChange``; sends them (a bootstrap to every initial
member, a change forwarded to the leader, a join request through the connected peers); proposes
through the ``RaftDriver``; and waits (for the first leader, for a change to commit, for a
leadership handoff). What to do at each step (where a change goes, when to retry, whom to hand
off to, what a bootstrap writes) is decided by ``formation.py``; the cluster's identity lives in
its ``ClusterRecord``, which the service persists (``save``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from rustyray.membership.formation import (
    BOOTSTRAP_REQUEST_TIMEOUT_S,
    CHANGE_RETRY,
    CHANGE_TIMEOUT_S,
    FORWARD_TIMEOUT_S,
    HANDOFF_POLL,
    JOIN_REQUEST_TIMEOUT_S,
    JOIN_RETRY,
    LEADER_POLL_S,
    LEADER_WAIT_S,
    RETRYABLE_CHANGE_ERRORS,
    ClusterRecord,
    Forward,
    InEffect,
    Refuse,
    cluster_entry,
    expect_bootstrap,
    handoff_target,
    join_steps,
    plan_bootstrap,
    route_change,
)
from rustyray.membership.messages import (
    ClusterBootstrap,
    ClusterRecordProposal,
    MembershipChange,
    MembershipChangeResult,
)
from rustyray.membership.raft import NotLeader, RaftError

if TYPE_CHECKING:
    from rustyray.membership.raft_driver import RaftDriver
    from rustyray.membership.swim_adapter import SwimAdapter
    from rustyray.protocol.messages import Message
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)

__all__ = ["FormationAdapter"]


def _error_text(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # a TimeoutError has no message


class FormationAdapter:
    def __init__(self, node: Host, raft: RaftDriver, swim: SwimAdapter, record: ClusterRecord, *,
                 bootstrap_expect: int, save: Callable[[], None]) -> None:
        self.node = node
        self.raft = raft
        self.swim = swim
        self.record = record
        self.bootstrap_expect = bootstrap_expect
        self._save = save
        self.rejoining = False
        """True while a node without Raft state waits for a voter of its name to be removed: it must not
        take part in Raft under the old identity meanwhile (``join_steps``)."""
        node.on(ClusterBootstrap, self._on_bootstrap)
        node.on(MembershipChange, self._on_change)
        node.on(ClusterRecordProposal, self._on_record)

    # ------------------------------------------------------------------ bootstrap
    async def _on_bootstrap(self, ctx: RequestContext, msg: ClusterBootstrap) -> Message | None:
        self.bootstrap_local(msg.cluster_name, msg.cluster_id, msg.members)
        return MembershipChangeResult(ok=True, members=sorted(msg.members))

    def bootstrap_local(self, cluster_name: str, cluster_id: str, members: dict[str, list[str]]) -> None:
        """Write the first configuration here (nothing when this node already has a Raft log)."""
        if self.raft.started:
            return
        self.record.name, self.record.id = cluster_name, cluster_id
        plan = plan_bootstrap(self.node.node_id, members)
        for node_id, (tcp, quic) in plan.learn.items():
            self.node.learn_peer(node_id, tcp, quic)
        self.raft.bootstrap(plan.voters)
        self.swim.join(plan.swim_seeds, time.monotonic())
        self._save()

    def on_member_joined(self) -> None:
        """SWIM saw a member join: with ``bootstrap_expect``, bootstrap if this node is the one to."""
        core = self.swim.core
        if not self.bootstrap_expect or self.raft.started or core is None:
            return
        members = expect_bootstrap(self.node.node_id, self.bootstrap_expect, core.members())
        if members is not None:
            self.node.spawn(self._bootstrap_expected(members), name="bootstrap_expect")

    async def _bootstrap_expected(self, members: dict[str, list[str]]) -> None:
        """The ``bootstrap_expect`` bootstrap, then the cluster record through the first leader."""
        name = self.node.config.cluster_name
        cluster_id, unreached = await self.bootstrap_all(name, members)
        leader = await self.wait_for_leader(LEADER_WAIT_S)
        error = "no leader" if leader is None else await self.record_cluster(name, cluster_id, None, leader)
        if error is not None or unreached:
            log.warning("bootstrap_expect of %s: unreached %s, cluster record: %s", cluster_id, unreached,
                        error or "committed")

    async def bootstrap_all(self, cluster_name: str, members: dict[str, list[str]]) -> tuple[str, dict[str, str]]:
        """Bootstrap here and on every other initial member; returns the new cluster id and the members that
        did not acknowledge (-> error)."""
        cluster_id = f"cluster-{uuid.uuid4().hex[:12]}"
        self.bootstrap_local(cluster_name, cluster_id, members)
        msg = ClusterBootstrap(cluster_name=cluster_name, cluster_id=cluster_id, members=members)
        others = [n for n in members if n != self.node.node_id]
        results = await asyncio.gather(*(self.node.request(n, msg, timeout=BOOTSTRAP_REQUEST_TIMEOUT_S)
                                         for n in others), return_exceptions=True)
        failed = {n: _error_text(r) for n, r in zip(others, results, strict=True) if isinstance(r, BaseException)}
        failed.update({n: r.error or "refused" for n, r in zip(others, results, strict=True)
                       if isinstance(r, MembershipChangeResult) and not r.ok})
        if failed:
            log.warning("bootstrap could not reach %s", failed)
        return cluster_id, failed

    async def wait_for_leader(self, timeout_s: float) -> str | None:
        """The Raft leader once there is one, or None after ``timeout_s`` seconds."""
        leader = None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.raft.leader
            if leader is not None:
                break
            await asyncio.sleep(LEADER_POLL_S)
        return leader

    async def record_cluster(self, cluster_name: str, cluster_id: str, replication_factor: int | None,
                             leader: str) -> str | None:
        """Commit the cluster's identity through ``leader`` (here, or asked over the wire); None when it
        committed, else the error."""
        if leader == self.node.node_id:
            return await self._propose_record(cluster_name, cluster_id, replication_factor)
        msg = ClusterRecordProposal(cluster_name=cluster_name, cluster_id=cluster_id,
                                    replication_factor=replication_factor)
        try:
            reply = await self.node.request(leader, msg, timeout=FORWARD_TIMEOUT_S)
        except Exception as exc:  # the leader's link: any failure is an answer to report, not to raise
            return f"leader {leader} unreachable: {_error_text(exc)}"
        assert isinstance(reply, MembershipChangeResult)
        return None if reply.ok else reply.error or "refused by the leader"

    async def _propose_record(self, cluster_name: str, cluster_id: str, replication_factor: int | None) -> str | None:
        try:
            await self.raft.propose(cluster_entry(cluster_name, cluster_id, replication_factor))
        except NotLeader as exc:
            return f"leadership moved to {exc.leader_id or 'no one yet'} before the record committed"
        except (RaftError, TimeoutError) as exc:
            return _error_text(exc)
        return None

    async def _on_record(self, ctx: RequestContext, msg: ClusterRecordProposal) -> Message:
        error = await self._propose_record(msg.cluster_name, msg.cluster_id, msg.replication_factor)
        return MembershipChangeResult(ok=error is None, leader=self.raft.leader or "", error=error or "")

    # ------------------------------------------------------------------ changes
    async def _on_change(self, ctx: RequestContext, msg: MembershipChange) -> Message:
        return await self.change(msg)

    async def change(self, msg: MembershipChange) -> MembershipChangeResult:
        """Apply a membership change on the leader, or forward it there."""
        raft = self.raft
        route = route_change(msg, started=raft.started, is_leader=raft.is_leader, leader=raft.leader,
                             voters=raft.members())
        if isinstance(route, Refuse):
            return route.result()
        if isinstance(route, Forward):
            try:
                reply = await self.node.request(route.leader, route.change, timeout=FORWARD_TIMEOUT_S)
            except Exception as exc:
                return MembershipChangeResult(ok=False, error=f"leader {route.leader} unreachable: {exc}")
            assert isinstance(reply, MembershipChangeResult)
            return reply
        if isinstance(route, InEffect):
            return self.result(True)
        if route.learn is not None:
            self.node.learn_peer(route.node_id, *route.learn)
        last = ""
        for pause in CHANGE_RETRY.pauses():
            try:
                await raft.change(route.op, route.node_id, timeout=CHANGE_TIMEOUT_S)
                return self.result(True)
            except RETRYABLE_CHANGE_ERRORS as exc:
                last = str(exc)
                await asyncio.sleep(pause)  # another change is in flight: wait for it to commit
            except NotLeader as exc:
                return MembershipChangeResult(ok=False, leader=exc.leader_id or "", error="leadership changed")
            except TimeoutError:
                return MembershipChangeResult(ok=False, error="the change did not commit in time")
        return MembershipChangeResult(ok=False, error=last)

    def result(self, ok: bool) -> MembershipChangeResult:
        return self.record.result(ok, self.raft.leader, self.raft.members())

    async def join_via_seeds(self) -> None:
        """A new node, or one that lost its state, asks the cluster (through any peer it reaches) to make it
        a member: the steps of ``join_steps``, each answered ok before the next."""
        node = self.node
        steps = join_steps(node.node_id, node.tcp_address, node.quic_address, has_raft_state=self.raft.has_state())
        self.rejoining = len(steps) > 1
        try:
            for msg in steps:
                reply = await self._ask_any_peer(msg)
                if reply is None:
                    log.warning("%s could not join the Raft configuration (%s)", node.node_id, msg.op)
                    return
                self.rejoining = False  # the old voter of our name is gone (or never was): join as a new one
            assert reply is not None
            self.record.adopt(reply.cluster_name, reply.cluster_id)
            with contextlib.suppress(OSError):
                self._save()
        finally:
            self.rejoining = False

    async def _ask_any_peer(self, msg: MembershipChange) -> MembershipChangeResult | None:
        node = self.node
        for pause in JOIN_RETRY.pauses():
            for peer_id in [p for p in list(node.peers) if node.peers[p].connected]:
                try:
                    reply = await node.request(peer_id, msg, timeout=JOIN_REQUEST_TIMEOUT_S)
                except Exception:
                    continue
                if isinstance(reply, MembershipChangeResult) and reply.ok:
                    return reply
            await asyncio.sleep(pause)
        return None

    async def leave(self) -> bool:
        """Hand off leadership (when leading), then leave the configuration; True once removed."""
        raft, own = self.raft, self.node.node_id
        if not raft.started or own not in raft.members():
            return False
        core = self.swim.core
        assert core is not None
        if raft.is_leader:
            target = handoff_target(own, raft.members(), core.state_of)
            if target is not None:
                with contextlib.suppress(RaftError):
                    raft.transfer_leadership(target)
                for pause in HANDOFF_POLL.pauses():
                    if not raft.is_leader and raft.leader:
                        break
                    await asyncio.sleep(pause)
        result = await self.change(MembershipChange(op="remove", node_id=own))
        return result.ok
