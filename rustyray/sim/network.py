"""Deterministic discrete-event network simulator for sans-I/O cores.

Theory of operation: one virtual clock and one event heap ordered by
``(time, sequence number)``, so a run is a pure function of the seed and the
scenario (in the style of etcd-io/raft's test network and FoundationDB's
simulation). Three kinds of events live in the heap: message deliveries,
node timers and scripted calls. Each node has at most one *live* timer entry
(older ones are invalidated by a token, never searched for), placed at the
node's ``next_deadline()`` after each step, so the cost per event is
O(log heap) whatever the cluster size.

Faults:

* loss -- each message is dropped with probability ``loss`` when sent
  (``drop_filter`` adds targeted drops);
* delay -- each message takes ``delay_fn(rng)`` seconds (default uniform in
  ``[delay_min, delay_max]``), optionally FIFO per link;
* partitions -- ``partition(groups)`` cuts every link between groups (nodes
  not listed form one more group) until ``heal()``; messages in flight across
  the cut are dropped on arrival;
* crash / restart -- a crashed node loses its timers and every message
  addressed to it; ``restart`` installs a fresh core under the same id;
* stall -- a stalled node runs nothing for a while (a GC pause or a starved
  CPU); messages for it queue up, and when the stall ends its overdue timers
  fire first, then the backlog is delivered, as an overloaded process would
  see its timeouts expire before draining its socket.

All randomness comes from ``Simulation.rng`` (seeded), so cores should be
given generators derived from it (``sim.derive_rng()``).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from rustyray.sim.driver import SimNode

__all__ = ["SimConfig", "SimStats", "Simulation"]

_DELIVER = 0
_TIMER = 1
_CALL = 2
_STALL_END = 3
_INF = float("inf")


@dataclass(frozen=True)
class SimConfig:
    """Network model of one simulation run."""

    seed: int = 0
    """Seed of the simulation's ``random.Random``; same seed + same scenario = same run."""

    loss: float = 0.0
    """Probability (0..1) that any one message is dropped."""

    delay_min: float = 0.0005
    """Seconds; lower bound of the default uniform one-way delay."""

    delay_max: float = 0.002
    """Seconds; upper bound of the default uniform one-way delay."""

    fifo: bool = False
    """Deliver messages of one (src, dst) link in send order (TCP-like) instead of independently."""

    def validate(self) -> SimConfig:
        """Raise ValueError naming the first bad field; return self."""
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss must be in [0, 1]")
        if self.delay_min < 0:
            raise ValueError("delay_min must be >= 0")
        if self.delay_max < self.delay_min:
            raise ValueError("delay_max must be >= delay_min")
        return self


@dataclass
class SimStats:
    """Counters of one run (messages and, with ``size_of``, bytes)."""

    sent: int = 0
    delivered: int = 0
    dropped_loss: int = 0
    dropped_partition: int = 0
    dropped_down: int = 0
    events: int = 0
    bytes_sent: int = 0
    bytes_by_node: dict[str, int] = field(default_factory=dict)


class _Slot:
    __slots__ = ("backlog", "node", "stall_token", "stalled_until", "timer_at", "timer_token", "up")

    def __init__(self, node: SimNode) -> None:
        self.node = node
        self.up = True
        self.timer_at = _INF
        self.timer_token = -1
        self.stalled_until = 0.0
        self.stall_token = -1
        self.backlog: list[tuple[str, Any]] = []


