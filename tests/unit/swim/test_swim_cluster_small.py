"""SWIM + Lifeguard behaviour at 5 nodes in the deterministic simulator."""

from __future__ import annotations

import random

import pytest

from rustyray.membership.swim import (
    MemberState,
    SwimAlive,
    SwimConfig,
    SwimDead,
    SwimMemberState,
    SwimNode,
    SwimPing,
    SwimPushPull,
    SwimSuspect,
    SwimUnexpectedMessage,
)
from rustyray.sim.network import SimConfig
from rustyray.sim.swim_cluster import SwimCluster

CFG = SwimConfig.lan()


def _cluster(seed: int = 1, n: int = 5, **kw: object) -> SwimCluster:
    c = SwimCluster(n, CFG, SimConfig(seed=seed, **kw))  # type: ignore[arg-type]
    c.sim.run_until(3.0)
    return c


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_crash_goes_suspect_then_dead_within_configured_timeouts(seed: int) -> None:
    c = _cluster(seed)
    c.crash("node4")
    t0 = c.sim.now
    c.sim.run_until(t0 + 60.0)
    others = ["node0", "node1", "node2", "node3"]
    suspected = c.observers("NodeSuspected", "node4", t0)
    failed = c.observers("NodeFailed", "node4", t0)
    assert set(failed) == set(others)
    min_t = CFG.suspicion_min(5)
    max_t = CFG.suspicion_max_timeout_mult * min_t
    first_suspect = min(suspected.values())
    # someone probes node4 within one round of 4 periods (+1 for phase), plus the probe period itself
    assert first_suspect - t0 <= 4 * CFG.probe_interval + 2 * CFG.probe_interval
    # never dead before the Lifeguard minimum, never later than the maximum (plus dissemination)
    assert min(failed.values()) - first_suspect >= min_t - 1e-9
    assert max(failed.values()) - first_suspect <= max_t + 2.0
    for nid in others:
        info = c.node(nid).member("node4")
        assert info is not None and info.state is MemberState.DEAD
    assert c.observers("NodeFailed", "node0") == {}  # no collateral false positives


def test_false_suspicion_is_refuted_with_a_higher_incarnation() -> None:
    c = _cluster()
    c.sim.send("node0", "node1", SwimSuspect(node_id="node3", incarnation=0, from_id="node0"))
    t0 = c.sim.now
    c.sim.run_until(t0 + 30.0)
    assert c.node("node3").incarnation >= 1
    recovered = c.observers("NodeRecovered", "node3", t0)
    assert set(c.observers("NodeSuspected", "node3", t0)) <= set(recovered)
    assert len(recovered) >= 1
    assert c.observers("NodeFailed", "node3") == {}
    for nid in ("node0", "node1", "node2", "node4"):
        info = c.node(nid).member("node3")
        assert info is not None and info.state is MemberState.ALIVE and info.incarnation >= 1


def test_suspect_count_counts_independent_accusers() -> None:
    c = _cluster()
    c.sim.send("node0", "node1", SwimSuspect(node_id="node3", incarnation=0, from_id="node0"))
    c.sim.send("node2", "node1", SwimSuspect(node_id="node3", incarnation=0, from_id="node2"))
    c.sim.send("node4", "node1", SwimSuspect(node_id="node3", incarnation=0, from_id="node2"))
    c.sim.run_for(0.01)
    info = c.node("node1").member("node3")
    assert info is not None and info.state is MemberState.SUSPECT and info.suspect_count == 2
    row = next(r for r in c.node("node1").status()["members"] if r["node"] == "node3")
    assert row == {"node": "node3", "status": "Suspect", "suspect_count": 2}


def test_graceful_leave_marks_left_everywhere_and_never_dead() -> None:
    c = _cluster()
    leaver = c.node("node2")
    leaver.leave(c.sim.now)
    t0 = c.sim.now
    c.sim.run_until(t0 + 10.0)
    assert leaver.left
    c.crash("node2")  # shut down after the Left update went out
    c.sim.run_until(t0 + 60.0)
    assert set(c.observers("NodeLeft", "node2", t0)) == {"node0", "node1", "node3", "node4"}
    assert c.observers("NodeSuspected", "node2") == {} and c.observers("NodeFailed", "node2") == {}
    for nid in ("node0", "node1", "node3", "node4"):
        assert c.node(nid).state_of("node2") is MemberState.LEFT


@pytest.mark.parametrize("restart_incarnation", [1, 0])
def test_rejoin_after_death_recovers_with_a_higher_incarnation(restart_incarnation: int) -> None:
    c = _cluster()
    c.crash("node4")
    c.sim.run_until(c.sim.now + 60.0)
    assert len(c.observers("NodeFailed", "node4")) == 4
    t1 = c.sim.now
    node = c.restart("node4", ["node0"], incarnation=restart_incarnation)
    c.sim.run_until(t1 + 15.0)
    assert node.joined
    assert node.incarnation >= 1  # a restart at 0 learns of its own death and refutes it
    assert set(c.observers("NodeRecovered", "node4", t1)) == {"node0", "node1", "node2", "node3"}
    for nid in ("node0", "node1", "node2", "node3"):
        info = c.node(nid).member("node4")
        assert info is not None and info.state is MemberState.ALIVE
    assert len(node.members()) == 5


