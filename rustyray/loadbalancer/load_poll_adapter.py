"""CPU and memory load of the live members, polled for Adaptive (NETWORKING-040): the asyncio adapter.

Every ``load_poll_interval_sec`` this node samples its own process with psutil (CPU as a
fraction of all cores, RSS as a fraction of physical memory, both clamped to 0..1) and asks a
*bounded* set of live members for theirs with ``LbLoadQuery``: the ones it recently sent to or
selected plus a small sample of the others, as the sans-I/O ``load_poll.LoadPollPlanner``
decides (issue 12: a round costs the same at 5 and at 500 members). Each ``LbLoadReport`` goes
into the stats tracker and ``reports`` (with the wall time it arrived). A member that misses the
query's ``load_query_timeout_sec`` keeps its last report. A query from a peer is answered with
the last sample, so answering costs no measurement. ``refresh(nodes)`` polls on demand the
given members whose report is older than one interval (the stats API uses it, so what it
shows is live for every member, not only the polled ones).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

import psutil

from rustyray.loadbalancer.load_poll import LoadPollPlanner
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.loadbalancer.config import LoadBalancerServiceConfig
    from rustyray.loadbalancer.node_stats import NodeStatsTracker
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)


class LbLoadQuery(Message):
    """Ask a member for its process CPU and memory load."""

    origin: str


class LbLoadReport(Message):
    node_id: str
    cpu_load: float  # process CPU, fraction of all cores, 0..1
    mem_load: float  # process RSS over physical memory, 0..1
    connections: int  # live connections of the reporting node


class LoadPoller:
    """Samples this process, asks the members, records every report (see the module docstring)."""

    def __init__(self, node: Host, tracker: NodeStatsTracker, config: LoadBalancerServiceConfig,
                 rng: random.Random | None = None) -> None:
        self.node = node
        self.tracker = tracker
        self.config = config
        self.planner = LoadPollPlanner(config.load_poll, rng)
        """Picks each round's targets; ``used(node, now)`` is fed by the service's send and select paths."""
        self.queries_sent = 0
        """LbLoadQuery requests this node sent (rounds and on-demand refreshes)."""
        self.reports: dict[str, dict[str, Any]] = {}
        """Node -> last load report (cpu_load, mem_load, connections, and ``wall``: when it arrived)."""
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # prime: the first call has no interval to measure
        self._own_load = (0.0, 0.0)
        node.on(LbLoadQuery, self._on_load_query)

    def _sample_own(self) -> tuple[float, float]:
        cores = psutil.cpu_count() or 1
        cpu = min(1.0, max(0.0, self._proc.cpu_percent(None) / (100.0 * cores)))
        mem = min(1.0, max(0.0, self._proc.memory_percent() / 100.0))
        self._own_load = (cpu, mem)
        return self._own_load

    def _record(self, node_id: str, cpu: float, mem: float, connections: int) -> None:
        cpu, mem = min(1.0, max(0.0, cpu)), min(1.0, max(0.0, mem))
        self.tracker.report_resources(node_id, cpu, mem)
        self.reports[node_id] = {"cpu_load": cpu, "mem_load": mem, "connections": connections,
                                 "wall": time.time()}

    def _on_load_query(self, ctx: RequestContext, msg: LbLoadQuery) -> LbLoadReport:
        cpu, mem = self._own_load
        return LbLoadReport(node_id=self.node.node_id, cpu_load=cpu, mem_load=mem,
                            connections=len(self.node.connections))

    async def _ask(self, peers: list[str]) -> None:
        self.queries_sent += len(peers)
        replies = await self.node.request_members(LbLoadQuery(origin=self.node.node_id), peers=peers,
                                                  timeout=self.config.load_query_timeout_sec)
        for peer_id, reply in replies.items():
            if isinstance(reply, LbLoadReport):
                self._record(reply.node_id, reply.cpu_load, reply.mem_load, reply.connections)
            else:  # a member that cannot answer keeps its last report
                log.debug("%s: load query to %s failed: %s", self.node.node_id, peer_id, reply)

    def _sample_and_record_own(self) -> None:
        cpu, mem = self._sample_own()
        self._record(self.node.node_id, cpu, mem, len(self.node.connections))

    async def poll_loads(self) -> list[str]:
        """One round: sample this process, ask the planner's bounded set of members; returns whom it asked."""
        self._sample_and_record_own()
        now = time.monotonic()
        members = [m for m in self.node.live_members() if m != self.node.node_id]
        self.planner.forget_absent(members)
        present = {*members, self.node.node_id}
        for gone in [n for n in self.reports if n not in present]:
            del self.reports[gone]
        targets = self.planner.plan(members, now)
        self.planner.polled(targets, now)
        await self._ask(targets)
        return targets

    async def refresh(self, nodes: list[str]) -> None:
        """Poll now those of ``nodes`` whose report is older than one interval (or missing)."""
        wall = time.time()
        stale = [n for n in nodes if n != self.node.node_id
                 and wall - self.reports.get(n, {}).get("wall", float("-inf")) > self.config.load_poll_interval_sec]
        if self.node.node_id in nodes:
            self._sample_and_record_own()
        if stale:
            self.planner.polled(stale, time.monotonic())
            await self._ask(stale)

    async def run(self) -> None:
        """Poll forever, every ``load_poll_interval_sec``."""
        while True:
            await self.poll_loads()
            await asyncio.sleep(self.config.load_poll_interval_sec)
