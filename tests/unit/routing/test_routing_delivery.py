import random

import msgspec
import pytest

from rustyray.protocol.messages import decode_message, encode_message
from rustyray.routing import (
    DedupWindow,
    DeliveryGuarantee,
    DeliveryTracker,
    DuplicateMessageIdError,
    RouteAck,
    RouteEnvelope,
    RoutingConfig,
    backoff_delay,
)

NO_JITTER = RoutingConfig(retry_initial_s=1.0, retry_max_s=8.0, retry_multiplier=2.0, retry_jitter=0.0)


def test_guarantee_spellings():
    assert [g.value for g in DeliveryGuarantee] == ["AtMostOnce", "AtLeastOnce", "ExactlyOnce"]
    assert DeliveryGuarantee.parse("at-least-once") is DeliveryGuarantee.AT_LEAST_ONCE
    assert DeliveryGuarantee.parse("EXACTLY_ONCE") is DeliveryGuarantee.EXACTLY_ONCE
    with pytest.raises(ValueError, match="delivery"):
        DeliveryGuarantee.parse("Maybe")


@pytest.mark.parametrize(
    ("attempt", "u", "expected"),
    [
        (1, 0.5, 1.0),
        (2, 0.5, 2.0),
        (3, 0.5, 4.0),
        (4, 0.5, 8.0),
        (9, 0.5, 8.0),  # capped
        (1, 0.0, 0.9),  # -10 % jitter
        (1, 1.0, 1.1),  # +10 % jitter (u never reaches 1, the bound does)
        (4, 0.0, 7.2),
    ],
)
def test_backoff_delay_table(attempt, u, expected):
    cfg = RoutingConfig(retry_initial_s=1.0, retry_max_s=8.0, retry_multiplier=2.0, retry_jitter=0.1)
    assert backoff_delay(attempt, cfg, u) == pytest.approx(expected)


def drive(tracker, until, step=0.25):
    """Advance a fake clock, collecting (time, id, attempt) of every retransmission."""
    log, now = [], 0.0
    while now <= until:
        for mid in tracker.due(now):
            log.append((now, mid, tracker.attempt(mid)))
        now += step
    return log


def test_retry_schedule_on_fake_clock_then_deadline_fails():
    t = DeliveryTracker(NO_JITTER, random.Random(1))
    t.track(7, DeliveryGuarantee.AT_LEAST_ONCE, now=0.0, deadline=20.0)
    assert t.next_deadline() == 1.0
    assert t.due(0.99) == []
    log = drive(t, 19.75)
    # gaps 1, 2, 4, 8 (cap) measured from each resend: 1, 3, 7, 15; 23 is past the deadline
    assert log == [(1.0, 7, 2), (3.0, 7, 3), (7.0, 7, 4), (15.0, 7, 5)]
    assert t.next_deadline() == 20.0
    assert t.expired(19.9) == []
    assert t.expired(20.0) == [7]
    assert not t.is_in_flight(7)
    assert t.stats()["AtLeastOnce"] == {
        "sent": 1,
        "acknowledged": 0,
        "retried": 4,
        "deduplicated": 0,
        "failed": 1,
    }
    assert t.next_deadline() is None


def test_ack_stops_retries_and_reports_latency():
    t = DeliveryTracker(NO_JITTER, random.Random(1))
    t.track(1, "ExactlyOnce", now=0.0, deadline=30.0)
    assert t.due(1.0) == [1]
    settled = t.on_ack(1, now=1.5, duplicate=True)
    assert settled is not None
    assert settled.attempts == 2 and settled.latency_s == pytest.approx(1.5)
    assert drive(t, 40.0) == []
    assert t.expired(100.0) == []
    assert t.on_ack(1, now=2.0) is None  # the ack of the retransmission arrives too
    assert t.stray_acks == 1
    assert t.stats()["ExactlyOnce"] == {
        "sent": 1,
        "acknowledged": 1,
        "retried": 1,
        "deduplicated": 1,
        "failed": 0,
    }


def test_at_most_once_never_retries_but_reports_missing_reply():
    t = DeliveryTracker(NO_JITTER, random.Random(1))
    t.track(1, "AtMostOnce", now=0.0, deadline=5.0)
    t.track(2, "AtMostOnce", now=0.0, deadline=5.0)
    assert drive(t, 4.9) == []
    assert t.next_deadline() == 5.0
    assert t.on_ack(2, now=0.1) is not None
    assert t.expired(5.0) == [1]
    c = t.counters("AtMostOnce")
    assert (c.sent, c.acknowledged, c.retried, c.failed) == (2, 1, 0, 1)


def test_default_deadline_and_duplicate_ids():
    cfg = RoutingConfig(default_deadline_s=3.0, retry_initial_s=10.0, retry_max_s=10.0)
    t = DeliveryTracker(cfg, random.Random(1))
    t.track(1, "AtLeastOnce", now=100.0)
    with pytest.raises(DuplicateMessageIdError):
        t.track(1, "AtLeastOnce", now=100.0)
    assert t.next_deadline() == 103.0  # first retry (110) is past the deadline, never scheduled
    assert t.due(200.0) == []
    assert t.expired(200.0) == [1]