def test_new_node_joins_through_a_seed_and_learns_everyone() -> None:
    c = _cluster()
    t0 = c.sim.now
    joiner = c.add_joiner("fresh", ["node3"])
    c.sim.run_until(t0 + 5.0)
    assert joiner.joined
    assert {m.node_id for m in joiner.members()} == {"fresh", *(f"node{i}" for i in range(5))}
    assert set(c.observers("NodeJoined", "fresh", t0)) == {f"node{i}" for i in range(5)}


def test_join_retries_until_a_seed_answers() -> None:
    c = _cluster()
    c.crash("node0")
    joiner = c.add_joiner("late", ["node0"])
    c.sim.run_for(3.0)
    assert not joiner.joined
    c.sim.restart("node0", SwimNode("node0", CFG, rng=random.Random(9), now=c.sim.now, roster=c.roster))
    c.sim.run_for(3.0)
    assert joiner.joined


def test_indirect_probes_prevent_suspicion_when_one_link_is_broken() -> None:
    c = SwimCluster(5, CFG, SimConfig(seed=4))
    broken = {("node0", "node1"), ("node1", "node0")}
    c.sim.drop_filter = lambda src, dst, msg: (src, dst) in broken
    c.sim.run_until(40.0)
    assert c.event_count.get("NodeSuspected", 0) == 0
    assert c.event_count.get("NodeFailed", 0) == 0


def test_isolated_node_raises_its_own_health_multiplier_but_others_do_not() -> None:
    c = _cluster()
    c.sim.partition([["node0"], ["node1", "node2", "node3", "node4"]])
    c.sim.run_for(15.0)
    assert c.node("node0").awareness > 1  # its ping-reqs bring back no nacks: blame itself
    assert all(c.node(f"node{i}").awareness == 1 for i in range(1, 5))  # relays nack: not their fault


def test_buddy_system_ping_to_a_suspect_carries_the_suspicion() -> None:
    node = SwimNode("a", CFG, rng=random.Random(1), roster=_roster("a", "b"))
    node.receive("c", SwimSuspect(node_id="b", incarnation=0, from_id="c"), 0.0)
    node.outbox()
    pings: list[SwimPing] = []
    t = 0.0
    while not pings:
        t += 0.1
        node.tick(t)
        pings = [m for _, m in node.outbox() if isinstance(m, SwimPing)]
    assert any(isinstance(u, SwimSuspect) and u.node_id == "b" for u in pings[0].updates)


def test_push_pull_treats_a_remote_dead_as_a_suspicion() -> None:
    node = SwimNode("a", CFG, rng=random.Random(1), roster=_roster("a", "b", "c"))
    states = (SwimMemberState(node_id="b", incarnation=0, state="Dead"),)
    node.receive("c", SwimPushPull(states=states, reply=True), 1.0)
    assert node.state_of("b") is MemberState.SUSPECT


def test_stale_and_newer_updates_are_ordered_by_incarnation() -> None:
    node = SwimNode("a", CFG, rng=random.Random(1), roster=_roster("a", "b", "c"))
    node.receive("c", SwimAlive(node_id="b", incarnation=3, tcp_address="b:1"), 1.0)
    node.receive("c", SwimDead(node_id="b", incarnation=2, from_id="c"), 1.1)
    assert node.state_of("b") is MemberState.ALIVE
    node.receive("c", SwimDead(node_id="b", incarnation=3, from_id="c"), 1.2)
    assert node.state_of("b") is MemberState.DEAD
    node.receive("c", SwimAlive(node_id="b", incarnation=3, tcp_address="b:1"), 1.3)
    assert node.state_of("b") is MemberState.DEAD
    node.receive("c", SwimAlive(node_id="b", incarnation=4, tcp_address="b:2"), 1.4)
    info = node.member("b")
    assert info is not None and info.state is MemberState.ALIVE and info.tcp_address == "b:2"
    names = [type(e).__name__ for e in node.drain_events()]
    assert names == ["NodeUpdated", "NodeFailed", "NodeRecovered"]


def test_rejects_foreign_messages() -> None:
    node = SwimNode("a", CFG, rng=random.Random(1))
    with pytest.raises(SwimUnexpectedMessage):
        node.receive("b", object(), 0.0)


def _roster(*ids: str):  # type: ignore[no-untyped-def]
    from rustyray.membership.swim import SwimRoster

    return SwimRoster(SwimMemberState(node_id=i, incarnation=0, state="Alive") for i in ids)
