"""Stalled members in the simulator: Lifeguard against plain SWIM.

A stalled member (GC pause, starved CPU) runs nothing for 200-2,000 ms -- longer than the 250 ms
probe timeout -- again and again. Two stall models:

* random instants (``stall_randomly``): the others' probes of it fail, so it is suspected; it must
  not be declared Dead while it answers within the suspicion timeout;
* mid-probe (``stall_mid_probe``): it freezes right after sending a probe, so the ack waits unread
  while its own probe timers expire. Plain SWIM then accuses the healthy target (and can declare
  it Dead when a later stall hides the refutation); Lifeguard's local health awareness (LHM, and
  deferring verdicts reached while it was not running) keeps it from accusing anyone.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from rustyray.membership.swim import MemberState, SwimConfig
from rustyray.sim.network import SimConfig
from rustyray.sim.raft_cluster import FalsePositiveTracker, stall_mid_probe, stall_randomly
from rustyray.sim.swim_cluster import SwimCluster

LG = SwimConfig.lan()
PLAIN = replace(LG, lifeguard=False)


def _run(cfg: SwimConfig, n: int, stalling: list[str], seed: int, duration: float, *, mid_probe: float = 0.0,
         gap: float = 3.0) -> tuple[SwimCluster, FalsePositiveTracker, list[tuple[str, float, float]], dict]:
    c = SwimCluster(n, cfg, SimConfig(seed=seed, loss=0.01))
    tracker = FalsePositiveTracker(c, stalling)
    rng = random.Random(seed)
    if mid_probe:
        stalls = stall_mid_probe(c.sim, stalling, mid_probe, 0.2, 2.0, rng)
    else:
        stalls = stall_randomly(c.sim, stalling, 0.2, 2.0, gap, duration, rng)
    peak = {nid: 1 for nid in c.ids}

    def sample() -> None:
        for nid in c.ids:
            peak[nid] = max(peak[nid], c.node(nid).awareness)
        if c.sim.now < duration:
            c.sim.call_later(0.25, sample)

    c.sim.call_later(0.25, sample)
    c.sim.run_until(duration)
    return c, tracker, stalls, peak


@pytest.mark.parametrize("seed", [1, 2])
def test_lifeguard_a_member_stalling_at_random_is_never_declared_dead(seed: int) -> None:
    c, tracker, stalls, peak = _run(LG, 20, ["node0"], seed, 300.0)
    fp = tracker.summary()
    assert len(stalls) >= 50 and all(0.2 <= b - a <= 2.0 for _, a, b in stalls)
    assert fp["suspicions_of_stalling"] > 0  # it really stopped answering: probes of it failed
    assert fp["false_deaths"] == 0 and fp["deaths_while_stalled"] == 0  # refuted within the timeout
    assert fp["false_suspicions_by_stalling"] == 0 and fp["false_suspicions_of_healthy"] == 0
    assert c.declarations == {}
    assert peak["node0"] > 1  # its LHM noticed; the healthy members' did not move
    assert all(peak[i] == 1 for i in c.ids if i != "node0")
    c.sim.run_for(10.0)  # after the last stall everyone sees it Alive
    assert all(c.node(o).state_of("node0") is MemberState.ALIVE for o in c.ids[1:])


def test_lifeguard_a_member_freezing_mid_probe_accuses_no_one_where_plain_swim_does() -> None:
    _, lg_fp, lg_stalls, lg_peak = _run(LG, 20, ["node0"], 3, 300.0, mid_probe=0.3)
    _, pl_fp, pl_stalls, _ = _run(PLAIN, 20, ["node0"], 3, 300.0, mid_probe=0.3)
    a, b = lg_fp.summary(), pl_fp.summary()
    assert len(lg_stalls) >= 40 and len(pl_stalls) >= 40
    # plain SWIM: the frozen member's expired probe timers accuse its healthy targets
    assert b["false_suspicions_by_stalling"] >= 50
    # Lifeguard: verdicts reached while frozen are deferred until the inbox (with the ack) is read
    assert a["false_suspicions_by_stalling"] == 0 and a["false_deaths_by_stalling"] == 0
    assert a["false_deaths"] == 0
    assert lg_peak["node0"] > 1


def test_plain_swim_false_positives_are_at_least_fifty_times_lifeguard_s() -> None:
    """10 % of 100 members stall 200-2,000 ms (mean gap 1 s) and freeze after 30 % of their probes."""
    totals = {}
    for name, cfg in (("lifeguard", LG), ("plain", PLAIN)):
        stalling = [f"node{i}" for i in range(10)]
        _, random_fp, _, _ = _run(cfg, 100, stalling, 5, 90.0, gap=1.0)
        _, mid_fp, _, _ = _run(cfg, 100, stalling, 6, 90.0, mid_probe=0.3)
        totals[name] = sum(t.false_deaths + t.total("suspect", subject="healthy") for t in (random_fp, mid_fp))
        totals[name + "_deaths"] = random_fp.false_deaths + mid_fp.false_deaths
    assert totals["plain"] >= 50
    assert totals["lifeguard"] * 50 <= totals["plain"], totals
    assert totals["lifeguard_deaths"] <= totals["plain_deaths"]