def test_jitter_uses_injected_rng_and_stays_in_bounds():
    cfg = RoutingConfig(retry_initial_s=1.0, retry_max_s=1.0, retry_jitter=0.5)
    times = []
    for seed in (1, 1, 2):
        t = DeliveryTracker(cfg, random.Random(seed))
        t.track(1, "AtLeastOnce", now=0.0, deadline=100.0)
        times.append(t.next_deadline())
    assert times[0] == times[1] != times[2]
    assert all(0.5 <= x <= 1.5 for x in times)


def test_late_due_call_retries_once_and_reschedules_from_now():
    t = DeliveryTracker(NO_JITTER, random.Random(1))
    t.track(1, "AtLeastOnce", now=0.0, deadline=100.0)
    assert t.due(50.0) == [1]  # one resend, not a burst for every missed slot
    assert t.attempt(1) == 2
    assert t.next_deadline() == 52.0


def test_due_after_deadline_leaves_it_to_expired():
    t = DeliveryTracker(NO_JITTER, random.Random(1))
    t.track(1, "AtLeastOnce", now=0.0, deadline=5.0)
    assert t.due(6.0) == []
    assert t.expired(6.0) == [1]
    assert t.counters("AtLeastOnce").retried == 0


def test_cancel_counts_nothing():
    t = DeliveryTracker(NO_JITTER, random.Random(1))
    t.track(1, "AtLeastOnce", now=0.0, deadline=5.0)
    assert t.cancel(1) and not t.cancel(1)
    assert t.due(3.0) == [] and t.expired(10.0) == []
    assert t.counters("AtLeastOnce").failed == 0


def test_config_validate_names_field():
    with pytest.raises(ValueError, match="retry_jitter"):
        RoutingConfig(retry_jitter=1.5).validate()
    with pytest.raises(ValueError, match="retry_max_s"):
        RoutingConfig(retry_initial_s=2.0, retry_max_s=1.0).validate()
    with pytest.raises(ValueError, match="outbox_max_size"):
        RoutingConfig(outbox_max_size=0).validate()
    assert RoutingConfig.local().validate().retry_initial_s < RoutingConfig.lan().retry_initial_s


# -- DedupWindow ------------------------------------------------------------------------------------


def test_dedup_detects_duplicates():
    w = DedupWindow(max_entries=10, max_age_s=60.0)
    key = DedupWindow.key_for("node1", 5)
    assert w.seen(key, 0.0) is False
    assert w.seen(key, 1.0) is True
    assert w.seen(DedupWindow.key_for("node2", 5), 1.0) is False
    assert DedupWindow.key_for("node1", 5, "idem-1") != DedupWindow.key_for("node1", 5)
    assert w.stats()["duplicates"] == 1 and w.stats()["unique"] == 2


def test_dedup_bounded_by_count_evicts_oldest():
    w = DedupWindow(max_entries=3, max_age_s=1000.0)
    for i in range(5):
        assert not w.seen(f"k{i}", float(i))
    assert len(w) == 3
    assert "k0" not in w and "k1" not in w and "k4" in w
    assert w.evicted_by_count == 2
    assert w.seen("k0", 6.0) is False  # forgotten, so no longer detected


def test_dedup_bounded_by_age():
    w = DedupWindow(max_entries=100, max_age_s=10.0)
    w.seen("old", 0.0)
    w.seen("new", 5.0)
    assert w.seen("old", 9.9) is True
    assert w.seen("old", 10.0) is False  # expired exactly at max_age, seen afresh
    assert w.evicted_by_age == 1
    assert w.seen("new", 14.0) is True
    assert w.expire(100.0) == 2 and len(w) == 0


def test_dedup_round_trip_through_bytes_rebases_the_clock():
    w = DedupWindow(max_entries=50, max_age_s=100.0)
    w.seen("a", 10.0)
    w.seen("b", 50.0)
    w.remember_result("b", b"\x81\xa4rows\x05")
    blob = w.to_bytes(now=60.0)
    # a new process whose clock reads 5000 where the old one read 60
    r = DedupWindow.from_bytes(blob, now=5000.0)
    assert (r.max_entries, r.max_age_s) == (50, 100.0)
    assert r.result("b") == b"\x81\xa4rows\x05" and r.result("a") is None
    assert r.seen("a", 5000.0) is True and r.seen("b", 5000.0) is True
    # "a" was 50 s old at the snapshot: it expires 50 s later on the new clock
    assert r.seen("a", 5050.0) is False
    assert r.seen("b", 5050.0) is True
    assert r.to_bytes(5050.0) != blob


def test_dedup_from_bytes_rejects_garbage_and_versions():
    with pytest.raises(msgspec.DecodeError):
        DedupWindow.from_bytes(b"\xc1", now=0.0)
    bad = msgspec.msgpack.encode([99, 1, 1.0, []])
    with pytest.raises(ValueError, match="version"):
        DedupWindow.from_bytes(bad, now=0.0)


def test_route_messages_round_trip_on_the_wire():
    env = RouteEnvelope(
        message_id=42,
        source="node1",
        target="node2",
        message_type="QueryRequest",
        priority="High",
        delivery="ExactlyOnce",
        idempotency_key="q-1",
        data=b'{"query":"SELECT 1"}',
        attempt=2,
        sent_at=12.5,
    )
    ack = RouteAck(message_id=42, duplicate=True, result=b"ok", error=None)
    assert decode_message(encode_message(env)) == env
    assert decode_message(encode_message(ack)) == ack
    assert msgspec.msgpack.decode(encode_message(ack))["type"] == "RouteAck"
