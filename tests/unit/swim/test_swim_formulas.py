"""Pure SWIM/Lifeguard maths: suspicion timeouts, retransmit limits, awareness, broadcast queue."""

from __future__ import annotations

import pytest

from rustyray.membership.swim import (
    Suspicion,
    SwimAlive,
    SwimConfig,
    SwimDead,
    SwimSuspect,
    remaining_suspicion_time,
    retransmit_limit,
    suspicion_timeout,
)
from rustyray.membership.swim.awareness import Awareness
from rustyray.membership.swim.broadcast import BroadcastQueue
from rustyray.protocol.messages import encode_message


# memberlist suspicion_test.go TestSuspicion_remainingSuspicionTime
@pytest.mark.parametrize(
    ("n", "k", "elapsed", "min_t", "max_t", "expected"),
    [
        (0, 3, 0.0, 2.0, 30.0, 30.0),
        (1, 3, 2.0, 2.0, 30.0, 14.0),
        (2, 3, 3.0, 2.0, 30.0, 4.81),
        (3, 3, 4.0, 2.0, 30.0, -2.0),
        (4, 3, 5.0, 2.0, 30.0, -3.0),
        (5, 3, 10.0, 2.0, 30.0, -8.0),
    ],
)
def test_remaining_suspicion_time_table(n: int, k: int, elapsed: float, min_t: float, max_t: float,
                                        expected: float) -> None:
    assert remaining_suspicion_time(n, k, elapsed, min_t, max_t) == pytest.approx(expected, abs=1e-9)


# memberlist util_test.go TestSuspicionTimeout (suspicionTimeout(3, n, 1s) / 3)
@pytest.mark.parametrize(
    ("n", "expected"), [(5, 1.0), (10, 1.0), (50, 1.698), (100, 2.0), (500, 2.698), (1000, 3.0)]
)
def test_suspicion_timeout_table(n: int, expected: float) -> None:
    assert suspicion_timeout(3, n, 1.0) / 3 == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(("mult", "n", "expected"), [(3, 0, 0), (3, 1, 3), (3, 99, 6), (4, 1000, 16), (4, 5, 4)])
def test_retransmit_limit_table(mult: int, n: int, expected: int) -> None:
    assert retransmit_limit(mult, n) == expected


def test_suspicion_shrinks_with_independent_confirmations_only() -> None:
    s = Suspicion("a", k=3, min_t=2.0, max_t=30.0, now=100.0)
    assert s.deadline == 130.0
    assert not s.confirm("a", 101.0)  # the accuser is not a confirmation
    assert s.confirm("b", 102.0)
    assert s.deadline == pytest.approx(116.0)  # timeout 16 s from start
    assert not s.confirm("b", 103.0)  # duplicate
    assert s.confirm("c", 103.0) and s.confirm("d", 104.0)
    assert s.deadline == pytest.approx(102.0)  # k reached: min timeout, already past
    assert not s.confirm("e", 105.0)  # beyond k: ignored


def test_suspicion_without_confirmations_uses_min() -> None:
    assert Suspicion("a", k=0, min_t=4.0, max_t=24.0, now=10.0).deadline == 14.0


def test_config_presets_and_derived_values() -> None:
    ml, local = SwimConfig.memberlist(), SwimConfig.local()
    assert (ml.probe_interval, ml.probe_timeout, ml.indirect_checks, ml.gossip_nodes) == (1.0, 0.5, 3, 3)
    assert ml.awareness_max_multiplier == 8
    assert local.probe_timeout < ml.probe_timeout and local.validate() is local
    assert ml.suspicion_min(1000) == pytest.approx(12.0) and ml.confirmations(1000) == 2
    assert ml.retransmit_limit(1000) == 16
    assert ml.push_pull_period(10) == 30.0 and ml.push_pull_period(1000) == 180.0
    # the tuned preset: crash-to-dead p99 <= 10 s at N = 1,000 (formula in SwimConfig.lan's docstring)
    lan = SwimConfig.lan().validate()
    assert (lan.probe_interval, lan.probe_timeout) == (0.5, 0.25)
    assert lan.suspicion_min(1000) == pytest.approx(4.5) and lan.confirmations(1000) == 3
    assert lan.confirmations(4) == 2 and lan.confirmations(2) == 0  # as many as can confirm
    assert lan.probe_interval * (1 + 4.6 + lan.suspicion_mult * 3) + 0.5 <= 10.0


@pytest.mark.parametrize(
    ("field", "value"),
    [("probe_interval", 0.0), ("probe_timeout", 2.0), ("indirect_checks", -1), ("suspicion_mult", 0),
     ("awareness_max_multiplier", 0), ("retransmit_mult", 0), ("gossip_nodes", 0), ("max_piggyback_bytes", 10)],
)
def test_config_validate_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SwimConfig(**{field: value}).validate()


def test_awareness_saturates_and_scales() -> None:
    a = Awareness(8)
    a.apply_delta(-1)
    assert a.multiplier == 1 and a.scale(0.5) == 0.5
    a.apply_delta(3)
    assert a.scale(1.0) == 4.0
    a.apply_delta(100)
    assert a.multiplier == 8
    a.apply_delta(-2)
    assert a.multiplier == 6


def test_broadcast_queue_limits_transmits_and_invalidates_older_updates() -> None:
    q = BroadcastQueue()
    q.queue("x", SwimSuspect(node_id="x", incarnation=1, from_id="a"))
    q.queue("x", SwimDead(node_id="x", incarnation=1, from_id="a"))
    assert len(q) == 1
    assert isinstance(q.take(1400, limit=2)[0], SwimDead)
    assert len(q.take(1400, limit=2)) == 1
    assert q.take(1400, limit=2) == () and len(q) == 0


def test_broadcast_queue_prefers_least_transmitted_and_respects_budget() -> None:
    q = BroadcastQueue()
    q.queue("old", SwimAlive(node_id="old", incarnation=1))
    q.take(1400, limit=10)
    q.queue("new", SwimAlive(node_id="new", incarnation=1))
    room_for_one = len(encode_message(SwimAlive(node_id="new", incarnation=1))) + 5
    one = q.take(room_for_one, limit=10)
    assert [u.node_id for u in one] == ["new"]
    assert q.take(10, limit=10) == ()
