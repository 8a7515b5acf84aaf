"""Reconnect schedule on an injected clock."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from rustyray.transport.reconnect import Backoff, ReconnectConfig


def test_deterministic_schedule_doubles_up_to_the_cap():
    b = Backoff(ReconnectConfig(base_ms=100, cap_ms=1000, jitter=False))
    now, delays = 0.0, []
    for _ in range(6):
        nxt = b.failed(now)
        delays.append(round((nxt - now) * 1000))
        now = nxt
    assert delays == [100, 200, 400, 800, 1000, 1000]
    assert b.ready(now) and not b.ready(now - 0.001)
    b.succeeded()
    assert b.attempts == 0 and b.ready(0.0)


@given(seed=st.integers(), attempts=st.integers(min_value=1, max_value=30))
def test_full_jitter_stays_within_the_ceiling(seed, attempts):
    b = Backoff(ReconnectConfig(base_ms=50, cap_ms=2000), random.Random(seed))
    for n in range(1, attempts + 1):
        nxt = b.failed(10.0)
        assert 10.0 <= nxt <= 10.0 + b.ceiling_ms(n) / 1000


def test_max_attempts_gives_up():
    b = Backoff(ReconnectConfig(max_attempts=3, jitter=False))
    assert b.failed(0) is not None and b.failed(0) is not None
    assert b.failed(0) is None
