import pytest

from rustyray.health import HealthConfig, RecoveryError, RecoveryManager, RecoveryPhase, RecoveryStrategy

CFG = HealthConfig(
    recovery_max_attempts=3,
    recovery_base_delay_s=2.0,
    recovery_max_delay_s=5.0,
    recovery_multiplier=2.0,
    quarantine_s=30.0,
)


@pytest.mark.parametrize(
    ("strategy", "delays"),
    [
        (RecoveryStrategy.EXPONENTIAL_BACKOFF, [2.0, 4.0, 5.0, 5.0]),  # capped at 5
        (RecoveryStrategy.FIXED, [2.0, 2.0, 2.0, 2.0]),
        (RecoveryStrategy.IMMEDIATE, [0.0, 0.0, 0.0, 0.0]),
    ],
)
def test_delay_table(strategy, delays):
    m = RecoveryManager(CFG)
    assert [m.delay(strategy, n) for n in (1, 2, 3, 4)] == delays


def test_trigger_matches_seed_response():
    m = RecoveryManager()
    s = m.trigger("node4", "ExponentialBackoff", now=100.0)
    assert {k: v for k, v in s.to_dict().items() if k != "phase"} == {
        "recovery_initiated": True,
        "node": "node4",
        "attempt": 1,
        "max_attempts": 3,
        "next_retry_ms": 2000.0,
    }
    again = m.trigger("node4", "Immediate", now=101.0)
    assert not again.recovery_initiated and again.next_retry_ms == pytest.approx(1000.0)


def test_failed_attempts_back_off_then_quarantine_then_release():
    m = RecoveryManager(CFG)
    m.trigger("n", RecoveryStrategy.EXPONENTIAL_BACKOFF, now=0.0)
    assert m.next_deadline() == 2.0
    assert m.due(1.9) == []
    [a] = m.due(2.0)
    assert (a.node, a.attempt) == ("n", 1)
    assert m.due(2.0) == []  # handed out once
    assert m.status("n", 2.0).phase is RecoveryPhase.ATTEMPTING
    s = m.on_attempt_result("n", ok=False, now=3.0)
    assert (s.attempt, s.next_retry_ms, s.phase) == (2, 4000.0, RecoveryPhase.WAITING)
    assert [x.attempt for x in m.due(7.0)] == [2]
    m.on_attempt_result("n", ok=False, now=7.0)
    assert [x.attempt for x in m.due(12.0)] == [3]
    s = m.on_attempt_result("n", ok=False, now=12.0)
    assert s.phase is RecoveryPhase.QUARANTINED and s.next_retry_ms == 30_000.0
    assert m.is_quarantined("n", 41.9) and m.quarantined(41.9) == ["n"]
    assert m.due(41.9) == []
    # a trigger during quarantine starts nothing
    t = m.trigger("n", now=20.0)
    assert not t.recovery_initiated and t.phase is RecoveryPhase.QUARANTINED
    assert m.quarantines == 1
    # the quarantine ends by time
    assert not m.is_quarantined("n", 42.0)
    assert m.status("n", 42.0).phase is RecoveryPhase.IDLE
    fresh = m.trigger("n", RecoveryStrategy.FIXED, now=43.0)
    assert fresh.recovery_initiated and fresh.attempt == 1


def test_success_ends_recovery_and_quarantine():
    m = RecoveryManager(CFG)
    m.trigger("a", "Immediate", now=0.0)
    assert [x.node for x in m.due(0.0)] == ["a"]
    s = m.on_attempt_result("a", ok=True, now=0.5)
    assert s.phase is RecoveryPhase.IDLE and m.recovered == 1
    m.trigger("b", "Immediate", now=0.0)
    for _ in range(3):
        m.due(1.0)
        m.on_attempt_result("b", ok=False, now=1.0)
    assert m.is_quarantined("b", 2.0)
    m.on_attempt_result("b", ok=True, now=2.0)  # the node came back by itself
    assert not m.is_quarantined("b", 2.0) and m.next_deadline() is None


def test_misuse_raises_typed_errors():
    m = RecoveryManager(CFG)
    with pytest.raises(RecoveryError):
        m.on_attempt_result("ghost", ok=False, now=0.0)
    with pytest.raises(ValueError, match="strategy"):
        m.trigger("n", "Sometimes", now=0.0)
    m.trigger("n", "Fixed", now=0.0)
    assert m.cancel("n") and not m.cancel("n")
