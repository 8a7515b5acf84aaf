"""Partitions in the simulator with SWIM and Raft side by side, at 5 and at 100 members.

Each scenario splits the cluster again and again (sizes and members drawn from a seeded RNG,
the Raft leader alternately on the minority and on the majority side), keeps proposing on
whatever leader each side has, heals, and checks:

* Election Safety (one leader per term) and State Machine Safety (one entry per committed index)
  on every simulator step -- ``RaftCluster`` asserts them as the run goes;
* the minority never commits: what a minority leader (or ex-leader) accepted is never applied
  anywhere, and is gone from every log after the heal; the majority keeps committing;
* SWIM on each side holds the other side Dead (Suspect at least) by the end of the split;
* within 30 virtual seconds of the heal every member sees every other Alive again, with no
  operator rejoin (the SWIM core's reconnect push-pull with Dead members), and Raft converges
  on one leader with identical committed logs.
"""

from __future__ import annotations

import random

import pytest

from rustyray.membership.raft import RaftConfig
from rustyray.membership.swim import MemberState, SwimConfig
from rustyray.sim.network import SimConfig
from rustyray.sim.raft_cluster import RaftCluster

_NEAR = (MemberState.ALIVE, MemberState.SUSPECT)  # a same-side member may be briefly suspected, never Dead
MERGE_BUDGET_S = 30.0
DEAD_BUDGET_S = 200.0  # a 10-member side probes slowly (its LHM blames itself): ~150 s for 90 members


def _committed_log(c: RaftCluster, nid: str) -> list[tuple[int, bytes]]:
    log = c.raft(nid).log
    return [(e.term, e.data) for e in log.slice(1, log.commit)]


def _converged(c: RaftCluster) -> bool:
    lead = c.stable_leader()
    if lead is None:
        return False
    last = c.raft(lead).log.last_index()
    return all(c.raft(i).log.commit == last for i in c.ids)


def _split(c: RaftCluster, rng: random.Random, minority_size: int, leader_in_minority: bool):
    leader = c.stable_leader()
    assert leader is not None
    others = [i for i in c.ids if i != leader]
    rng.shuffle(others)
    minority = [leader, *others[: minority_size - 1]] if leader_in_minority else others[:minority_size]
    majority = [i for i in c.ids if i not in minority]
    return leader, minority, majority


