"""Circuit breaker: state diagram checked against a reference model."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rustyray.loadbalancer import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    LoadBalancerConfigError,
)

C, OPEN, H = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN
EDGES = {(C, C), (C, OPEN), (OPEN, OPEN), (OPEN, H), (H, H), (H, OPEN), (H, C)}


def test_trips_after_threshold_then_half_opens_then_closes() -> None:
    b = CircuitBreaker()
    for t in range(4):
        b.record_failure(float(t))
    assert b.state(4.0) is C and b.failure_count == 4
    b.record_failure(4.0)
    assert b.state(4.0) is OPEN and b.opened_at == 4.0 and b.failure_count == 5
    assert not b.allow(33.9)
    assert b.state(34.0) is H
    assert b.allow(34.0)
    assert not b.allow(34.0), "only one trial request in HalfOpen by default"
    b.record_success(35.0)
    assert b.state(35.0) is C and b.failure_count == 0 and b.opened_at is None


def test_success_resets_consecutive_failures_and_half_open_failure_reopens() -> None:
    b = CircuitBreaker(CircuitBreakerConfig(failure_threshold=2, open_timeout_sec=10))
    b.record_failure(0)
    b.record_success(1)
    b.record_failure(2)
    assert b.state(2) is C
    b.record_failure(3)
    assert b.state(3) is OPEN
    assert b.allow(13)
    b.record_failure(14)
    assert b.state(14) is OPEN and b.opened_at == 14
    assert b.state(23.9) is OPEN


def test_status_matches_seed_shape() -> None:
    reg = BreakerRegistry()
    reg.record_failure("node3", 0)
    for _ in range(5):
        reg.record_failure("node2", 100)
    reg.record_success("node1", 0)
    rows = [s.to_dict() for s in reg.statuses(101)]
    assert rows == [
        {"node": "node1", "state": "Closed", "failure_count": 0},
        {"node": "node2", "state": "Open", "failure_count": 5, "opened_at": 100},
        {"node": "node3", "state": "Closed", "failure_count": 1},
    ]
    assert reg.available(["node1", "node2", "node3", "fresh"], 101) == ["node1", "node3", "fresh"]


def test_config_validation_names_the_field() -> None:
    with pytest.raises(LoadBalancerConfigError, match="failure_threshold"):
        CircuitBreakerConfig(failure_threshold=0).validate()
    with pytest.raises(LoadBalancerConfigError, match="open_timeout_sec"):
        CircuitBreaker(CircuitBreakerConfig(open_timeout_sec=0))
    assert CircuitBreakerConfig.local().open_timeout_sec < CircuitBreakerConfig.lan().open_timeout_sec


class BreakerModel(RuleBasedStateMachine):
    """Drive a breaker with random events and compare against a plain reference model."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.breaker: CircuitBreaker | None = None

    @rule(threshold=st.integers(1, 4), timeout=st.sampled_from([1.0, 5.0]), trials=st.integers(1, 3),
          successes=st.integers(1, 3))
    @precondition(lambda self: self.breaker is None)
    def create(self, threshold: int, timeout: float, trials: int, successes: int) -> None:
        self.cfg = CircuitBreakerConfig(failure_threshold=threshold, open_timeout_sec=timeout,
                                        half_open_max_requests=trials, success_threshold=successes)
        self.breaker = CircuitBreaker(self.cfg)
        self.m_state, self.m_failures, self.m_opened = C, 0, None
        self.m_trials, self.m_successes = 0, 0
        self.last_state = C

    def _model_advance(self) -> None:
        if self.m_state is OPEN and self.now >= self.m_opened + self.cfg.open_timeout_sec:
            self.m_state, self.m_trials, self.m_successes = H, 0, 0

    @precondition(lambda self: self.breaker is not None)
    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.5, 6.0]))
    def tick(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: self.breaker is not None)
    @rule()
    def allow(self) -> None:
        self._model_advance()
        expected = self.m_state is C or (self.m_state is H and self.m_trials < self.cfg.half_open_max_requests)
        if expected and self.m_state is H:
            self.m_trials += 1
        assert self.breaker.allow(self.now) == expected

    @precondition(lambda self: self.breaker is not None)
    @rule()
    def success(self) -> None:
        self._model_advance()
        if self.m_state is C:
            self.m_failures = 0
        elif self.m_state is H:
            self.m_trials = max(0, self.m_trials - 1)
            self.m_successes += 1
            if self.m_successes >= self.cfg.success_threshold:
                self.m_state, self.m_failures, self.m_opened = C, 0, None
        self.breaker.record_success(self.now)

    @precondition(lambda self: self.breaker is not None)
    @rule()
    def failure(self) -> None:
        self._model_advance()
        if self.m_state is C:
            self.m_failures += 1
            if self.m_failures >= self.cfg.failure_threshold:
                self.m_state, self.m_opened = OPEN, self.now
        elif self.m_state is H:
            self.m_failures += 1
            self.m_state, self.m_opened = OPEN, self.now
        self.breaker.record_failure(self.now)

    @invariant()
    def agrees_with_model_and_diagram(self) -> None:
        if self.breaker is None:
            return
        self._model_advance()
        state = self.breaker.state(self.now)
        assert state is self.m_state
        assert (self.last_state, state) in EDGES
        self.last_state = state
        assert self.breaker.failure_count == self.m_failures
        assert self.breaker.opened_at == self.m_opened
        if state is OPEN:
            assert not self.breaker.can_attempt(self.now)
        if state is H:
            assert self.breaker.half_open_in_flight <= self.cfg.half_open_max_requests


BreakerModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_breaker_state_machine = BreakerModel.TestCase
