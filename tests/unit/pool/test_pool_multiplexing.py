"""Multiplexed streams: limits, credit windows, fair scheduling."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.pool import (
    FlowControlError,
    MultiplexConfig,
    MultiplexedConnection,
    StreamLimitError,
    UnknownStreamError,
)
from rustyray.pool.multiplexing import MAX_WINDOW


def test_stream_limit_and_seed_stats() -> None:
    conn = MultiplexedConnection("conn-123", "node2")
    ids = [conn.open_stream() for _ in range(100)]
    assert ids[:3] == [1, 3, 5]
    with pytest.raises(StreamLimitError):
        conn.open_stream()
    for sid in ids[5:]:
        conn.close_stream(sid)
    assert conn.stats().to_dict() == {
        "connection_id": "conn-123", "node": "node2", "active_streams": 5, "max_streams": 100,
    }
    with pytest.raises(UnknownStreamError):
        conn.can_send(ids[-1], 1)


def test_windows_gate_sends_and_window_update_restores_credit() -> None:
    conn = MultiplexedConnection("c", "n", MultiplexConfig(initial_stream_window=100, initial_connection_window=150))
    a, b = conn.open_stream(), conn.open_stream()
    assert conn.can_send(a, 100) and not conn.can_send(a, 101)
    conn.consume(a, 100)
    assert not conn.can_send(a, 1)
    assert conn.can_send(b, 50) and not conn.can_send(b, 51), "connection window is shared"
    with pytest.raises(FlowControlError):
        conn.consume(b, 51)
    conn.grant(a, 10)
    conn.grant(None, 1000)
    assert conn.can_send(a, 10) and conn.can_send(b, 100)
    with pytest.raises(FlowControlError):
        conn.grant(a, 0)
    with pytest.raises(FlowControlError):
        conn.grant(None, MAX_WINDOW)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 200_000), min_size=2, max_size=8),
    frame=st.sampled_from([1000, 16_384]),
)
def test_scheduler_round_robins_so_no_stream_starves(sizes: list[int], frame: int) -> None:
    big = 2**30
    conn = MultiplexedConnection("c", "n", MultiplexConfig(initial_stream_window=big,
                                                           initial_connection_window=big, max_frame_size=frame))
    ids = [conn.open_stream() for _ in sizes]
    for sid, size in zip(ids, sizes, strict=True):
        conn.enqueue(sid, size)
    sent: Counter[int] = Counter()
    order: list[int] = []
    while (chunk := conn.next_chunk()) is not None:
        sid, n = chunk
        assert 0 < n <= frame
        sent[sid] += n
        order.append(sid)
    assert [sent[s] for s in ids] == sizes
    # round robin: while two streams both still have data, their turns strictly alternate
    last = {sid: max(i for i, x in enumerate(order) if x == sid) for sid in ids}
    for x in ids:
        for y in ids:
            if x >= y:
                continue
            cutoff = min(last[x], last[y])
            pair = [sid for sid in order[: cutoff + 1] if sid in (x, y)]
            assert all(p != q for p, q in itertools.pairwise(pair)), "a stream got two turns in a row"


@settings(max_examples=60, deadline=None)
@given(
    ops=st.lists(st.tuples(st.sampled_from(["enq", "grant", "grant_conn", "send"]), st.integers(0, 3),
                           st.integers(1, 50_000)), max_size=80),
)
def test_scheduler_never_overruns_any_window(ops: list[tuple[str, int, int]]) -> None:
    conn = MultiplexedConnection("c", "n", MultiplexConfig(max_frame_size=5000))
    ids = [conn.open_stream() for _ in range(4)]
    granted = {s: conn.config.initial_stream_window for s in ids}
    conn_granted = conn.config.initial_connection_window
    spent: Counter[int] = Counter()
    for op, idx, n in ops:
        sid = ids[idx]
        if op == "enq":
            conn.enqueue(sid, n)
        elif op == "grant":
            conn.grant(sid, n)
            granted[sid] += n
        elif op == "grant_conn":
            conn.grant(0, n)
            conn_granted += n
        else:
            chunk = conn.next_chunk()
            if chunk is not None:
                spent[chunk[0]] += chunk[1]
        assert all(spent[s] <= granted[s] for s in ids)
        assert sum(spent.values()) <= conn_granted
        assert conn.connection_window == conn_granted - sum(spent.values())


def test_blocked_stream_keeps_its_turn_and_close_drops_pending() -> None:
    conn = MultiplexedConnection("c", "n", MultiplexConfig(initial_stream_window=10, max_frame_size=10))
    a, b = conn.open_stream(), conn.open_stream()
    conn.enqueue(a, 30)
    conn.enqueue(b, 30)
    assert [conn.next_chunk(), conn.next_chunk(), conn.next_chunk()] == [(a, 10), (b, 10), None]
    conn.grant(b, 10)
    assert conn.next_chunk() == (b, 10)
    conn.grant(a, 10)
    assert conn.next_chunk() == (a, 10)
    assert conn.close_stream(a) == 10
    conn.grant(b, 10)
    assert conn.next_chunk() == (b, 10)
    assert conn.next_chunk() is None