def _run_scenario(n: int, splits: list[tuple[int, bool]], seed: int, min_split_s: float,
                  raft_cfg: RaftConfig) -> dict:
    """``splits``: (minority size, whether the current Raft leader is put on the minority side)."""
    rng = random.Random(seed)
    c = RaftCluster(n, raft_cfg, SimConfig(seed=seed, loss=0.01), swim_config=SwimConfig.lan())
    c.run_until_leader(15)
    c.run_until(c.all_alive, 10)
    merge_times: list[float] = []
    dead_times: list[float] = []
    for rnd, (size, leader_in_minority) in enumerate(splits):
        leader, minority, majority = _split(c, rng, size, leader_in_minority)
        c.sim.partition([minority, majority])
        minority_data: list[bytes] = []
        majority_data: list[bytes] = []
        if leader in minority:
            # the old leader still believes it leads (check-quorum steps it down only after an
            # election timeout): what it accepts now must never commit
            data = f"r{rnd}-stranded".encode()
            assert c.propose(leader, data) is not None
            minority_data.append(data)
        cross = [(o, s) for a, b in ((minority, majority), (majority, minority)) for o in a for s in b]

        def far_side_dead(cross: list[tuple[str, str]] = cross) -> bool:
            return all(c.swim_view(o, s) is MemberState.DEAD for o, s in cross)

        start = c.sim.now
        k = 0
        while c.sim.now - start < min_split_s or k % 8 or not far_side_dead():  # checked every 2 s
            assert c.sim.now - start < DEAD_BUDGET_S, "the far side was not declared Dead in time"
            c.sim.run_for(0.25)
            k += 1
            for side, sink in ((minority, minority_data), (majority, majority_data)):
                for lead in c.leaders(side):
                    data = f"r{rnd}-{'min' if side is minority else 'maj'}-{k}".encode()
                    if c.propose(lead, data) is not None:
                        sink.append(data)
            assert not [d for d in minority_data if c.is_committed(d)], "the minority committed an entry"
            if k % 8 == 0:
                assert all(c.swim_view(o, s) in _NEAR for a in (minority, majority) for o in a[:3] for s in a
                           if s != o), "a member holds a member of its own side Dead"
        dead_times.append(c.sim.now - start)
        # the majority elected a leader and kept committing; the minority has none left
        assert c.stable_leader(majority) is not None
        assert c.leaders(minority) == []
        assert any(c.is_committed(d) for d in majority_data)
        # heal: SWIM merges by itself, Raft converges on one leader and one log
        c.sim.heal()
        merge_times.append(c.run_until(c.all_alive, MERGE_BUDGET_S))
        c.run_until(lambda: _converged(c), MERGE_BUDGET_S)
        assert not [d for d in minority_data if c.is_committed(d)]
        ref = _committed_log(c, c.ids[0])
        for nid in c.ids:
            assert _committed_log(c, nid) == ref
            log = c.raft(nid).log
            stranded = {e.data for e in log.slice(1, log.last_index())} & set(minority_data)
            assert not stranded, f"{nid} still holds an entry of the minority leader"
    terms = sorted(c.leaders_by_term)
    print(f"n={n} seed={seed} dead after split (s): {dead_times} merged after heal (s): {merge_times}")
    return {"merge_times": merge_times, "dead_times": dead_times, "terms": terms, "committed": len(c.committed)}


@pytest.mark.parametrize("seed", [11, 12])
def test_five_members_split_heal_repeatedly(seed: int) -> None:
    splits = [(2, True), (1, False), (1, True), (2, False)]
    out = _run_scenario(5, splits, seed, min_split_s=5.0, raft_cfg=RaftConfig.lan("x"))
    assert max(out["merge_times"]) <= MERGE_BUDGET_S
    assert len(out["terms"]) >= 3  # leaders changed with the splits, never two in one term


def test_hundred_members_split_heal_repeatedly() -> None:
    # 100 voters: a 100 ms tick (1-2 s election timeout) keeps the run short; behaviour is the same.
    cfg = RaftConfig(id="x", tick_interval=0.1)
    out = _run_scenario(100, [(40, True), (10, True), (40, False)], 21, min_split_s=5.0, raft_cfg=cfg)
    assert max(out["merge_times"]) <= MERGE_BUDGET_S
    assert out["committed"] > 10


def test_raft_in_the_simulator_survives_a_leader_crash_and_restart_from_storage() -> None:
    c = RaftCluster(5, RaftConfig.lan("x"), SimConfig(seed=3, loss=0.01), swim_config=SwimConfig.lan())
    lead = c.run_until_leader(10)
    for i in range(5):
        assert c.propose(lead, f"before-{i}".encode()) is not None
    c.run_until(lambda: all(c.is_committed(f"before-{i}".encode()) for i in range(5)), 5)
    c.crash(lead)
    t0 = c.sim.now
    new = c.run_until_leader(10, among=[i for i in c.ids if i != lead])
    assert new != lead and c.sim.now - t0 < 5.0
    assert c.propose(new, b"after") is not None
    c.run_until(lambda: c.is_committed(b"after"), 5)
    c.run_until(lambda: c.swim_view(new, lead) is MemberState.DEAD, 30)
    c.restart(lead, seeds=[new], incarnation=1)  # its log comes back from MemoryStorage
    c.run_until(lambda: _converged(c) and c.all_alive(), 30)
    assert [e.data for e in c.member(lead).raft.applied if e.data].count(b"after") == 1
    assert c.leaders_by_term[max(c.leaders_by_term)] == new
