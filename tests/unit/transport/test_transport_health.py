"""The transport component's health: listeners, loops and the error ratio over a window (fake clock)."""

from __future__ import annotations

import dataclasses

import pytest

from rustyray.transport.health import TransportHealth, TransportHealthConfig, TransportSample

OK = TransportSample(tcp_address="127.0.0.1:7000", tcp_serving=True, quic_address="127.0.0.1:7001",
                     quic_serving=True, ended_loops=(), connections_opened=10, errors=0)


def _with(**changes) -> TransportSample:
    return dataclasses.replace(OK, **changes)


def test_healthy_names_the_listeners_and_the_window() -> None:
    status, detail = TransportHealth().observe(OK, 0.0)
    assert status == "healthy" and "TCP 127.0.0.1:7000" in detail and "QUIC 127.0.0.1:7001" in detail


def test_a_tcp_listener_that_is_not_serving_is_failed() -> None:
    status, detail = TransportHealth().observe(_with(tcp_serving=False), 0.0)
    assert status == "failed" and "127.0.0.1:7000 is not serving" in detail


@pytest.mark.parametrize(("change", "words"), [
    ({"quic_serving": False}, "QUIC listener"),
    ({"ended_loops": ("heartbeat",)}, "loops ended: heartbeat"),
])
def test_quic_down_or_an_ended_loop_is_degraded(change, words) -> None:
    status, detail = TransportHealth().observe(_with(**change), 0.0)
    assert status == "degraded" and words in detail


def test_quic_off_is_not_a_problem() -> None:
    assert TransportHealth().observe(_with(quic_address="", quic_serving=False), 0.0)[0] == "healthy"


def test_the_error_ratio_counts_only_inside_the_window() -> None:
    health = TransportHealth(TransportHealthConfig(window_s=60.0, min_errors=5, degraded_error_ratio=0.5))
    assert health.observe(_with(errors=100), 0.0)[0] == "healthy"  # old errors: no window yet
    assert health.observe(_with(errors=104, connections_opened=10), 10.0)[0] == "healthy"  # 4 < min_errors
    status, detail = health.observe(_with(errors=106, connections_opened=11), 20.0)
    assert status == "degraded" and "6 errors / 1 connections opened" in detail  # 6/7 >= 0.5
    # a busy, mostly successful minute is healthy again once the bad seconds leave the window
    health.observe(_with(errors=106, connections_opened=100), 70.0)
    status, detail = health.observe(_with(errors=107, connections_opened=200), 90.0)
    assert status == "healthy" and "1 errors / 189 connections opened" in detail


def test_many_successes_outweigh_a_few_errors() -> None:
    health = TransportHealth()
    health.observe(OK, 0.0)
    assert health.observe(_with(errors=6, connections_opened=30), 5.0)[0] == "healthy"  # 6/26 < 0.5


def test_config_bounds() -> None:
    for bad in ({"window_s": 0}, {"min_errors": 0}, {"degraded_error_ratio": 0}):
        with pytest.raises(ValueError):
            TransportHealthConfig(**bad)
