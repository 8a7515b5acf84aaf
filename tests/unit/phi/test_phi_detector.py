"""Phi accrual detector: Akka's reference values, monotonicity, windowing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.health.phi import PhiAccrualDetector, PhiConfig, phi_value


# Akka AccrualFailureDetectorSpec "return realistic phi values" (mean 1000 ms, std 100 ms), +- 0.1.
@pytest.mark.parametrize(
    ("time_diff_ms", "expected"),
    [(0, 0.0), (500, 0.1), (1000, 0.3), (1200, 1.6), (1400, 4.7), (1600, 10.8), (1700, 15.3)],
)
def test_phi_value_matches_akka_table(time_diff_ms: int, expected: float) -> None:
    assert phi_value(time_diff_ms / 1000, 1.0, 0.1) == pytest.approx(expected, abs=0.1)


def test_phi_value_is_finite_for_huge_silence() -> None:
    v = phi_value(3600.0, 1.0, 0.1)
    assert math.isfinite(v) and v > 1e6


def test_phi_is_zero_before_first_heartbeat() -> None:
    d = PhiAccrualDetector()
    assert d.phi(123.0) == 0.0
    assert d.is_available(123.0)


def test_first_heartbeat_seeds_the_window_with_the_estimate() -> None:
    d = PhiAccrualDetector(PhiConfig(first_heartbeat_estimate=1.0))
    d.heartbeat(10.0)
    assert d.sample_count == 2
    assert d.mean() == pytest.approx(1.0)
    assert d.std_deviation() == pytest.approx(0.25)


def test_regular_heartbeats_keep_phi_low_and_silence_raises_it_past_threshold() -> None:
    d = PhiAccrualDetector()
    for i in range(20):
        d.heartbeat(float(i))
    assert d.phi(19.5) < 1.0
    assert d.is_available(20.0)
    assert not d.is_available(19.0 + 3.0)
    assert d.phi(22.0) >= 8.0


def test_acceptable_pause_shifts_the_curve() -> None:
    plain, tolerant = PhiAccrualDetector(), PhiAccrualDetector(PhiConfig(acceptable_heartbeat_pause=2.0))
    for i in range(10):
        plain.heartbeat(float(i))
        tolerant.heartbeat(float(i))
    assert not plain.is_available(12.0)
    assert tolerant.is_available(12.0)


def test_window_is_bounded_by_max_sample_size() -> None:
    d = PhiAccrualDetector(PhiConfig(max_sample_size=5))
    for i in range(50):
        d.heartbeat(i * 0.5)
    assert d.sample_count == 5
    assert d.mean() == pytest.approx(0.5)


def test_heartbeat_after_an_outage_is_not_a_sample() -> None:
    d = PhiAccrualDetector()
    for i in range(10):
        d.heartbeat(float(i))
    before = d.sample_count
    d.heartbeat(100.0)  # phi was far above threshold: the 91 s gap must not enter the window
    assert d.sample_count == before
    assert d.phi(100.5) < 1.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("threshold", 0.0), ("max_sample_size", 1), ("min_std_deviation", 0.0),
     ("acceptable_heartbeat_pause", -1.0), ("first_heartbeat_estimate", 0.0)],
)
def test_config_validate_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        PhiConfig(**{field: value}).validate()


@settings(max_examples=200, deadline=None)
@given(
    intervals=st.lists(st.floats(min_value=0.01, max_value=5.0), min_size=1, max_size=30),
    a=st.floats(min_value=0.0, max_value=100.0),
    b=st.floats(min_value=0.0, max_value=100.0),
)
def test_phi_is_monotone_in_elapsed_time(intervals: list[float], a: float, b: float) -> None:
    d = PhiAccrualDetector()
    t = 0.0
    d.heartbeat(t)
    for iv in intervals:
        t += iv
        d.heartbeat(t)
    lo, hi = sorted((a, b))
    p_lo, p_hi = d.phi(t + lo), d.phi(t + hi)
    assert 0.0 <= p_lo <= p_hi
    assert math.isfinite(p_hi)
