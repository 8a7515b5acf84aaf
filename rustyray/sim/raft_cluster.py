"""Raft (and optionally SWIM beside it) inside the deterministic simulator.

Theory of operation: ``RaftSimNode`` drives a ``RaftNode`` exactly as
``rustyray.membership.raft_driver`` does on a live node (the etcd-io/raft
``Ready`` loop: persist to storage, send, apply, advance), except that its
ticks are simulator timers every ``RaftConfig.tick_interval`` virtual seconds
and its messages go through the simulated network (loss, delay, partitions,
crashes, stalls). ``MemberSimNode`` puts a ``SwimNode`` and a ``RaftSimNode``
under one node id, so SWIM and Raft share one network and one clock, as they
share a node's connections in ``rustyray.membership.service``.

``RaftCluster`` checks Raft's safety properties on every simulator step
(Ongaro & Ousterhout 2014, figure 3):

* Election Safety -- at most one leader per term, ever (checked whenever any
  node is leader after a step, so at every instant);
* State Machine Safety / Log Matching on the committed prefix -- no two nodes
  apply different entries at one index.

A broken property raises ``AssertionError`` out of ``Simulation.run_until``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from rustyray.membership.raft import (
    MemoryStorage,
    NotLeader,
    RaftConfig,
    RaftEntry,
    RaftNode,
    Role,
)
from rustyray.membership.raft.messages import RaftMessage
from rustyray.membership.swim import MemberState, SwimConfig, SwimMemberState, SwimNode, SwimRoster
from rustyray.sim.network import SimConfig, Simulation
from rustyray.sim.swim_cluster import encoded_size

__all__ = ["FalsePositiveTracker", "MemberSimNode", "RaftCluster", "RaftSimNode", "stall_mid_probe", "stall_randomly"]

_RAFT_TYPES = tuple(RaftMessage.__args__)  # type: ignore[attr-defined]


class RaftSimNode:
    """One ``RaftNode`` + ``MemoryStorage`` as a simulator node (the ``SimNode`` shape)."""

    def __init__(self, raft: RaftNode, storage: MemoryStorage, *, now: float, phase: float = 0.0,
                 on_apply: Callable[[str, RaftEntry], None] | None = None) -> None:
        """``phase`` in [0, 1) offsets the first tick so nodes do not tick in lockstep."""
        self.raft = raft
        self.storage = storage
        self.interval = raft.config.tick_interval
        self._next_tick = now + self.interval * (1.0 + phase)
        self._out: list[tuple[str, Any]] = []
        self._on_apply = on_apply
        self.applied: list[RaftEntry] = []
        self._drain()

    @property
    def id(self) -> str:
        return self.raft.id

    def receive(self, from_id: str, msg: Any, now: float) -> None:
        self.raft.step(msg)
        self._drain()

    def tick(self, now: float) -> None:
        if now < self._next_tick:
            return
        # Like the live driver's sleep loop, a late timer (stall) fires once, not once per missed tick.
        self.raft.tick()
        self._next_tick = max(self._next_tick + self.interval, now + self.interval * 0.5)
        self._drain()

    def next_deadline(self) -> float | None:
        return self._next_tick

    def outbox(self) -> list[tuple[str, Any]]:
        out, self._out = self._out, []
        return out

    def propose(self, data: bytes) -> int:
        """Propose on this node (raises ``NotLeader`` elsewhere); the index may never commit."""
        index = self.raft.propose(data)
        self._drain()
        return index

    def _drain(self) -> None:
        raft = self.raft
        while raft.has_ready():
            rd = raft.ready()
            self.storage.save(rd)  # 1. persist (instant in the simulator)
            self._out.extend((m.to_id, m) for m in rd.messages)  # 2. send
            for e in rd.committed_entries:  # 3. apply
                self.applied.append(e)
                if self._on_apply is not None:
                    self._on_apply(raft.id, e)
            raft.advance(rd)  # 4. advance


class MemberSimNode:
    """SWIM and Raft of one member under one id: messages are routed by type, timers merged."""

    def __init__(self, swim: SwimNode | None, raft: RaftSimNode) -> None:
        self.swim = swim
        self.raft = raft

    def receive(self, from_id: str, msg: Any, now: float) -> None:
        if isinstance(msg, _RAFT_TYPES):
            self.raft.receive(from_id, msg, now)
        elif self.swim is not None:
            self.swim.receive(from_id, msg, now)

    def tick(self, now: float) -> None:
        self.raft.tick(now)
        if self.swim is not None:
            self.swim.tick(now)

    def next_deadline(self) -> float | None:
        d = self.raft.next_deadline()
        if self.swim is not None:
            s = self.swim.next_deadline()
            if s is not None and (d is None or s < d):
                d = s
        return d

    def outbox(self) -> list[tuple[str, Any]]:
        out = self.raft.outbox()
        if self.swim is not None:
            out.extend(self.swim.outbox())
        return out


class RaftCluster:
    """``n`` members ``node0..`` bootstrapped as one Raft configuration, SWIM beside Raft if
    ``swim_config`` is given, in one ``Simulation``; safety is asserted on every step."""

    def __init__(self, n: int, raft_config: RaftConfig | None = None, sim_config: SimConfig | None = None, *,
                 swim_config: SwimConfig | None = None, prefix: str = "node",
                 measure_bytes: bool = False) -> None:
        self.raft_template = raft_config or RaftConfig.lan("template")
        self.swim_config = swim_config
        self.sim = Simulation(sim_config, size_of=encoded_size if measure_bytes else None, on_step=self._on_step)
        self.ids = [f"{prefix}{i}" for i in range(n)]
        self.storages = {nid: MemoryStorage() for nid in self.ids}
        self.roster = SwimRoster(
            SwimMemberState(node_id=i, incarnation=0, state="Alive", tcp_address=f"{i}:7000") for i in self.ids
        )
        # safety bookkeeping
        self.leaders_by_term: dict[int, str] = {}
        self.committed: dict[int, tuple[int, str, bytes]] = {}  # index -> (term, kind, data)
        self.committed_data: dict[bytes, float] = {}  # NORMAL entry data -> first time applied anywhere
        # SWIM bookkeeping: (event class name, subject) -> {observer: first time seen}
        self.seen: dict[tuple[str, str], dict[str, float]] = {}
        self.accusations: dict[str, int] = {}
        self.declarations: dict[str, int] = {}
        for nid in self.ids:
            raft = RaftNode.bootstrap(self._raft_config(nid), self.ids, self.sim.derive_rng())
            self.sim.add_node(nid, self._member(nid, raft, roster=self.roster))

    # ------------------------------------------------------------------ construction

    def _raft_config(self, nid: str) -> RaftConfig:
        return replace(self.raft_template, id=nid)

    def _member(self, nid: str, raft: RaftNode, *, roster: SwimRoster | None, incarnation: int = 0,
                seeds: Iterable[str] = ()) -> MemberSimNode:
        now = self.sim.now
        rs = RaftSimNode(raft, self.storages[nid], now=now, phase=self.sim.rng.random(), on_apply=self._on_apply)
        swim = None
        if self.swim_config is not None:
            swim = SwimNode(nid, self.swim_config, rng=self.sim.derive_rng(), now=now, roster=roster,
                            incarnation=incarnation, tcp_address=f"{nid}:7000")
            seeds = list(seeds)
            if seeds:
                swim.join(seeds, now)
        return MemberSimNode(swim, rs)

    # ------------------------------------------------------------------ invariants

    def _on_apply(self, nid: str, e: RaftEntry) -> None:
        rec = (e.term, e.kind.value, e.data)
        prev = self.committed.setdefault(e.index, rec)
        assert prev == rec, f"State Machine Safety: {nid} applied {rec} at {e.index}, another node {prev}"
        if e.data and e.kind.value == "normal":
            self.committed_data.setdefault(e.data, self.sim.now)

    def _on_step(self, nid: str, node: Any, now: float) -> None:
        raft = node.raft.raft
        if raft.role is Role.LEADER:
            prev = self.leaders_by_term.setdefault(raft.term, nid)
            assert prev == nid, f"Election Safety: {prev} and {nid} both lead term {raft.term} at t={now:.3f}"
        swim = node.swim
        if swim is None:
            return
        events = swim.drain_events()
        for ev in events:
            name = type(ev).__name__
            if getattr(ev, "from_id", None) == nid:
                tally = self.accusations if name == "NodeSuspected" else self.declarations
                tally[ev.node_id] = tally.get(ev.node_id, 0) + 1
            d = self.seen.setdefault((name, ev.node_id), {})
            if nid not in d:
                d[nid] = now

    # ------------------------------------------------------------------ access

    def member(self, nid: str) -> MemberSimNode:
        return self.sim.node(nid)  # type: ignore[return-value]

    def raft(self, nid: str) -> RaftNode:
        return self.member(nid).raft.raft

    def swim(self, nid: str) -> SwimNode:
        s = self.member(nid).swim
        assert s is not None, "cluster built without swim_config"
        return s

    def up_ids(self) -> list[str]:
        return [i for i in self.ids if self.sim.is_up(i)]

    def leaders(self, among: Iterable[str] | None = None) -> list[str]:
        """Up nodes that currently believe they lead (several only across partitions, in different terms)."""
        ids = self.up_ids() if among is None else [i for i in among if self.sim.is_up(i)]
        return [i for i in ids if self.raft(i).role is Role.LEADER]

    def stable_leader(self, among: Iterable[str] | None = None) -> str | None:
        """The leader of the highest term among ``among`` if exactly one node leads there."""
        ls = self.leaders(among)
        if not ls:
            return None
        top = max(self.raft(i).term for i in ls)
        at_top = [i for i in ls if self.raft(i).term == top]
        return at_top[0] if len(at_top) == 1 else None

    def propose(self, nid: str, data: bytes) -> int | None:
        """Propose ``data`` on ``nid``; None if it is not the leader (nothing proposed)."""
        try:
            return self.member(nid).raft.propose(data)  # sent with the node's next step (<= 1 tick)
        except NotLeader:
            return None

    def is_committed(self, data: bytes) -> bool:
        return data in self.committed_data

    def commit_index(self, nid: str) -> int:
        return self.raft(nid).log.commit

    def run_until_leader(self, timeout: float, among: Iterable[str] | None = None, step: float = 0.05) -> str:
        among = list(among) if among is not None else None
        end = self.sim.now + timeout
        while self.sim.now < end:
            lead = self.stable_leader(among)
            if lead is not None:
                return lead
            self.sim.run_for(step)
        raise AssertionError(f"no leader among {among or 'all'} within {timeout} s")

    def run_until(self, predicate: Callable[[], bool], timeout: float, step: float = 0.1) -> float:
        """Run until ``predicate()``; return the virtual seconds it took (AssertionError on timeout)."""
        start = self.sim.now
        end = start + timeout
        while not predicate():
            if self.sim.now >= end:
                raise AssertionError(f"condition not met within {timeout} virtual s")
            self.sim.run_for(step)
        return self.sim.now - start

    def swim_view(self, observer: str, subject: str) -> MemberState | None:
        return self.swim(observer).state_of(subject)

    def all_alive(self, ids: Iterable[str] | None = None) -> bool:
        """Every up member sees every up member of ``ids`` Alive."""
        ups = self.up_ids()
        subjects = [i for i in (ids or ups) if self.sim.is_up(i)]
        return all(self.swim(o).state_of(s) is MemberState.ALIVE for o in ups for s in subjects if s != o)

    # ------------------------------------------------------------------ faults

    def crash(self, nid: str) -> None:
        self.sim.crash(nid)

    def restart(self, nid: str, seeds: Iterable[str] = (), incarnation: int = 1) -> MemberSimNode:
        """Restart ``nid`` from its MemoryStorage (committed entries are replayed) and rejoin SWIM."""
        raft = RaftNode.restore(self._raft_config(nid), self.storages[nid].load(), self.sim.derive_rng())
        member = self._member(nid, raft, roster=None, incarnation=incarnation, seeds=seeds)
        self.sim.restart(nid, member)
        return member

    def stall_randomly(self, nids: Iterable[str], min_s: float, max_s: float, mean_gap: float,
                       until: float, rng: random.Random | None = None) -> list[tuple[str, float, float]]:
        """Stall each of ``nids`` again and again for uniform(min_s, max_s) s with exponential gaps of
        mean ``mean_gap`` s; returns the (node, start, end) list, filled as the run goes."""
        return stall_randomly(self.sim, nids, min_s, max_s, mean_gap, until, rng or self.sim.derive_rng())


def stall_randomly(sim: Simulation, nids: Iterable[str], min_s: float, max_s: float, mean_gap: float,
                   until: float, rng: random.Random) -> list[tuple[str, float, float]]:
    """Schedule repeated stalls of random length in ``sim`` (see ``RaftCluster.stall_randomly``)."""
    log: list[tuple[str, float, float]] = []

    def schedule(nid: str, at: float) -> None:
        if at >= until:
            return

        def fire() -> None:
            d = rng.uniform(min_s, max_s)
            sim.stall(nid, d)
            log.append((nid, sim.now, sim.now + d))
            schedule(nid, sim.now + d + rng.expovariate(1.0 / mean_gap))

        sim.call_at(at, fire)

    for nid in nids:
        schedule(nid, sim.now + rng.expovariate(1.0 / mean_gap))
    return log


def stall_mid_probe(sim: Simulation, nids: Iterable[str], probability: float, min_s: float, max_s: float,
                    rng: random.Random) -> list[tuple[str, float, float]]:
    """Freeze a member of ``nids`` for uniform(min_s, max_s) s right after it sends a SWIM probe, with
    ``probability`` per probe: a CPU-starved process that loses the CPU with a probe in flight, so
    the ack waits unread while its probe timers expire (the case Lifeguard is about). Chains onto
    ``sim.drop_filter``; returns the (node, start, end) list, filled as the run goes."""
    from rustyray.membership.swim import SwimPing

    targets = set(nids)
    log: list[tuple[str, float, float]] = []
    inner = sim.drop_filter

    def drop_filter(src: str, dst: str, msg: Any) -> bool:
        if (src in targets and type(msg) is SwimPing and msg.target == dst and not sim.is_stalled(src)
                and rng.random() < probability):
            d = rng.uniform(min_s, max_s)
            sim.stall(src, d)
            log.append((src, sim.now, sim.now + d))
        return inner(src, dst, msg) if inner is not None else False

    sim.drop_filter = drop_filter
    return log


class FalsePositiveTracker:
    """Classifies the SWIM accusations a ``SwimCluster`` makes while some members stall.

    Counts ``(kind, accuser, subject)`` where kind is "suspect" (a member's own failed probe) or
    "dead" (its own suspicion timer), accuser is "healthy"/"stalling", and subject is "healthy",
    "stalling-awake" (running at that instant: it answers, so Dead is a false positive) or
    "stalling-stalled" (frozen at that instant). Install before running the simulation.
    """

    def __init__(self, cluster: Any, stalling: Iterable[str]) -> None:
        self.cluster = cluster
        self.stalling = set(stalling)
        self.counts: dict[tuple[str, str, str], int] = {}
        self._inner = cluster.sim.on_step
        cluster.sim.on_step = self._on_step

    def _on_step(self, nid: str, node: Any, now: float) -> None:
        sim = self.cluster.sim
        for ev in node._events:
            name = type(ev).__name__
            if name not in ("NodeSuspected", "NodeFailed") or ev.from_id != nid:
                continue
            subj = ev.node_id
            if subj not in self.stalling:
                sc = "healthy"
            else:
                sc = "stalling-stalled" if sim.is_stalled(subj) else "stalling-awake"
            key = ("suspect" if name == "NodeSuspected" else "dead",
                   "stalling" if nid in self.stalling else "healthy", sc)
            self.counts[key] = self.counts.get(key, 0) + 1
        if self._inner is not None:
            self._inner(nid, node, now)

    def total(self, kind: str, accuser: str | None = None, subject: str | None = None) -> int:
        return sum(v for (k, a, s), v in self.counts.items()
                   if k == kind and (accuser is None or a == accuser) and (subject is None or s == subject))

    @property
    def false_deaths(self) -> int:
        """Dead declared about a member that was running (healthy, or a staller between stalls)."""
        return self.total("dead", subject="healthy") + self.total("dead", subject="stalling-awake")

    def summary(self) -> dict[str, int]:
        return {
            "false_deaths": self.false_deaths,
            "false_deaths_by_stalling": self.total("dead", "stalling", "healthy")
            + self.total("dead", "stalling", "stalling-awake"),
            "deaths_while_stalled": self.total("dead", subject="stalling-stalled"),
            "false_suspicions_of_healthy": self.total("suspect", subject="healthy"),
            "false_suspicions_by_stalling": self.total("suspect", "stalling", "healthy")
            + self.total("suspect", "stalling", "stalling-awake"),
            "suspicions_of_stalling": self.total("suspect", subject="stalling-stalled")
            + self.total("suspect", subject="stalling-awake"),
        }
