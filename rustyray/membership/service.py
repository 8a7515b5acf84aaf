"""Membership service: SWIM (with Lifeguard) for liveness, Raft for the configuration.

Theory of operation. SWIM decides who is alive: its probes, acks, indirect probes
and piggybacked updates travel over the node's mTLS connections, addressed by
node id (a seed not yet known by id is addressed as ``seed:host:port``). Its
events feed a versioned ``MembershipView`` and the event stream behind GraphQL
subscriptions, and teach the node's peer table the members' addresses. Raft keeps
the authoritative member set: bootstrap writes the initial configuration, a join
adds the server through the log (one at a time), a graceful leave removes it (the
leader hands off first). Both live in the node's state directory, so a node that
Ray restarts comes back with its Raft log, a higher SWIM incarnation and the
addresses of the peers it knew, and rejoins by itself.

Where things are. This file composes the service and holds its state on disk
(``cluster.json``); ``swim_adapter.py`` drives the SWIM core and sends best effort;
``raft_driver.py`` drives the Raft core; ``formation_adapter.py`` bootstraps, joins,
changes and leaves the configuration. Their decisions are sans-I/O cores:
``formation.py`` (bootstrap, join, changes, the cluster record), ``swim_bridge.py``
(SWIM <-> peer table, anti-entropy, read-outs), ``event_log.py`` and ``view.py``.
The management operations are ``api.py``; the wire messages ``messages.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from typing import TYPE_CHECKING, Any

from rustyray.membership import swim_bridge
from rustyray.membership.api import MembershipApi
from rustyray.membership.event_log import EventLog
from rustyray.membership.formation import ClusterRecord, plan_start
from rustyray.membership.formation_adapter import FormationAdapter
from rustyray.membership.raft import RaftEntry
from rustyray.membership.raft.messages import RaftMessage
from rustyray.membership.raft_driver import RaftDriver
from rustyray.membership.swim.config import SwimConfig
from rustyray.membership.swim.core import SwimNode
from rustyray.membership.swim.events import MemberState, NodeJoined
from rustyray.membership.swim_adapter import SwimAdapter
from rustyray.membership.view import MembershipView

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext


class MembershipService:
    def __init__(self, node: Host) -> None:
        self.node = node
        self.rng = random.Random()
        self.swim_config: SwimConfig = node.config.cluster.swim
        self.raft_config = node.config.cluster.raft.for_node(node.node_id)
        self.bootstrap_expect = node.config.cluster.membership.bootstrap_expect
        self.view = MembershipView()
        self.event_log = EventLog(node.node_id)
        self._event_signal = asyncio.Event()
        self.record = ClusterRecord()
        self.swim_adapter = SwimAdapter(node, self.swim_config, self.rng, on_event=self._on_swim_event,
                                        on_changed=self._on_swim_changed)
        self.raft = RaftDriver(node, self.raft_config, node.config.node_dir / "raft",
                               send=self.swim_adapter.send, on_apply=self._apply_entry)
        self.formation = FormationAdapter(node, self.raft, self.swim_adapter, self.record,
                                          bootstrap_expect=self.bootstrap_expect, save=self._save_cluster)
        self.joined_at = time.time()
        for t in RaftMessage.__args__ if hasattr(RaftMessage, "__args__") else ():
            node.on(t, self._on_raft)
        self.api = MembershipApi(self, wall_clock=time.time)

    @property
    def swim(self) -> SwimNode | None:
        """The SWIM core (None before ``start``)."""
        return self.swim_adapter.core

    @property
    def cluster_name(self) -> str | None:
        return self.record.name

    @property
    def cluster_id(self) -> str | None:
        return self.record.id

    @property
    def config_log(self) -> Any:
        """Recent configuration entries (conf changes and JSON entries), oldest first."""
        return self.record.log

    # ------------------------------------------------------------------ persistence
    @property
    def _cluster_file(self):
        return self.node.config.node_dir / "cluster.json"

    def _save_cluster(self) -> None:
        peers = {p.node_id: [p.tcp_address, p.quic_address] for p in self.node.peers.values() if p.wanted}
        tmp = self._cluster_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.record.snapshot(peers)))
        os.replace(tmp, self._cluster_file)

    def _load_cluster(self) -> dict[str, Any]:
        try:
            return json.loads(self._cluster_file.read_text())
        except (OSError, ValueError):
            return {}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        node = self.node
        now = time.monotonic()
        self.swim_adapter.create(now)  # first: learning a peer below joins SWIM through it (on_peer_event)
        self.view.add_local(node.node_id, time.time(), incarnation=node.incarnation,
                            tcp_address=node.tcp_address, quic_address=node.quic_address)
        plan = plan_start(node.node_id, self.record.restore(self._load_cluster()), node.config.seeds)
        for peer_id, (tcp, quic) in plan.learn.items():
            node.learn_peer(peer_id, tcp, quic)
        if self.raft.has_state():
            self.raft.restore()
        self.swim_adapter.run()
        if plan.swim_seeds:
            self.swim_adapter.join(plan.swim_seeds, now)
        if plan.join_raft:
            node.spawn(self.formation.join_via_seeds(), name="raft join")
        self.swim_adapter.wake()

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._save_cluster()
        await self.raft.stop()

    def health(self) -> tuple[str, str]:
        if self.swim is None:
            return "failed", "not started"
        suspects = [m.node_id for m in self.swim.members() if m.state is MemberState.SUSPECT]
        if not self.raft.started:
            return "degraded", "not bootstrapped (POST /membership/bootstrap)"
        if self.raft.leader is None:
            return "degraded", "no Raft leader"
        if suspects:
            return "degraded", f"suspected: {', '.join(suspects)}"
        return "healthy", ""

    async def leave(self) -> bool:
        """Leave gracefully: the Raft configuration (True once removed from it), then SWIM."""
        assert self.swim is not None
        removed = await self.formation.leave()
        await self.swim_adapter.leave()
        self.emit("NodeLeft", self.node.node_id)
        return removed

    def forget_member(self, node_id: str) -> None:
        """A member removed from the configuration on its behalf: out of the peer table and the view."""
        self.node.forget_peer(node_id)
        self.view.remove(node_id, time.time())
        self.emit("NodeLeft", node_id)

    # ------------------------------------------------------------------ SWIM events
    def _on_swim_event(self, ev: Any) -> None:
        update = swim_bridge.peer_update(ev)
        if isinstance(update, swim_bridge.LearnPeer):
            self.node.learn_peer(update.node_id, update.tcp_address, update.quic_address, update.incarnation)
        elif isinstance(update, swim_bridge.ForgetPeer):
            self.node.forget_peer(update.node_id)
        self.view.apply(ev, time.time())
        name = swim_bridge.EVENT_NAMES.get(type(ev))
        if name is not None:
            self.emit(name, ev.node_id)
        if isinstance(ev, NodeJoined):
            self.formation.on_member_joined()

    def _on_swim_changed(self) -> None:
        with contextlib.suppress(OSError):
            self._save_cluster()

    def on_peer_event(self, event: str, peer_id: str) -> None:
        # a peer learnt by discovery or by an inbound hello, not yet in SWIM: join through it
        if self.swim is not None and swim_bridge.joins_through(event, self.swim.member(peer_id)):
            self.swim_adapter.join([peer_id], time.monotonic())

    # ------------------------------------------------------------------ events
    def emit(self, event_type: str, node_id: str) -> None:
        """Append a peer event (NodeJoined, NodeLeft, NodeSuspected, NodeFailed, NodeRecovered)."""
        self.event_log.append(event_type, node_id, time.time())
        self._event_signal.set()
        self._event_signal = asyncio.Event()

    async def wait_for_event(self, timeout_s: float) -> None:
        """Return at the next ``emit`` or after ``timeout_s`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event_signal.wait(), timeout_s)

    # ------------------------------------------------------------------ Raft driving
    def _on_raft(self, ctx: RequestContext, msg: Any) -> None:
        if self.raft.started:
            self.raft.step(msg)
        elif not self.formation.rejoining and ctx.peer_id and getattr(msg, "to_id", None) == self.node.node_id:
            # we are being added by a leader and have no log yet: become an empty follower
            self.raft.join_empty()
            self.raft.step(msg)

    def _apply_entry(self, entry: RaftEntry) -> None:
        if self.record.apply(entry):
            with contextlib.suppress(OSError):
                self._save_cluster()

    # ------------------------------------------------------------------ membership queries
    def live_members(self) -> list[str]:
        if self.swim is None:
            return [self.node.node_id]
        return swim_bridge.live_members(self.swim.members())

    def state_counts(self) -> dict[str, int] | None:
        """Members of the SWIM view per state (every state listed), None before SWIM runs."""
        return None if self.swim is None else swim_bridge.state_counts(self.swim.members())

    def raft_status(self) -> dict[str, Any]:
        return self.raft.status()

    def entries(self) -> dict[str, tuple[int, str]]:
        """SWIM state as (incarnation, status) per node, for anti-entropy."""
        return {} if self.swim is None else swim_bridge.entries(self.swim.members())

    def apply_entries(self, entries: list[tuple[str, int, str]]) -> None:
        """Feed repaired entries back as SWIM updates (the core applies its own precedence rules)."""
        self.swim_adapter.repair(entries)
