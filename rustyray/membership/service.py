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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
import uuid
from collections import deque
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from rustyray.errors import ApiError
from rustyray.membership.raft import (
    ConfChangeRejected,
    EntryKind,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RaftEntry,
    RaftError,
    decode_conf_change,
)
from rustyray.membership.raft.messages import RaftMessage
from rustyray.membership.raft_driver import RaftDriver
from rustyray.membership.swim import messages as swim_messages
from rustyray.membership.swim.config import SwimConfig
from rustyray.membership.swim.core import SwimNode
from rustyray.membership.swim.events import (
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    NodeSuspected,
    NodeUpdated,
)
from rustyray.membership.view import MembershipView, iso_utc
from rustyray.protocol.messages import Message
from rustyray.transport.tcp import parse_address

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)

SWIM_TYPES = tuple(
    getattr(swim_messages, n) for n in ("SwimPing", "SwimAck", "SwimPingReq", "SwimNack", "SwimGossip",
                                        "SwimPushPull", "SwimAlive", "SwimSuspect", "SwimDead", "SwimLeft")
)
EVENT_NAMES = {NodeJoined: "NodeJoined", NodeRecovered: "NodeRecovered", NodeSuspected: "NodeSuspected",
               NodeFailed: "NodeFailed", NodeLeft: "NodeLeft"}


class ClusterBootstrap(Message):
    """Sent by the bootstrapping node: every initial member writes the same first configuration."""

    cluster_name: str
    cluster_id: str
    members: dict[str, list[str]]  # node_id -> [tcp_address, quic_address]


class MembershipChange(Message):
    """Ask the Raft leader (forwarded if needed) to add or remove a server."""

    op: str  # "add" | "remove"
    node_id: str
    tcp_address: str = ""
    quic_address: str = ""
    hops: int = 0


class MembershipChangeResult(Message):
    ok: bool
    leader: str = ""
    members: list[str] = []
    error: str = ""
    cluster_name: str = ""
    cluster_id: str = ""


def _swim_config(table: dict[str, Any]) -> SwimConfig:
    base = SwimConfig.lan()
    names = {f.name for f in fields(SwimConfig)}
    unknown = set(table) - names
    if unknown:
        raise ValueError(f"[swim] has no setting(s) {sorted(unknown)}; known: {sorted(names)}")
    from dataclasses import replace

    return replace(base, **table).validate()


def _raft_config(node_id: str, table: dict[str, Any]) -> RaftConfig:
    preset = table.pop("preset", "lan")
    base = RaftConfig.fast(node_id) if preset == "fast" else RaftConfig.lan(node_id)
    from dataclasses import replace

    cfg = replace(base, **table)
    cfg.validate()
    return cfg


