"""A synchronous in-memory network of RaftNodes (etcd-io/raft's test ``network``).

Every node is driven exactly as a real driver would: after each input, drain its
Ready -- save to its MemoryStorage, queue the messages, apply committed entries,
advance. ``deliver()`` then moves queued messages one by one (FIFO) until none is
left, dropping those on cut links, to isolated or crashed nodes, or at random
(``drop(rate)``, seeded). The net checks the paper's safety properties as it runs:

* Election Safety: at most one leader per term.
* State Machine Safety: no two nodes apply different entries at one index.
* committed prefixes never diverge (checked on every node's commit index).
* Leader Completeness: a new leader's log holds every entry committed before.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable

from rustyray.membership.raft import (
    MemoryStorage,
    RaftConfig,
    RaftEntry,
    RaftMessage,
    RaftNode,
    Role,
    Storage,
)


class RaftTestNet:
    def __init__(self, ids: Iterable[str], *, seed: int = 0, pre_vote: bool = True,
                 check_quorum: bool = True, election_tick: int = 10, heartbeat_tick: int = 1,
                 max_entries_per_append: int = 64, max_inflight: int = 256,
                 storage_factory: Callable[[str], Storage] = lambda _id: MemoryStorage()) -> None:
        self.ids = list(ids)
        self.rng = random.Random(seed)
        self._cfg_kw = dict(election_tick=election_tick, heartbeat_tick=heartbeat_tick, pre_vote=pre_vote,
                            check_quorum=check_quorum, max_entries_per_append=max_entries_per_append,
                            max_inflight=max_inflight)
        self.nodes: dict[str, RaftNode] = {}
        self.storage_factory = storage_factory
        self.storages: dict[str, Storage] = {}
        self.applied: dict[str, list[RaftEntry]] = {}
        self.queue: deque[RaftMessage] = deque()
        self.cut_links: set[frozenset[str]] = set()
        self.isolated: set[str] = set()
        self.down: set[str] = set()
        self.drop_rate = 0.0
        self.sent: list[RaftMessage] = []  # every message handed to the network, for assertions
        # Safety bookkeeping.
        self.leaders_by_term: dict[int, str] = {}
        self.committed: dict[int, RaftEntry] = {}  # index -> the one entry committed there
        self.applied_at: dict[int, RaftEntry] = {}
        self._checked: dict[int, int] = {}  # id(node object) -> committed prefix already compared
        for id_ in self.ids:
            self.storages[id_] = storage_factory(id_)
            self.nodes[id_] = RaftNode.bootstrap(self.config(id_), self.ids, random.Random(self.rng.random()))
            self.applied[id_] = []
            self.process(id_)

    def config(self, id_: str) -> RaftConfig:
        return RaftConfig(id=id_, **self._cfg_kw)

    # -- membership of the test net --------------------------------------------------
    def add_joiner(self, id_: str) -> RaftNode:
        """A fresh, empty node (to be added with a conf change)."""
        self.ids.append(id_)
        self.storages[id_] = self.storage_factory(id_)
        self.nodes[id_] = RaftNode.join(self.config(id_), random.Random(self.rng.random()))
        self.applied[id_] = []
        return self.nodes[id_]

    def crash(self, id_: str) -> None:
        """Lose the node's volatile state; its storage survives."""
        self.down.add(id_)
        self.queue = deque(m for m in self.queue if m.to_id != id_)

    def restart(self, id_: str) -> RaftNode:
        self.down.discard(id_)
        st = self.storages[id_].load()
        self.nodes[id_] = RaftNode.restore(self.config(id_), st, random.Random(self.rng.random()))
        self.applied[id_] = []
        self.process(id_)
        return self.nodes[id_]

    # -- faults --------------------------------------------------------------------
    def cut(self, a: str, b: str) -> None:
        self.cut_links.add(frozenset((a, b)))

    def isolate(self, x: str) -> None:
        self.isolated.add(x)

    def heal(self) -> None:
        self.cut_links.clear()
        self.isolated.clear()
        self.drop_rate = 0.0

    def drop(self, rate: float) -> None:
        self.drop_rate = rate

    def _lost(self, m: RaftMessage) -> bool:
        if m.to_id in self.down or m.from_id in self.down:
            return True
        if m.to_id in self.isolated or m.from_id in self.isolated:
            return True
        if frozenset((m.from_id, m.to_id)) in self.cut_links:
            return True
        return self.drop_rate > 0 and self.rng.random() < self.drop_rate

    # -- driving ---------------------------------------------------------------------
    def process(self, id_: str) -> None:
        """Drain the node's Ready in the documented order, checking invariants."""
        node = self.nodes[id_]
        while node.has_ready():
            rd = node.ready()
            self.storages[id_].save(rd)
            for m in rd.messages:
                self.sent.append(m)
                self.queue.append(m)
            for e in rd.committed_entries:
                seen = self.applied_at.setdefault(e.index, e)
                assert seen == e, f"state machine safety: {id_} applied {e} at {e.index}, another applied {seen}"
                assert e.index == len(self.applied[id_]) + 1, "applied out of order"
                self.applied[id_].append(e)
            if rd.soft_state is not None and rd.soft_state.role is Role.LEADER:
                self._on_new_leader(node)
            node.advance(rd)
            self._check_commit(node)

    def _on_new_leader(self, node: RaftNode) -> None:
        other = self.leaders_by_term.setdefault(node.term, node.id)
        assert other == node.id, f"election safety: {other} and {node.id} both lead term {node.term}"
        for idx, e in self.committed.items():  # Leader Completeness (§5.4)
            assert idx <= node.log.last_index() and node.log.entry(idx) == e, (
                f"leader completeness: {node.id} (term {node.term}) lacks committed entry {idx}")

    def _check_commit(self, node: RaftNode) -> None:
        # Entries at or below a node's commit can never change (RaftLog asserts it), so
        # each node's committed prefix is compared once, from where we left off.
        start = self._checked.get(id(node), 0) + 1
        for idx in range(start, node.log.commit + 1):
            e = node.log.entry(idx)
            seen = self.committed.setdefault(idx, e)
            assert seen == e, f"committed prefixes diverge at {idx}: {node.id} has {e}, committed {seen}"
        self._checked[id(node)] = max(start - 1, node.log.commit)

    def deliver(self, max_messages: int = 1_000_000) -> int:
        """Deliver queued messages (and those they cause) until the queue is empty."""
        n = 0
        while self.queue:
            m = self.queue.popleft()
            if self._lost(m):
                continue
            n += 1
            assert n <= max_messages, "message storm"
            self.nodes[m.to_id].step(m)
            self.process(m.to_id)
        return n

    def send(self, *msgs: RaftMessage) -> None:
        """Inject messages as if a peer sent them."""
        self.queue.extend(msgs)
        self.deliver()

    def tick(self, n: int = 1, ids: Iterable[str] | None = None) -> None:
        """n rounds of: tick every live node, then deliver everything."""
        targets = list(ids) if ids is not None else None
        for _ in range(n):
            for id_ in targets if targets is not None else list(self.nodes):
                if id_ in self.down:
                    continue
                self.nodes[id_].tick()
                self.process(id_)
            self.deliver()

    def tick_until(self, pred: Callable[[], bool], max_ticks: int = 1000) -> int:
        for i in range(max_ticks):
            if pred():
                return i
            self.tick()
        assert pred(), f"condition not reached in {max_ticks} ticks: {self.describe()}"
        return max_ticks

    def campaign(self, id_: str) -> None:
        self.nodes[id_].campaign()
        self.process(id_)
        self.deliver()

    def propose(self, id_: str, data: bytes) -> int:
        idx = self.nodes[id_].propose(data)
        self.process(id_)
        self.deliver()
        return idx

    def conf_change(self, id_: str, op: str, node_id: str) -> int:
        idx = self.nodes[id_].propose_conf_change(op, node_id)
        self.process(id_)
        self.deliver()
        return idx

    # -- queries ---------------------------------------------------------------------
    def leaders(self) -> list[RaftNode]:
        return [n for id_, n in self.nodes.items() if id_ not in self.down and n.role is Role.LEADER]

    def leader(self) -> RaftNode | None:
        """The live leader of the highest term, if any."""
        ls = self.leaders()
        return max(ls, key=lambda n: n.term) if ls else None

    def log_terms(self, id_: str) -> list[int]:
        n = self.nodes[id_]
        return [n.log.term(i) for i in range(1, n.log.last_index() + 1)]

    def describe(self) -> str:
        return "; ".join(repr(n) + (" DOWN" if i in self.down else "") for i, n in self.nodes.items())

    def check_log_matching(self) -> None:
        """§5.3 Log Matching: same index and term => identical up to that index."""
        logs = {i: n.log.slice(1, n.log.last_index()) for i, n in self.nodes.items()}
        ids = list(logs)
        for a in range(len(ids)):
            for b in range(a + 1, len(ids)):
                la, lb = logs[ids[a]], logs[ids[b]]
                top = 0
                for i in range(min(len(la), len(lb)) - 1, -1, -1):
                    if la[i].term == lb[i].term:
                        top = i + 1
                        break
                assert la[:top] == lb[:top], f"log matching broken between {ids[a]} and {ids[b]} below {top}"
