"""ReceiveCore: the receive rules of routing, driven by hand with a fake wall clock (no event loop)."""

from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.routing import DeliveryGuarantee, RouteEnvelope, RoutingConfig
from rustyray.routing.errors import HandlerError, InvalidPayloadError, UnknownMessageTypeError
from rustyray.routing.messages import parse_ack_error
from rustyray.routing.receive_core import AwaitFirst, ReceiveCore, Reply, Run, dedup_key, handler_error

CFG = RoutingConfig(dedup_max_entries=1000, dedup_max_age_s=60.0)
T0 = 1_700_000_000.0  # a wall clock reading


def core(log_size: int = 16) -> ReceiveCore:
    return ReceiveCore("node2", CFG, log_size)


def env(mid: int = 1, delivery: str = "ExactlyOnce", key: str | None = "k1", target: str = "node2",
        sent_at: float = 5.0, data: bytes = b"{}", message_type: str = "Count") -> RouteEnvelope:
    return RouteEnvelope(message_id=mid, source="node1", target=target, message_type=message_type,
                         delivery=delivery, idempotency_key=key, data=data, sent_at=sent_at)


def result_of(ack) -> object:
    return None if ack.result is None else msgspec.json.decode(ack.result)


def test_a_message_for_another_node_or_with_an_unknown_guarantee_is_refused_at_once():
    rx = core()
    d = rx.on_envelope(env(target="node3"), T0)
    assert isinstance(d, Reply) and parse_ack_error(d.ack.error)[0] == "misrouted"
    d = rx.on_envelope(env(delivery="Maybe"), T0)
    assert isinstance(d, Reply) and parse_ack_error(d.ack.error)[:2] == ("invalid_delivery", "delivery")
    assert rx.received == 2 and rx.processed == 0


def test_at_least_once_runs_every_copy_and_journals_nothing():
    rx = core()
    for _ in range(3):
        d = rx.on_envelope(env(delivery="AtLeastOnce", key=None), T0)
        assert d == Run(None)
        h = rx.on_handled(env(delivery="AtLeastOnce", key=None), None, {"ok": True}, None, T0)
        assert h.journal is None and h.ack.duplicate is False and result_of(h.ack) == {"ok": True}
    assert rx.processed_by_type["Count"] == 3 and not rx.dirty and len(rx.dedup) == 0


def test_exactly_once_a_copy_waits_for_the_first_run_then_gets_its_result():
    rx = core()
    assert rx.on_envelope(env(), T0) == Run("k:k1")
    assert rx.in_progress("k:k1")
    assert rx.on_envelope(env(), T0 + 0.1) == AwaitFirst("k:k1")  # the handler has not finished yet
    h = rx.on_handled(env(), "k:k1", {"run": 1}, None, T0 + 0.2)
    # journal before ack: the entry carries exactly what later copies are answered with
    assert h.journal is not None and h.journal.key == "k:k1" and h.journal.wall_time == T0 + 0.2
    assert h.journal.stored == h.stored and rx.dirty and not rx.in_progress("k:k1")
    assert h.ack.duplicate is False and result_of(h.ack) == {"run": 1}
    waited = rx.duplicate_ack(env(), h.stored)
    assert waited.duplicate is True and result_of(waited) == {"run": 1}
    later = rx.on_envelope(env(mid=9), T0 + 1)  # a retransmission under the same idempotency key
    assert isinstance(later, Reply) and later.ack.duplicate and later.ack.message_id == 9
    assert result_of(later.ack) == {"run": 1}
    assert rx.duplicates_suppressed == 2 and rx.processed == 1


def test_a_duplicate_gets_the_first_runs_error_too():
    rx = core()
    rx.on_envelope(env(), T0)
    rx.on_handled(env(), "k:k1", None, handler_error(HandlerError("boom")), T0)
    d = rx.on_envelope(env(), T0)
    assert isinstance(d, Reply) and d.ack.duplicate and parse_ack_error(d.ack.error) == ("handler_error", None, "boom")
    assert rx.handler_errors == 1


def test_at_most_once_copies_are_suppressed_by_id_and_first_send_time():
    rx = core()
    e = env(delivery="AtMostOnce", key=None, sent_at=5.0)
    key = dedup_key(e, DeliveryGuarantee.AT_MOST_ONCE)
    assert key == "amo:node1/1/5.0" and dedup_key(e, DeliveryGuarantee.AT_LEAST_ONCE) is None
    assert rx.on_envelope(e, T0) == Run(key)
    rx.on_handled(e, key, {}, None, T0)
    assert isinstance(rx.on_envelope(e, T0), Reply)  # the transport delivered the frame twice
    # the same id from a restarted sender (another first send time) is another message
    assert isinstance(rx.on_envelope(env(delivery="AtMostOnce", key=None, sent_at=9.0), T0), Run)


def test_an_abandoned_run_leaves_the_key_seen_without_a_result():
    rx = core()
    rx.on_envelope(env(), T0)
    rx.abandon("k:k1")
    d = rx.on_envelope(env(), T0)
    assert isinstance(d, Reply) and d.ack.duplicate and d.ack.result is None and d.ack.error is None