class MembershipService:
    def __init__(self, node: Host) -> None:
        self.node = node
        self.rng = random.Random()
        self.swim_config = _swim_config(node.config.section("swim"))
        self.raft_config = _raft_config(node.node_id, node.config.section("raft"))
        self.bootstrap_expect = int(node.config.section("membership").get("bootstrap_expect", 0))
        self.view = MembershipView()
        self.events: deque[dict[str, Any]] = deque(maxlen=2000)
        self._event_seq = 0
        self._event_signal = asyncio.Event()
        self.cluster_name: str | None = None
        self.cluster_id: str | None = None
        self.swim: SwimNode | None = None
        self.raft = RaftDriver(node, self.raft_config, node.config.node_dir / "raft",
                               send=self._send_best_effort, on_apply=self._apply_entry)
        self.config_log: deque[dict[str, Any]] = deque(maxlen=256)
        self._wake = asyncio.Event()
        self._dialing: set[str] = set()
        self.joined_at = time.time()
        node.on(ClusterBootstrap, self._on_bootstrap)
        node.on(MembershipChange, self._on_change)
        for t in SWIM_TYPES:
            node.on(t, self._on_swim)
        for t in RaftMessage.__args__ if hasattr(RaftMessage, "__args__") else ():
            node.on(t, self._on_raft)

    # ------------------------------------------------------------------ persistence
    @property
    def _cluster_file(self):
        return self.node.config.node_dir / "cluster.json"

    def _save_cluster(self) -> None:
        peers = {p.node_id: [p.tcp_address, p.quic_address] for p in self.node.peers.values() if p.wanted}
        data = {"cluster_name": self.cluster_name, "cluster_id": self.cluster_id, "peers": peers}
        tmp = self._cluster_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
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
        self.swim = SwimNode(node.node_id, self.swim_config, rng=self.rng, now=now,
                             incarnation=node.incarnation, tcp_address=node.tcp_address,
                             quic_address=node.quic_address)
        self.view.add_local(node.node_id, time.time(), incarnation=node.incarnation,
                            tcp_address=node.tcp_address, quic_address=node.quic_address)
        saved = self._load_cluster()
        self.cluster_name = saved.get("cluster_name")
        self.cluster_id = saved.get("cluster_id")
        known = saved.get("peers", {})
        for peer_id, (tcp, quic) in known.items():
            if peer_id != node.node_id:
                node.learn_peer(peer_id, tcp, quic)
        if self.raft.has_state():
            self.raft.restore()
        node.spawn(self._swim_loop(), name="swim")
        if known:
            self.swim.join(sorted(known), now)  # a restarted node rejoins through the peers it knew
        elif node.config.seeds:
            self.swim.join([f"seed:{s}" for s in node.config.seeds], now)
            node.spawn(self._join_raft_via_seeds(), name="raft join")
        self._wake.set()

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

    # ------------------------------------------------------------------ SWIM driving
    def _send_best_effort(self, to_id: str, msg: Message) -> None:
        """Send without waiting: over the live connection, else dial in the background (loss is fine)."""
        node = self.node
        if to_id.startswith("seed:"):
            if to_id not in self._dialing:
                self._dialing.add(to_id)
                node.spawn(self._dial_seed_and_send(to_id, msg), name=f"swim {to_id}")
            return
        peer = node.peers.get(to_id)
        if peer is not None and peer.connected:
            node.send_on(peer.conn, msg)
            return
        if peer is None and self.swim is not None:
            info = self.swim.member(to_id)
            if info is None or not info.tcp_address:
                return
            peer = node.learn_peer(to_id, info.tcp_address, info.quic_address, info.incarnation)
        if to_id not in self._dialing:
            self._dialing.add(to_id)
            node.spawn(self._dial_and_send(to_id, msg), name=f"swim {to_id}")

    async def _dial_and_send(self, to_id: str, msg: Message) -> None:
        try:
            conn = await self.node.connection_to(to_id, timeout=2.0)
            self.node.send_on(conn, msg)
        except (ConnectionError, OSError, KeyError, TimeoutError):
            pass
        finally:
            self._dialing.discard(to_id)

    async def _dial_seed_and_send(self, seed: str, msg: Message) -> None:
        try:
            host, port = parse_address(seed[len("seed:"):], field="seed")
            conn, ack = await self.node.dial(host, port, timeout=2.0)
            if ack.node_id != self.node.node_id:
                self.node.send_on(conn, msg)
                peer = self.node.peers.get(ack.node_id)
                if peer is not None and not peer.connected:
                    self.node._adopt(peer, conn)
                else:
                    self.node.spawn(self._close_later(conn), name="close seed conn")
            else:
                conn.close("dialled self")
        except (ConnectionError, OSError, ValueError, TimeoutError):
            pass
        finally:
            self._dialing.discard(seed)

    @staticmethod
    async def _close_later(conn: Any) -> None:
        await asyncio.sleep(5)
        conn.close("seed connection no longer needed")

    def _on_swim(self, ctx: RequestContext, msg: Any) -> None:
        if self.swim is None or ctx.peer_id is None:
            return
        self.swim.receive(ctx.peer_id, msg, time.monotonic())
        self._flush()

    async def _swim_loop(self) -> None:
        assert self.swim is not None
        while True:
            now = time.monotonic()
            self.swim.tick(now)
            self._flush()
            deadline = self.swim.next_deadline()
            delay = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _flush(self) -> None:
        swim = self.swim
        assert swim is not None
        for to_id, msg in swim.outbox():
            try:
                self._send_best_effort(to_id, msg)
            except Exception:
                log.debug("swim send to %s failed", to_id, exc_info=True)
        changed = False
        for ev in swim.drain_events():
            changed = True
            self._on_swim_event(ev)
        if changed:
            with contextlib.suppress(OSError):
                self._save_cluster()
        self._wake.set()

    def _on_swim_event(self, ev: Any) -> None:
        node = self.node
        if isinstance(ev, NodeJoined | NodeRecovered | NodeUpdated) and ev.tcp_address:
            node.learn_peer(ev.node_id, ev.tcp_address, ev.quic_address, ev.incarnation)
        if isinstance(ev, NodeLeft):
            node.forget_peer(ev.node_id)
        self.view.apply(ev, time.time())
        name = EVENT_NAMES.get(type(ev))
        if name is not None:
            self.emit(name, ev.node_id)
        if self.bootstrap_expect and not self.raft.started and isinstance(ev, NodeJoined):
            self._maybe_bootstrap_expect()

    def on_peer_event(self, event: str, peer_id: str) -> None:
        # a peer learnt by discovery or by an inbound hello, not yet in SWIM: join through it
        if event in ("learned", "connected") and self.swim is not None and self.swim.member(peer_id) is None:
            self.swim.join([peer_id], time.monotonic())
            self._wake.set()

    # ------------------------------------------------------------------ events
    def emit(self, event_type: str, node_id: str) -> None:
        """Append a peer event (NodeJoined, NodeLeft, NodeSuspected, NodeFailed, NodeRecovered)."""
        self._event_seq += 1
        self.events.append({"seq": self._event_seq, "eventType": event_type, "nodeId": node_id,
                            "timestamp": iso_utc(time.time()), "observer": self.node.node_id})
        self._event_signal.set()
        self._event_signal = asyncio.Event()

    async def api_events(self, cursor: int = 0, timeout_s: float = 0.0) -> dict[str, Any]:
        """Events after ``cursor`` (long-polls up to ``timeout_s`` when there are none yet)."""
        if cursor >= self._event_seq and timeout_s > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event_signal.wait(), min(timeout_s, 30.0))
        events = [e for e in self.events if e["seq"] > cursor]
        return {"events": events, "cursor": self._event_seq, "node": self.node.node_id}

    # ------------------------------------------------------------------ Raft driving
    def _on_raft(self, ctx: RequestContext, msg: Any) -> None:
        if self.raft.started:
            self.raft.step(msg)
        elif ctx.peer_id and getattr(msg, "to_id", None) == self.node.node_id:
            # we are being added by a leader and have no log yet: become an empty follower
            self.raft.join_empty()
            self.raft.step(msg)

    def _apply_entry(self, entry: RaftEntry) -> None:
        if entry.kind is EntryKind.CONF_CHANGE:
            cc = decode_conf_change(entry.data)
            self.config_log.append({"index": entry.index, "term": entry.term, "op": cc.op, "node_id": cc.node_id,
                                    "members": sorted(cc.members)})
        elif entry.kind is EntryKind.NORMAL and entry.data:
            try:
                data = json.loads(entry.data)
            except ValueError:
                return
            if data.get("type") == "cluster":
                self.cluster_name = data.get("cluster_name", self.cluster_name)
                self.cluster_id = data.get("cluster_id", self.cluster_id)
                with contextlib.suppress(OSError):
                    self._save_cluster()
            self.config_log.append({"index": entry.index, "term": entry.term, **data})

    async def _on_bootstrap(self, ctx: RequestContext, msg: ClusterBootstrap) -> Message | None:
        self._bootstrap_local(msg.cluster_name, msg.cluster_id, msg.members)
        return MembershipChangeResult(ok=True, members=sorted(msg.members))

    def _bootstrap_local(self, cluster_name: str, cluster_id: str, members: dict[str, list[str]]) -> None:
        if self.raft.started:
            return
        self.cluster_name, self.cluster_id = cluster_name, cluster_id
        for node_id, (tcp, quic) in members.items():
            if node_id != self.node.node_id:
                self.node.learn_peer(node_id, tcp, quic)
        self.raft.bootstrap(list(members))
        assert self.swim is not None
        self.swim.join([m for m in members if m != self.node.node_id], time.monotonic())
        self._save_cluster()
        self._wake.set()

    def _maybe_bootstrap_expect(self) -> None:
        assert self.swim is not None
        alive = sorted(m.node_id for m in self.swim.members() if m.state is MemberState.ALIVE)
        if len(alive) >= self.bootstrap_expect and alive[0] == self.node.node_id:
            members = {m.node_id: [m.tcp_address, m.quic_address] for m in self.swim.members()
                       if m.node_id in alive}
            self.node.spawn(self._bootstrap_all(self.node.config.cluster_name, members), name="bootstrap_expect")

    async def _bootstrap_all(self, cluster_name: str, members: dict[str, list[str]]) -> str:
        cluster_id = f"cluster-{uuid.uuid4().hex[:12]}"
        self._bootstrap_local(cluster_name, cluster_id, members)
        msg = ClusterBootstrap(cluster_name=cluster_name, cluster_id=cluster_id, members=members)
        results = await asyncio.gather(*(self.node.request(n, msg, timeout=10.0) for n in members
                                         if n != self.node.node_id), return_exceptions=True)
        failed = [n for n, r in zip([n for n in members if n != self.node.node_id], results, strict=True)
                  if isinstance(r, BaseException)]
        if failed:
            log.warning("bootstrap could not reach %s", failed)
        return cluster_id

    async def _on_change(self, ctx: RequestContext, msg: MembershipChange) -> Message:
        return await self._change(msg)

    async def _change(self, msg: MembershipChange) -> MembershipChangeResult:
        """Apply a membership change on the leader, or forward it there."""
        raft = self.raft
        if not raft.started:
            return MembershipChangeResult(ok=False, error="this node has no cluster configuration yet")
        if not raft.is_leader:
            leader = raft.leader
            if leader is None or msg.hops >= 3:
                return MembershipChangeResult(ok=False, error="no Raft leader at the moment; retry")
            try:
                reply = await self.node.request(leader, MembershipChange(
                    op=msg.op, node_id=msg.node_id, tcp_address=msg.tcp_address, quic_address=msg.quic_address,
                    hops=msg.hops + 1), timeout=15.0)
            except Exception as exc:
                return MembershipChangeResult(ok=False, error=f"leader {leader} unreachable: {exc}")
            assert isinstance(reply, MembershipChangeResult)
            return reply
        members = set(raft.members())
        if (msg.op == "add" and msg.node_id in members) or (msg.op == "remove" and msg.node_id not in members):
            return self._result(True)
        if msg.op == "add" and msg.tcp_address:
            self.node.learn_peer(msg.node_id, msg.tcp_address, msg.quic_address)
        for _ in range(50):
            try:
                await raft.change(msg.op, msg.node_id, timeout=10.0)
                return self._result(True)
            except (ConfChangeRejected, ProposalDropped) as exc:
                last = str(exc)
                await asyncio.sleep(0.1)  # another change is in flight: wait for it to commit
            except NotLeader as exc:
                return MembershipChangeResult(ok=False, leader=exc.leader_id or "", error="leadership changed")
            except TimeoutError:
                return MembershipChangeResult(ok=False, error="the change did not commit in time")
        return MembershipChangeResult(ok=False, error=last)

    def _result(self, ok: bool) -> MembershipChangeResult:
        return MembershipChangeResult(ok=ok, leader=self.raft.leader or "", members=self.raft.members(),
                                      cluster_name=self.cluster_name or "", cluster_id=self.cluster_id or "")

    async def _join_raft_via_seeds(self) -> None:
        """A new node asks the cluster (through any seed it reaches) to add it to the configuration."""
        msg = MembershipChange(op="add", node_id=self.node.node_id, tcp_address=self.node.tcp_address,
                               quic_address=self.node.quic_address)
        for attempt in range(120):
            for peer_id in [p for p in list(self.node.peers) if self.node.peers[p].connected]:
                try:
                    reply = await self.node.request(peer_id, msg, timeout=15.0)
                except Exception:
                    continue
                if isinstance(reply, MembershipChangeResult) and reply.ok:
                    self.cluster_name = reply.cluster_name or self.cluster_name
                    self.cluster_id = reply.cluster_id or self.cluster_id
                    with contextlib.suppress(OSError):
                        self._save_cluster()
                    return
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
        log.warning("%s could not join the Raft configuration", self.node.node_id)

    # ------------------------------------------------------------------ membership queries
    def live_members(self) -> list[str]:
        if self.swim is None:
            return [self.node.node_id]
        return sorted(m.node_id for m in self.swim.members()
                      if m.state in (MemberState.ALIVE, MemberState.SUSPECT))

    def state_counts(self) -> dict[str, int] | None:
        """Members of the SWIM view per state (every state listed), None before SWIM runs."""
        if self.swim is None:
            return None
        counts = dict.fromkeys((s.value for s in MemberState), 0)
        for member in self.swim.members():
            counts[member.state.value] += 1
        return counts

    def raft_status(self) -> dict[str, Any]:
        return self.raft.status()

    def entries(self) -> dict[str, tuple[int, str]]:
        """SWIM state as (incarnation, status) per node, for anti-entropy."""
        if self.swim is None:
            return {}
        return {m.node_id: (m.incarnation, m.state.value) for m in self.swim.members()}

    def apply_entries(self, entries: list[tuple[str, int, str]]) -> None:
        """Feed repaired entries back as SWIM updates (the core applies its own precedence rules)."""
        if self.swim is None:
            return
        now = time.monotonic()
        for node_id, incarnation, status in entries:
            if node_id == self.node.node_id:
                continue
            info = self.swim.member(node_id)
            if status == "Alive" and info is not None:
                upd = swim_messages.SwimAlive(node_id=node_id, incarnation=incarnation,
                                              tcp_address=info.tcp_address, quic_address=info.quic_address)
            elif status == "Suspect":
                upd = swim_messages.SwimSuspect(node_id=node_id, incarnation=incarnation, from_id=self.node.node_id)
            elif status == "Dead":
                upd = swim_messages.SwimDead(node_id=node_id, incarnation=incarnation, from_id=self.node.node_id)
            elif status == "Left":
                upd = swim_messages.SwimLeft(node_id=node_id, incarnation=incarnation)
            else:
                continue
            with contextlib.suppress(Exception):
                self.swim.receive(self.node.node_id, upd, now)
        self._flush()

    def _members(self) -> list[dict[str, Any]]:
        assert self.swim is not None
        raft_members = set(self.raft.members())
        out = []
        for m in self.swim.members():
            out.append({"node": m.node_id, "state": m.state.value, "incarnation": m.incarnation,
                        "address": m.tcp_address, "quic_address": m.quic_address,
                        "suspect_count": m.suspect_count, "voter": m.node_id in raft_members})
        return out

    # ------------------------------------------------------------------ API
    def api_members(self) -> dict[str, Any]:
        return {"node": self.node.node_id, "members": self._members()}

    def api_view(self) -> dict[str, Any]:
        body = self.view.to_dict(include_departed=False)
        return {**body, "observer": self.node.node_id, "cluster_name": self.cluster_name,
                "cluster_id": self.cluster_id}

    def api_swim_status(self) -> dict[str, Any]:
        assert self.swim is not None
        body = self.swim.status()
        body.update(node=self.node.node_id, incarnation=self.swim.incarnation, awareness=self.swim.awareness,
                    lifeguard=self.swim_config.lifeguard, indirect_checks=self.swim_config.indirect_checks)
        return body

    def api_gossip_state(self) -> dict[str, Any]:
        assert self.swim is not None
        return {**self.swim.gossip_state(), "node": self.node.node_id, "protocol": "SWIM"}

    def api_raft_status(self) -> dict[str, Any]:
        status = self.raft.status()
        status["node"] = self.node.node_id
        status["cluster_name"] = self.cluster_name
        status["cluster_id"] = self.cluster_id
        status["election_timeout_ms"] = [round(self.raft_config.election_tick * self.raft_config.tick_interval * 1000),
                                         round(2 * self.raft_config.election_tick *
                                               self.raft_config.tick_interval * 1000)]
        status["configuration_log"] = list(self.config_log)[-20:]
        return status

    async def api_bootstrap(self, cluster_name: str, members: dict[str, dict[str, str]],
                            replication_factor: int | None = None) -> dict[str, Any]:
        if self.raft.started:
            raise ApiError(409, f"this node already belongs to cluster {self.cluster_name!r} "
                                f"({self.cluster_id}); bootstrap only forms a new cluster", "initial_nodes")
        if self.node.node_id not in members:
            raise ApiError(422, "the bootstrapping node must be one of the initial nodes", "initial_nodes")
        if replication_factor is not None and not 1 <= replication_factor <= len(members):
            raise ApiError(422, f"replication_factor must be between 1 and {len(members)}", "replication_factor")
        table = {n: [m["address"], m.get("quic_address", "")] for n, m in members.items()}
        cluster_id = await self._bootstrap_all(cluster_name, table)
        leader = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            leader = self.raft.leader
            if leader is not None:
                break
            await asyncio.sleep(0.05)
        if leader is not None and self.raft.is_leader:
            with contextlib.suppress(RaftError, TimeoutError):
                await self.raft.propose(json.dumps({"type": "cluster", "cluster_name": cluster_name,
                                                    "cluster_id": cluster_id,
                                                    "replication_factor": replication_factor}).encode())
        return {"bootstrapped": True, "cluster_id": cluster_id, "cluster_name": cluster_name,
                "initial_leader": leader, "members": len(table), "member_ids": sorted(table)}

    async def api_leave(self, reason: str = "requested") -> dict[str, Any]:
        """Graceful leave: hand off leadership, leave the Raft configuration, announce Left over SWIM."""
        swim = self.swim
        assert swim is not None
        removed = False
        if self.raft.started and self.node.node_id in self.raft.members():
            if self.raft.is_leader:
                others = [m for m in self.raft.members() if m != self.node.node_id
                          and swim.state_of(m) is MemberState.ALIVE]
                if others:
                    with contextlib.suppress(RaftError):
                        self.raft.transfer_leadership(others[0])
                    for _ in range(40):
                        if not self.raft.is_leader and self.raft.leader:
                            break
                        await asyncio.sleep(0.05)
            result = await self._change(MembershipChange(op="remove", node_id=self.node.node_id))
            removed = result.ok
        swim.leave(time.monotonic())
        self._flush()
        for _ in range(40):  # let the Left update go out on its retransmits
            if swim.left:
                break
            await asyncio.sleep(0.05)
        self.emit("NodeLeft", self.node.node_id)
        size = len([m for m in self.live_members() if m != self.node.node_id])
        return {"success": True, "node_id": self.node.node_id, "reason": reason, "removed_from_raft": removed,
                "cluster_size": size, "left_at": iso_utc(time.time()), "membership_version": self.view.version}

    async def api_remove(self, node_id: str) -> dict[str, Any]:
        """Remove a (dead) member from the configuration on its behalf."""
        result = await self._change(MembershipChange(op="remove", node_id=node_id))
        if not result.ok:
            raise ApiError(409, f"could not remove {node_id}: {result.error}", "node_id")
        self.node.forget_peer(node_id)
        self.view.remove(node_id, time.time())
        self.emit("NodeLeft", node_id)
        return {"success": True, "node_id": node_id, "members": result.members}
