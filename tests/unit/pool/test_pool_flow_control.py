"""Receive-side flow control: credit spent on data, granted back as the application reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.pool import FlowControlError, MultiplexConfig, MultiplexedConnection, StreamLimitError
from rustyray.pool.errors import UnknownStreamError
from rustyray.pool.flow_control import WIRE_INITIAL_WINDOW, ReceiveWindows


def test_data_beyond_the_stream_window_is_a_flow_control_error():
    rx = ReceiveWindows()
    assert rx.open(1) == []
    rx.receive(1, WIRE_INITIAL_WINDOW)
    with pytest.raises(FlowControlError):
        rx.receive(1, 1)


def test_data_beyond_the_connection_window_is_a_flow_control_error():
    rx = ReceiveWindows()
    rx.open(1)
    rx.open(3)
    rx.receive(1, 40_000)
    with pytest.raises(FlowControlError):
        rx.receive(3, 40_000)
    assert rx.window(3) == WIRE_INITIAL_WINDOW, "a refused receive spends nothing"


def test_credit_comes_back_at_half_the_window_as_the_application_reads():
    rx = ReceiveWindows()
    rx.open(1)
    rx.receive(1, 50_000)
    assert rx.consume(1, 32_767) == []
    assert rx.consume(1, 1) == [(1, 32_768), (0, 32_768)]
    assert rx.window(1) == WIRE_INITIAL_WINDOW - 50_000 + 32_768
    assert rx.connection_window == rx.window(1)
    with pytest.raises(ValueError):
        rx.consume(1, 50_000)  # more than is buffered


def test_larger_targets_are_granted_when_a_stream_opens():
    rx = ReceiveWindows(MultiplexConfig(initial_stream_window=1_000_000, initial_connection_window=4_000_000))
    assert rx.open(1) == [(0, 4_000_000 - WIRE_INITIAL_WINDOW), (1, 1_000_000 - WIRE_INITIAL_WINDOW)]
    assert rx.open(3) == [(3, 1_000_000 - WIRE_INITIAL_WINDOW)], "the connection is topped up once"
    small = ReceiveWindows(MultiplexConfig(initial_stream_window=100))
    assert small.open(1) == [] and small.window(1) == WIRE_INITIAL_WINDOW, "never below the wire's initial window"


def test_closing_returns_unread_bytes_and_late_data_to_the_connection():
    rx = ReceiveWindows()
    rx.open(1)
    rx.receive(1, 30_000)
    assert rx.close(1) == []
    assert rx.receive(1, 3_000) == [(0, 33_000)], "data racing a reset spends and returns connection credit"
    assert rx.connection_window == WIRE_INITIAL_WINDOW
    with pytest.raises(UnknownStreamError):
        rx.consume(1, 1)


ops = st.lists(st.tuples(st.sampled_from(["open", "send", "read", "close"]), st.integers(0, 7),
                         st.integers(1, 70_000)), max_size=80)


@settings(max_examples=150, deadline=None)
@given(ops=ops, stream_target=st.sampled_from([WIRE_INITIAL_WINDOW, 200_000]),
       conn_target=st.sampled_from([WIRE_INITIAL_WINDOW, 300_000]))
def test_a_sender_that_honours_the_grants_never_overruns_and_both_sides_agree(ops, stream_target, conn_target):
    cfg = MultiplexConfig(initial_stream_window=stream_target, initial_connection_window=conn_target)
    rx = ReceiveWindows(cfg)
    tx = MultiplexedConnection("c", "n", MultiplexConfig(initial_stream_window=WIRE_INITIAL_WINDOW,
                                                         initial_connection_window=WIRE_INITIAL_WINDOW,
                                                         max_streams=8))
    open_ids: list[int] = []

    def apply(grants):
        for sid, inc in grants:
            if sid == 0 or sid in open_ids:
                tx.grant(sid, inc)

    for op, pick, n in ops:
        if op == "open" and len(open_ids) < 8:
            sid = tx.open_stream()
            open_ids.append(sid)
            apply(rx.open(sid))
        elif not open_ids:
            continue
        else:
            sid = open_ids[pick % len(open_ids)]
            if op == "send":
                n = min(n, tx.stream_window(sid), tx.connection_window)
                tx.consume(sid, n)
                apply(rx.receive(sid, n))
            elif op == "read":
                apply(rx.consume(sid, min(n, rx.buffered(sid))))
            else:
                tx.close_stream(sid)
                open_ids.remove(sid)
                apply(rx.close(sid))
        for sid in open_ids:
            assert tx.stream_window(sid) == rx.window(sid)
            assert rx.buffered(sid) + rx.window(sid) <= rx.stream_target
        assert tx.connection_window == rx.connection_window <= rx.connection_target


def test_dialer_and_listener_use_odd_and_even_ids_and_peer_streams_do_not_count():
    dialer = MultiplexedConnection("c", "n", MultiplexConfig(max_streams=2))
    listener = MultiplexedConnection("c", "n", MultiplexConfig(max_streams=2), first_stream_id=2)
    assert [dialer.open_stream(), dialer.open_stream()] == [1, 3]
    assert [listener.open_stream(), listener.open_stream()] == [2, 4]
    dialer.accept_stream(2)
    assert dialer.local_streams == 2 and dialer.active_streams == 3 and dialer.stream_ids == [1, 2, 3]
    with pytest.raises(StreamLimitError):
        dialer.open_stream()
    dialer.close_stream(2)
    assert dialer.local_streams == 2
    dialer.close_stream(1)
    assert dialer.open_stream() == 5
    assert dialer.is_local(5) and not dialer.is_local(2) and listener.is_local(6)