class Simulation:
    """In-memory network of sans-I/O nodes on a virtual clock."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        delay_fn: Callable[[random.Random], float] | None = None,
        size_of: Callable[[Any], int] | None = None,
        on_step: Callable[[str, SimNode, float], None] | None = None,
        drop_filter: Callable[[str, str, Any], bool] | None = None,
    ) -> None:
        """``size_of(msg)`` enables byte accounting; ``on_step(node_id, node, now)`` runs after every
        receive/tick of a node (drain its events there); ``drop_filter(src, dst, msg)`` returning True
        drops that message."""
        self.config = cfg = (config or SimConfig()).validate()
        self.rng = random.Random(cfg.seed)
        self.now = 0.0
        self.stats = SimStats()
        self._heap: list[tuple[float, int, int, str, Any]] = []
        self._seq = 0
        self._slots: dict[str, _Slot] = {}
        self._group: dict[str, int] | None = None
        self._link_last: dict[tuple[str, str], float] = {}
        self.loss = cfg.loss
        lo, hi = cfg.delay_min, cfg.delay_max
        self._delay_fn = delay_fn or (lambda rng: lo + (hi - lo) * rng.random())
        self._size_of = size_of
        self.on_step = on_step
        self.drop_filter = drop_filter

    # ------------------------------------------------------------------ topology

    def derive_rng(self) -> random.Random:
        """A generator for a node's core, seeded from the simulation's own (keeps runs reproducible)."""
        return random.Random(self.rng.getrandbits(64))

    def add_node(self, node_id: str, node: SimNode) -> None:
        if node_id in self._slots:
            raise ValueError(f"node {node_id!r} already exists")
        self._slots[node_id] = _Slot(node)
        self._after(node_id, self._slots[node_id])

    def node(self, node_id: str) -> SimNode:
        return self._slots[node_id].node

    def node_ids(self) -> list[str]:
        return list(self._slots)

    def is_up(self, node_id: str) -> bool:
        return self._slots[node_id].up

    def crash(self, node_id: str) -> None:
        """Stop the node: its timers and all messages to it are lost until ``restart``."""
        slot = self._slots[node_id]
        slot.up = False
        slot.timer_token = -1
        slot.timer_at = _INF
        slot.stall_token = -1
        slot.stalled_until = 0.0
        slot.backlog.clear()

    def restart(self, node_id: str, node: SimNode) -> None:
        """Bring ``node_id`` back with a fresh core (its state before the crash is gone)."""
        slot = self._slots[node_id]
        self.crash(node_id)
        slot.node = node
        slot.up = True
        self._after(node_id, slot)

    def stall(self, node_id: str, duration: float) -> None:
        """Freeze the node for ``duration`` seconds from now (extends a running stall)."""
        slot = self._slots[node_id]
        if not slot.up:
            return
        until = self.now + duration
        if until <= slot.stalled_until:
            return
        slot.stalled_until = until
        self._seq += 1
        slot.stall_token = self._seq
        heapq.heappush(self._heap, (until, self._seq, _STALL_END, node_id, self._seq))

    def is_stalled(self, node_id: str) -> bool:
        return self._slots[node_id].stalled_until > self.now

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Allow traffic only inside each group; unlisted nodes form one more group together."""
        g: dict[str, int] = {}
        for i, members in enumerate(groups):
            for nid in members:
                g[nid] = i
        self._group = g

    def heal(self) -> None:
        self._group = None

    def _cut(self, a: str, b: str) -> bool:
        g = self._group
        return g is not None and g.get(a, -1) != g.get(b, -1)

    # ------------------------------------------------------------------ scheduling

    def call_at(self, at: float, fn: Callable[[], None]) -> None:
        """Run ``fn()`` at virtual time ``at`` (scenario scripting, measurements)."""
        self._seq += 1
        heapq.heappush(self._heap, (max(at, self.now), self._seq, _CALL, "", fn))

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.call_at(self.now + delay, fn)

    def send(self, src: str, dst: str, msg: Any) -> None:
        """Put a message on the network as if ``src`` sent it (subject to loss, delay, partitions)."""
        st = self.stats
        st.sent += 1
        size_of = self._size_of
        if size_of is not None:
            n = size_of(msg)
            st.bytes_sent += n
            st.bytes_by_node[src] = st.bytes_by_node.get(src, 0) + n
        if self.loss and self.rng.random() < self.loss:
            st.dropped_loss += 1
            return
        if self._group is not None and self._cut(src, dst):
            st.dropped_partition += 1
            return
        if self.drop_filter is not None and self.drop_filter(src, dst, msg):
            st.dropped_loss += 1
            return
        at = self.now + self._delay_fn(self.rng)
        if self.config.fifo:
            key = (src, dst)
            last = self._link_last.get(key, 0.0)
            if at < last:
                at = last
            self._link_last[key] = at
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, _DELIVER, dst, (src, msg)))

    def _after(self, node_id: str, slot: _Slot) -> None:
        """Flush a node's outbox and (re)place its timer after it ran."""
        node = slot.node
        for dst, msg in node.outbox():
            self.send(node_id, dst, msg)
        d = node.next_deadline()
        if d is not None and d < slot.timer_at:
            now = self.now
            if d < now:
                d = now
            self._seq += 1
            slot.timer_at = d
            slot.timer_token = self._seq
            heapq.heappush(self._heap, (d, self._seq, _TIMER, node_id, self._seq))
        if self.on_step is not None:
            self.on_step(node_id, node, self.now)

    # ------------------------------------------------------------------ running

    def run_until(self, until: float) -> None:
        """Process every event up to virtual time ``until``; the clock then reads ``until``."""
        heap = self._heap
        slots = self._slots
        st = self.stats
        pop = heapq.heappop
        while heap and heap[0][0] <= until:
            t, _, kind, nid, payload = pop(heap)
            self.now = t
            st.events += 1
            if kind == _DELIVER:
                slot = slots.get(nid)
                if slot is None or not slot.up:
                    st.dropped_down += 1
                    continue
                src, msg = payload
                if self._group is not None and self._cut(src, nid):
                    st.dropped_partition += 1
                    continue
                if slot.stalled_until > t:
                    slot.backlog.append(payload)
                    continue
                st.delivered += 1
                slot.node.receive(src, msg, t)
                self._after(nid, slot)
            elif kind == _TIMER:
                slot = slots[nid]
                if payload != slot.timer_token:
                    continue
                slot.timer_at = _INF
                slot.timer_token = -1
                if slot.stalled_until > t:
                    continue  # the stall's end runs the overdue timers
                slot.node.tick(t)
                self._after(nid, slot)
            elif kind == _CALL:
                payload()
            else:  # _STALL_END
                slot = slots[nid]
                if payload != slot.stall_token:
                    continue
                slot.stalled_until = 0.0
                slot.stall_token = -1
                node = slot.node
                node.tick(t)
                backlog, slot.backlog = slot.backlog, []
                for src, msg in backlog:
                    st.delivered += 1
                    node.receive(src, msg, t)
                slot.timer_at = _INF
                slot.timer_token = -1
                self._after(nid, slot)
        if until > self.now:
            self.now = until

    def run_for(self, duration: float) -> None:
        self.run_until(self.now + duration)

    @property
    def pending_events(self) -> int:
        return len(self._heap)