def test_payload_that_is_not_json_is_an_invalid_payload_error():
    data, error = ReceiveCore.payload(env(data=b"{nope"))
    assert data is None and parse_ack_error(error)[:2] == ("invalid_payload", "data")
    assert ReceiveCore.payload(env(data=b"")) == ({}, None)
    assert ReceiveCore.payload(env(data=b'{"a": 1}')) == ({"a": 1}, None)


@pytest.mark.parametrize(("exc", "expected"), [
    (InvalidPayloadError("Count", "seq", "is required"), ("invalid_payload", "data.seq")),
    (InvalidPayloadError("Count", "", "must be an object"), ("invalid_payload", "data")),
    (UnknownMessageTypeError("Nope"), ("unknown_message_type", "message_type")),
    (HandlerError("refused"), ("handler_error", None)),
    (KeyError("x"), ("handler_error", None)),
])
def test_handler_exceptions_map_to_ack_error_codes(exc, expected):
    code, field, message = parse_ack_error(handler_error(exc))
    assert (code, field) == expected and message
    if isinstance(exc, KeyError):
        assert message.startswith("KeyError")


def test_an_unknown_type_is_an_error_but_not_processed_and_the_log_keeps_the_newest():
    rx = core(log_size=2)
    rx.on_envelope(env(delivery="AtLeastOnce", key=None), T0)
    rx.on_handled(env(delivery="AtLeastOnce", key=None, message_type="Nope"), None, None,
                  handler_error(UnknownMessageTypeError("Nope")), T0)
    assert rx.processed == 0 and rx.handler_errors == 1 and not rx.recent
    for mid in (1, 2, 3):
        rx.on_handled(env(mid=mid, delivery="AtLeastOnce", key=None), None, {}, None, T0)
    assert [r["message_id"] for r in rx.recent] == ["node1/msg-2", "node1/msg-3"]
    assert rx.recent[-1] == {"message_id": "node1/msg-3", "type": "Count", "priority": "Normal",
                             "delivery": "AtLeastOnce", "attempt": 1}
    assert rx.stats()["processed"] == 3 and rx.stats()["received"] == 1


def test_snapshot_restore_and_journal_replay_rebuild_the_window_on_another_clock():
    rx = core()
    rx.on_envelope(env(), T0)
    h = rx.on_handled(env(), "k:k1", {"run": 1}, None, T0)
    blob = rx.snapshot(T0 + 10)
    assert not rx.dirty
    back = ReceiveCore("node2", RoutingConfig(dedup_max_entries=5, dedup_max_age_s=30.0), 4)
    back.restore(blob, 500.0)  # a clock with another origin
    assert "k:k1" in back.dedup and back.dedup.max_entries == 5 and back.dedup.max_age_s == 30.0
    # journaled after the snapshot: the new key rejoins, the known one is not counted twice
    assert back.replay([("k:k1", 0.0, h.stored), ("k:k2", 499.0, b'{"result":2,"error":null}')]) == 1
    assert back.dirty
    d = back.on_envelope(env(key="k2"), 500.0)
    assert isinstance(d, Reply) and result_of(d.ack) == 2
    with pytest.raises((msgspec.DecodeError, msgspec.ValidationError, ValueError)):
        back.restore(b"garbage", 500.0)


# -- property: exactly once, whatever the interleaving ---------------------------------------------

KEYS = ["a", "b", "c"]
events = st.lists(st.tuples(st.sampled_from(["arrive", "finish", "cancel"]), st.sampled_from(KEYS)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(events)
def test_each_key_runs_once_and_every_later_copy_gets_the_journaled_result(ops):
    rx = core()
    now = T0
    running: dict[str, RouteEnvelope] = {}  # key -> envelope whose run is in progress
    runs: dict[str, int] = dict.fromkeys(KEYS, 0)
    journaled: dict[str, bytes] = {}
    abandoned: set[str] = set()
    mid = 0
    for op, name in ops:
        now += 0.01
        key = f"k:{name}"
        if op == "arrive":
            mid += 1
            d = rx.on_envelope(env(mid=mid, key=name), now)
            if isinstance(d, Run):
                assert d.key == key and key not in running and key not in journaled and key not in abandoned
                running[key] = env(mid=mid, key=name)
                runs[name] += 1
            elif isinstance(d, AwaitFirst):
                assert key in running
            else:
                assert d.ack.duplicate and key not in running
                if key in journaled:  # answered with exactly what was journaled before the first ack
                    assert rx.duplicate_ack(env(), journaled[key]) == msgspec.structs.replace(
                        d.ack, message_id=env().message_id)
                else:
                    assert key in abandoned and d.ack.result is None
        elif key in running and op == "finish":
            h = rx.on_handled(running.pop(key), key, {"key": name, "run": runs[name]}, None, now)
            assert h.journal is not None and h.journal.key == key
            journaled[key] = h.journal.stored
            assert json.loads(h.stored)["result"] == {"key": name, "run": 1}
        elif key in running and op == "cancel":
            running.pop(key)
            rx.abandon(key)
            abandoned.add(key)
    assert all(n <= 1 for n in runs.values())
    assert rx.processed == len(journaled)
