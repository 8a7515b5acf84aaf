"""PeerWatch: peer sync, loop lag, Failed -> recovery, attempt outcomes; driven with a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.health import HealthConfig, RecoveryManager, RecoveryPhase, RecoveryStrategy
from rustyray.health.heartbeat import HeartbeatConfig, HeartbeatMonitor, HeartbeatStatus
from rustyray.health.peer_watch import PeerWatch
from rustyray.health.phi import PhiConfig

HB = HeartbeatConfig(interval=1.0, timeout=5.0, failed_after=15.0,
                     phi=PhiConfig(acceptable_heartbeat_pause=3.0, first_heartbeat_estimate=1.0))
CFG = HealthConfig(recovery_max_attempts=2, recovery_base_delay_s=2.0, recovery_max_delay_s=4.0, quarantine_s=30.0)


def make(auto_recover: bool = True) -> PeerWatch:
    return PeerWatch("me", HeartbeatMonitor(HB), RecoveryManager(CFG), auto_recover=auto_recover, tick_s=0.1)


def test_sync_watches_known_peers_but_not_itself():
    w = make()
    w.sync({"me", "a", "b"}, 0.0)
    assert w.monitor.peers() == ["a", "b"]
    w.sync({"b"}, 1.0)
    assert w.monitor.peers() == ["b"]
    assert [r.node_id for r in w.rows(["b", "c"], 2.0)] == ["b", "c"]


def test_tick_measures_the_loop_lag():
    w = make()
    assert not w.loop_ok() and w.last_tick is None
    w.tick(10.0, 10.1, [], ())
    assert w.loop_lag_ms == 0.0 and w.last_tick == 10.1 and w.loop_ok()
    w.tick(10.1, 11.7, [], ())  # 1.5 s late
    assert w.loop_lag_ms == pytest.approx(1500.0) and not w.loop_ok()


def test_a_wanted_peer_that_turns_failed_is_recovered_once():
    w = make()
    w.sync(["a", "b"], 0.0)
    assert w.tick(0.0, 1.0, ["a", "b"], {"a"}) == []
    assert w.newly_failed(16.0, {"a"}) == ["a", "b"]  # both silent past failed_after
    assert w.recovery.status("a", 16.0).phase is RecoveryPhase.WAITING
    assert w.recovery.status("b", 16.0).phase is RecoveryPhase.IDLE  # not wanted
    assert w.newly_failed(17.0, {"a"}) == []  # still Failed: no new transition
    attempts = w.tick(17.9, 18.0, ["a", "b"], {"a"})
    assert [(a.node, a.attempt, a.strategy) for a in attempts] == [("a", 1, RecoveryStrategy.EXPONENTIAL_BACKOFF)]


def test_auto_recover_off_only_reports():
    w = make(auto_recover=False)
    w.sync(["a"], 0.0)
    assert w.newly_failed(16.0, {"a"}) == ["a"]
    assert w.recovery.status("a", 16.0).phase is RecoveryPhase.IDLE


def test_attempt_outcomes_are_logged_and_move_recovery():
    w = make()
    w.recovery.trigger("a", RecoveryStrategy.IMMEDIATE, 0.0)
    [attempt] = w.recovery.due(0.0)
    status = w.on_attempt_result(attempt, "refused", 0.5, duration_ms=1.23456, wall_time=1000.0)
    assert status is not None and status.phase is RecoveryPhase.WAITING and status.attempt == 2
    assert w.attempts_of("a") == [{"node": "a", "attempt": 1, "strategy": "Immediate", "success": False,
                                   "error": "refused", "phase_after": "Waiting", "duration_ms": 1.235,
                                   "at": 1000.0}]
    [attempt] = w.recovery.due(0.6)
    status = w.on_attempt_result(attempt, "refused", 0.7, duration_ms=1.0, wall_time=1001.0)
    assert status is not None and status.phase is RecoveryPhase.QUARANTINED  # max_attempts = 2
    assert w.on_attempt_result(attempt, "refused", 0.8, duration_ms=1.0, wall_time=1002.0) is None  # nothing on
    status = w.on_attempt_result(attempt, None, 0.9, duration_ms=1.0, wall_time=1003.0)  # it came back by itself
    assert status is not None and status.phase is RecoveryPhase.IDLE and w.recovery.recovered == 1
    assert [a["success"] for a in w.attempts_of("a")] == [False, False, True] and w.attempts_of("b") == []


def test_verdict():
    w = make()
    assert w.verdict([], 0.0) == ("healthy", "0 peers heartbeating")
    w.sync(["a", "b"], 0.0)
    w.monitor.record("a", 0.0)
    assert w.verdict(["a", "b"], 0.5) == ("healthy", "2 peers heartbeating")
    assert w.verdict(["a", "b"], 6.0) == ("degraded", "suspected peers: a, b")


ops = st.lists(st.one_of(
    st.tuples(st.just("beat"), st.sampled_from("abc")),
    st.tuples(st.just("advance"), st.floats(min_value=0.0, max_value=8.0)),
    st.tuples(st.just("peers"), st.sets(st.sampled_from(["a", "b", "c", "me"]))),
    st.tuples(st.just("want"), st.sets(st.sampled_from("abc"))),
), max_size=60)


@settings(max_examples=150, deadline=None)
@given(ops=ops)
def test_invariants_over_random_runs(ops):
    """Watched peers are the known ones (never this node); a trigger happens only on a Failed transition
    of a wanted peer; the lag is never negative."""
    w = make()
    now, known, wanted = 0.0, {"a", "b"}, {"a", "b", "c"}
    failed_before: set[str] = set()
    for op, arg in ops:
        if op == "beat":
            if arg in known:
                w.monitor.record(arg, now)
        elif op == "advance":
            started, now = now, now + arg
            was_idle = {p for p in "abc" if w.recovery.status(p, started).phase is RecoveryPhase.IDLE}
            w.tick(started, now, known, wanted)
            assert w.loop_lag_ms >= 0.0 and w.last_tick == now
            failed_now = {r.node_id for r in w.monitor.status(now) if r.status is HeartbeatStatus.FAILED}
            for p in was_idle:
                if w.recovery.status(p, now).phase is not RecoveryPhase.IDLE:  # a trigger happened this tick
                    assert p in wanted and p in failed_now and p not in failed_before
            failed_before = failed_now
        elif op == "peers":
            known = set(arg)
        else:
            wanted = set(arg)
        assert set(w.monitor.peers()) <= (known | {"a", "b", "c"}) - {"me"}
    w.sync(known, now)
    assert set(w.monitor.peers()) == known - {"me"}
