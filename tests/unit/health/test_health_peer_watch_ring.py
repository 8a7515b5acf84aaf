"""PeerWatch over the monitoring ring: whom a node watches and heartbeats, driven with a fake clock.

The cluster below is simulated without I/O: each node's ``heartbeat_targets`` decides where its
heartbeat goes, and the receiver's ``accepts_heartbeat`` whether it is recorded.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.health import HealthConfig, RecoveryManager, RecoveryPhase
from rustyray.health.heartbeat import HeartbeatConfig, HeartbeatMonitor, HeartbeatStatus
from rustyray.health.monitor_ring import MonitorRing
from rustyray.health.peer_watch import PeerWatch
from rustyray.health.phi import PhiConfig

HB = HeartbeatConfig(interval=1.0, timeout=5.0, failed_after=15.0,
                     phi=PhiConfig(acceptable_heartbeat_pause=3.0, first_heartbeat_estimate=1.0))
CFG = HealthConfig(recovery_max_attempts=2, recovery_base_delay_s=2.0, recovery_max_delay_s=4.0, quarantine_s=30.0)


def make(own: str, k: int) -> PeerWatch:
    return PeerWatch(own, HeartbeatMonitor(HB), RecoveryManager(CFG), auto_recover=True, tick_s=0.1, monitored_by=k)


def cluster(n: int, k: int) -> dict[str, PeerWatch]:
    ids = [f"node{i}" for i in range(1, n + 1)]
    watches = {i: make(i, k) for i in ids}
    for w in watches.values():
        w.sync(ids, 0.0)
    return watches


def beat(watches: dict[str, PeerWatch], now: float, alive: set[str] | None = None) -> int:
    """One heartbeat round: every (alive) node sends to its targets; returns the heartbeats sent."""
    sent = 0
    for sender, w in watches.items():
        if alive is not None and sender not in alive:
            continue
        for target in w.heartbeat_targets():
            sent += 1
            receiver = watches[target]
            if receiver.accepts_heartbeat(sender):
                receiver.monitor.record(sender, now)
    return sent


def test_a_node_watches_its_ring_predecessors_and_heartbeats_its_successors():
    w = make("node1", 2)
    known = [f"node{i}" for i in range(1, 9)]
    w.sync(known, 0.0)
    ring = MonitorRing(known, 2)
    assert w.watched == ring.monitored("node1") and len(w.watched) == 2
    assert set(w.monitor.peers()) == w.watched
    assert w.heartbeat_targets() == ring.targets("node1")
    assert {r.node_id for r in w.rows(known, 1.0)} == w.watched  # unwatched peers are not in the rows


def test_the_default_k_keeps_small_clusters_all_pairs():
    w = PeerWatch("me", HeartbeatMonitor(HB), RecoveryManager(CFG), auto_recover=True, tick_s=0.1)
    known = ["me", *(f"p{i}" for i in range(9))]
    w.sync(known, 0.0)
    assert w.watched == set(known) - {"me"} and w.heartbeat_targets() == w.watched


def test_heartbeats_are_accepted_from_watched_and_not_yet_known_peers_only():
    w = make("node1", 1)
    known = [f"node{i}" for i in range(1, 6)]
    w.sync(known, 0.0)
    (watched,) = w.watched
    unwatched = next(p for p in known if p not in w.watched and p != "node1")
    assert w.accepts_heartbeat(watched)
    assert not w.accepts_heartbeat(unwatched)
    assert not w.accepts_heartbeat("node1")
    assert w.accepts_heartbeat("newcomer")  # learned since the last sync: the next sync decides


def test_a_membership_change_keeps_the_history_of_peers_that_stay_watched():
    w = make("node1", 3)
    known = [f"node{i}" for i in range(1, 11)]
    w.sync(known, 0.0)
    before = set(w.watched)
    for t in range(5):
        for p in before:
            w.monitor.record(p, float(t))
    w.sync([*known, "node11"], 5.0)
    kept = before & w.watched
    assert len(before - w.watched) <= 1 and len(w.watched) == 3  # one join moves at most one of our k
    for row in w.monitor.status(5.0):
        assert row.heartbeats == (5 if row.node_id in kept else 0)
    assert w.ring.with_members([*known, "node11"]) is w.ring  # unchanged table: no rebuild


def test_a_peer_that_leaves_the_watch_forgets_its_last_status():
    w = make("node1", 1)
    w.sync(["node1", "a"], 0.0)
    assert w.newly_failed(16.0, {"a"}) == ["a"]
    w.sync(["node1"], 16.0)
    assert w.monitor.peers() == [] and w._last_status == {}


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 25), k=st.integers(1, 6))
def test_in_a_simulated_cluster_each_node_is_heard_by_exactly_min_k_n_minus_1_others(n, k):
    watches = cluster(n, k)
    sent = beat(watches, 1.0)
    assert sent == n * min(k, n - 1)  # O(k) per node, not O(N)
    heard_by: dict[str, int] = {}
    for w in watches.values():
        assert len(w.monitor.peers()) == min(k, n - 1)
        for row in w.monitor.status(1.0):
            assert row.heartbeats == 1  # everyone a node watches does send to it
            heard_by[row.node_id] = heard_by.get(row.node_id, 0) + 1
    assert heard_by == dict.fromkeys(watches, min(k, n - 1))


def test_a_silent_node_turns_failed_at_its_k_monitors_who_start_recovery():
    watches = cluster(12, 3)
    everyone = set(watches)
    for t in range(1, 4):
        beat(watches, float(t))
        for w in watches.values():
            w.tick(t - 0.1, float(t), everyone, everyone)
    dead = "node7"
    monitors = {i for i, w in watches.items() if dead in w.watched}
    assert len(monitors) == 3
    for t in range(4, 22):  # node7 stops sending; everyone keeps it in the peer table
        beat(watches, float(t), alive=everyone - {dead})
        for w in watches.values():
            w.tick(t - 0.1, float(t), everyone, everyone)
    for i, w in watches.items():
        rows = {r.node_id: r.status for r in w.monitor.status(21.0)}
        if i in monitors:
            assert rows[dead] is HeartbeatStatus.FAILED
            assert w.recovery.status(dead, 21.0).phase is not RecoveryPhase.IDLE
        else:
            assert dead not in rows
        assert all(s is HeartbeatStatus.HEALTHY for p, s in rows.items() if p != dead)
