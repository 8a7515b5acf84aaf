"""RaftDriver's proposal path: many in flight resolve in log order, and a proposal that cannot
commit fails with TimeoutError (deadlines checked by the ticker, no timer per proposal)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rustyray.membership.raft import RaftConfig, RaftEntry
from rustyray.membership.raft_driver import RaftDriver


class _Host:
    def spawn(self, coro: Any, name: str = "") -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(coro, name=name)


def _driver(tmp_path: Path, applied: list[RaftEntry]) -> RaftDriver:
    cfg = RaftConfig(id="a", election_tick=2, heartbeat_tick=1, tick_interval=0.005)
    return RaftDriver(_Host(), cfg, tmp_path, send=lambda to, m: None, on_apply=applied.append)  # type: ignore[arg-type]


async def test_many_proposals_in_flight_resolve_in_order(tmp_path: Path) -> None:
    applied: list[RaftEntry] = []
    d = _driver(tmp_path, applied)
    d.bootstrap(["a"])
    try:
        assert d.raft is not None
        d.raft.campaign()  # a single voter wins at once
        assert d.is_leader
        indexes = await asyncio.gather(*(d.propose(b"p%d" % k, timeout=10) for k in range(500)))
        assert indexes == sorted(indexes) and len(set(indexes)) == 500
        by_index = {e.index: e.data for e in applied}
        assert [by_index[i] for i in indexes] == [b"p%d" % k for k in range(500)]
        assert d.status()["applied_index"] >= indexes[-1]
        assert not d._waiters and not d._waiting
    finally:
        await d.stop()


async def test_proposal_without_a_quorum_times_out(tmp_path: Path) -> None:
    applied: list[RaftEntry] = []
    d = _driver(tmp_path, applied)
    d.bootstrap(["a"])
    try:
        assert d.raft is not None
        d.raft.campaign()
        await d.propose(b"alone", timeout=10)
        d.raft.propose_conf_change("add", "b")  # quorum is now 2 of {a, b}; b never answers
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        try:
            await d.propose(b"stuck", timeout=0.05)
        except TimeoutError:
            pass
        else:
            raise AssertionError("a proposal without a quorum must not succeed")
        assert loop.time() - t0 >= 0.05
        assert b"stuck" not in [e.data for e in applied]
    finally:
        await d.stop()
