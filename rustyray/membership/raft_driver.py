"""Asyncio driver of the Raft core on one node (the etcd-io/raft ``Ready`` loop).

One task owns ``ready()``/``advance()``: persist entries and hard state (in a
worker thread: FileStorage fsyncs), then send messages, then apply committed
entries, then advance, exactly in the order the core documents. Ticks come from a
timer task at ``RaftConfig.tick_interval``. Messages to peers are best effort over
the node's existing connections (Raft retries), so an unreachable peer never
stalls the loop.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rustyray._aio import cancel_and_wait
from rustyray.membership.raft import (
    EntryKind,
    FileStorage,
    NotLeader,
    ProposalDropped,
    RaftConfig,
    RaftEntry,
    RaftNode,
    Role,
    decode_conf_change,
)

if TYPE_CHECKING:
    from rustyray.transport.api import Host

log = logging.getLogger(__name__)


class RaftDriver:
    def __init__(self, node: Host, config: RaftConfig, storage_dir: Path, *,
                 send: Callable[[str, Any], None], on_apply: Callable[[RaftEntry], None]) -> None:
        self.node = node
        self.config = config
        self.storage = FileStorage(storage_dir)
        self.raft: RaftNode | None = None
        self._send = send
        self._on_apply = on_apply
        self._kick = asyncio.Event()
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._waiting: list[int] = []  # heap of the indexes in _waiters
        # Propose timeouts: a heap of (deadline, index) and each waiting proposal's deadline. Plain
        # numbers only, so the cyclic GC can untrack them (100,000s pending at high rates).
        self._deadlines: list[tuple[float, int]] = []
        self._deadline_of: dict[int, float] = {}
        self._proposed_terms: dict[int, int] = {}  # index -> term of our proposal awaiting apply
        self._tasks: list[asyncio.Task[Any]] = []
        self.rng = random.Random()

    # -- lifecycle ---------------------------------------------------------------
    def has_state(self) -> bool:
        state = self.storage.load()
        return bool(state.entries)

    def restore(self) -> None:
        self.raft = RaftNode.restore(self.config, self.storage.load(), self.rng)
        self._start()

    def bootstrap(self, members: list[str]) -> None:
        self.raft = RaftNode.bootstrap(self.config, sorted(members), self.rng)
        self._start()

    def join_empty(self) -> None:
        """An empty node that waits for a leader to add it (see ``RaftNode.join``)."""
        self.raft = RaftNode.join(self.config, self.rng)
        self._start()

    def _start(self) -> None:
        self._tasks = [self.node.spawn(self._ticker(), name="raft tick"),
                       self.node.spawn(self._ready_loop(), name="raft ready")]
        self._kick.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks, 2.0, owner="raft driver")
        self.storage.close()

    @property
    def started(self) -> bool:
        return self.raft is not None

    # -- input -------------------------------------------------------------------
    def step(self, msg: Any) -> None:
        if self.raft is None:
            return
        self.raft.step(msg)
        self._kick.set()

    async def _ticker(self) -> None:
        interval = self.config.tick_interval
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            assert self.raft is not None
            self.raft.tick()
            if self.raft.has_ready():
                self._kick.set()
            if self._deadlines and self._deadlines[0][0] <= loop.time():
                self._expire(loop.time())

    async def _ready_loop(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            raft = self.raft
            assert raft is not None
            while raft.has_ready():
                rd = raft.ready()
                # A leader's appends go out before its own fsync, so followers write in parallel.
                self._send_all(rd.messages[:rd.early])
                if rd.entries or rd.hard_state is not None:
                    await asyncio.to_thread(self.storage.save, rd)
                self._send_all(rd.messages[rd.early:])
                check = bool(self._proposed_terms)
                for entry in rd.committed_entries:
                    if check:
                        self._check_proposal(entry)
                    try:
                        self._on_apply(entry)
                    except Exception:
                        log.exception("applying raft entry %d failed", entry.index)
                raft.advance(rd)
                self._wake_waiters(raft.applied)

    def _send_all(self, messages: tuple[Any, ...]) -> None:
        for msg in messages:
            try:
                self._send(msg.to_id, msg)
            except Exception:
                log.debug("raft send to %s failed", msg.to_id, exc_info=True)

    def _check_proposal(self, entry: RaftEntry) -> None:
        """A proposal made by a leader that lost its leadership before committing (a partitioned
        one) may be truncated and its index filled by the new leader's entry: its waiter must
        fail, not see "applied up to that index" as success."""
        term = self._proposed_terms.pop(entry.index, None)
        if term is None or term == entry.term:
            return
        fut = self._waiters.pop(entry.index, None)
        if fut is not None and not fut.done():
            fut.set_exception(ProposalDropped(
                f"entry {entry.index} of term {term} was replaced by one of term {entry.term}; not committed"))

    def _wake_waiters(self, applied: int) -> None:
        waiting = self._waiting
        while waiting and waiting[0] <= applied:
            index = heapq.heappop(waiting)
            fut = self._waiters.pop(index, None)
            self._deadline_of.pop(index, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    def _add_waiter(self, index: int) -> asyncio.Future[None]:
        fut = self._waiters[index] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, index)
        return fut

    def _expire(self, now: float) -> None:
        """Fail proposals whose timeout passed (checked once a tick: no timer per proposal)."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            deadline, index = heapq.heappop(deadlines)
            if self._deadline_of.get(index) != deadline:
                continue  # applied already (or the index was proposed again, later)
            del self._deadline_of[index]
            fut = self._waiters.pop(index, None)
            if fut is not None and not fut.done():
                fut.set_exception(TimeoutError(f"raft entry {index} not applied in time"))

    # -- proposals ---------------------------------------------------------------
    async def wait_applied(self, index: int, timeout: float) -> None:
        assert self.raft is not None
        if self.raft.status().applied_index >= index:
            return
        fut = self._waiters.get(index)
        if fut is None:
            fut = self._add_waiter(index)
        await asyncio.wait_for(asyncio.shield(fut), timeout)

    async def propose(self, data: bytes, timeout: float = 5.0) -> int:
        """Propose on the leader and wait until applied here; raises ``NotLeader`` elsewhere.

        ``TimeoutError`` after ``timeout`` (give or take one tick). This is the hot path of many
        proposals in flight: one future each, no task or timer per proposal; everything
        proposed before the next Ready shares one AppendEntries stream and one fsync.
        """
        raft = self.raft
        assert raft is not None
        index = raft.propose(data)
        self._proposed_terms[index] = raft.term
        self._kick.set()
        fut = self._add_waiter(index)
        deadline = self._deadline_of[index] = asyncio.get_running_loop().time() + timeout
        heapq.heappush(self._deadlines, (deadline, index))
        await fut
        return index

    async def change(self, op: str, node_id: str, timeout: float = 10.0) -> int:
        """Add or remove one server through the log (leader only) and wait until it applies."""
        assert self.raft is not None
        index = self.raft.propose_conf_change(op, node_id)
        self._proposed_terms[index] = self.raft.term
        self._kick.set()
        await self.wait_applied(index, timeout)
        return index

    def transfer_leadership(self, to_id: str) -> None:
        assert self.raft is not None
        self.raft.transfer_leadership(to_id)
        self._kick.set()

    # -- introspection -------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.raft is not None and self.raft.role is Role.LEADER

    @property
    def leader(self) -> str | None:
        return self.raft.leader if self.raft is not None else None

    def members(self) -> list[str]:
        return sorted(self.raft.members) if self.raft is not None else []

    def status(self) -> dict[str, Any]:
        if self.raft is None:
            return {"state": "NotStarted", "term": 0, "leader": None, "members": [], "commit_index": 0,
                    "applied_index": 0}
        return self.raft.status().to_dict()


def describe_entry(entry: RaftEntry) -> dict[str, Any]:
    """A committed entry as the API shows it."""
    out: dict[str, Any] = {"index": entry.index, "term": entry.term, "kind": entry.kind.value}
    if entry.kind is EntryKind.CONF_CHANGE:
        cc = decode_conf_change(entry.data)
        out.update(op=cc.op, node_id=cc.node_id, members=sorted(cc.members))
    return out


__all__ = ["NotLeader", "RaftDriver", "describe_entry"]
