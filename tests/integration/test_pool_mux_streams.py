"""Multiplexed wire streams (NETWORKING-045) between live in-process nodes over loopback TLS."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from harness import local_cluster, wait_for

from rustyray.pool.errors import FlowControlError, MultiplexError
from rustyray.pool.flow_control import WIRE_INITIAL_WINDOW
from rustyray.pool.mux_adapter import MUX_CAPABILITY, MuxSession
from rustyray.pool.stream_messages import StreamData, StreamOpen
from rustyray.protocol.control import Echo, EchoReply

MAX_STREAMS = 3
SECTIONS = {"pool": {"maintenance_interval_sec": 0.1, "multiplex": {"max_streams": MAX_STREAMS}}}


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(2, tmp_path, sections=SECTIONS) as c:
        yield c


def pool(cluster, node: str):
    return cluster.node(node).services["pool"]


def sessions(cluster) -> tuple[MuxSession, MuxSession]:
    """node1's session on its primary connection to node2, and node2's session on the same TCP connection."""
    conn = cluster.node("node1").peers["node2"].conn
    local = pool(cluster, "node1").session_for(conn)
    remote = next(s for s in pool(cluster, "node2")._sessions.values()
                  if s.conn.peer_node_id == "node1" and not s.conn.outbound and s.conn.local_address ==
                  conn.peer_address and s.conn.peer_address == conn.local_address)
    return local, remote


async def streams_row(cluster, node: str, conn_id: str) -> dict:
    r = await cluster.client.get("/pool/multiplexing/streams", params={"node": node})
    assert r.status_code == 200, r.text
    return next(c for c in r.json()["connections"] if c["connection_id"] == conn_id)


async def test_capability_is_negotiated_and_requests_carry_stream_ids(cluster):
    node1 = cluster.node("node1")
    assert MUX_CAPABILITY in node1.capabilities
    conn = node1.peers["node2"].conn
    assert MUX_CAPABILITY in conn.peer_capabilities
    local, _remote = sessions(cluster)
    seen = []
    cluster.node("node2").on(Echo, lambda ctx, m: seen.append(ctx.frame.stream_id) or EchoReply(data=m.data))
    assert await node1.request("node2", Echo(data=b"hi")) == EchoReply(data=b"hi")
    assert len(seen) == 1 and seen[0] % 2 == 1, "the dialer's exchange stream id travels in the request frame"
    assert not local.exchanges or seen[0] not in local.exchanges


async def test_bulk_stream_does_not_starve_small_messages(cluster):
    """8 MiB on one stream while 50 small messages go on another: every small one arrives first."""
    bulk_size, small_count = 8 * 1024 * 1024, 50
    events: list[tuple[str, int]] = []  # receiver-side arrival order
    received: dict[int, bytes] = {}
    ids: dict[str, int] = {}

    async def serve(stream):
        parts, total = [], 0
        while chunk := await stream.recv():
            parts.append(chunk)
            total += len(chunk)
            if stream.stream_id == ids.get("bulk"):
                if total == bulk_size:
                    events.append(("bulk_done", total))
            else:
                events.extend(("small", total) for _ in range(len(chunk) // 100))
        received[stream.stream_id] = b"".join(parts)
        stream.close()

    pool(cluster, "node2").stream_handler = serve
    bulk_data = bytes(range(256)) * (bulk_size // 256)
    bulk = await pool(cluster, "node1").open_stream("node2")
    small = await pool(cluster, "node1").open_stream("node2")
    ids["bulk"] = bulk.stream_id
    local, _ = sessions(cluster)
    assert bulk.stream_id % 2 == 1 and small.stream_id > bulk.stream_id
    bulk_task = asyncio.create_task(bulk.send(bulk_data))
    for i in range(small_count):
        await small.send(i.to_bytes(4, "big") * 25)
    small_sent_while_bulk_pending = not bulk_task.done()
    small.close()
    await asyncio.wait_for(bulk_task, 60)
    bulk.close()
    await wait_for(lambda: bulk.stream_id in received and small.stream_id in received, 30)

    assert small_sent_while_bulk_pending
    assert hashlib.sha256(received[bulk.stream_id]).digest() == hashlib.sha256(bulk_data).digest()
    assert received[small.stream_id] == b"".join(i.to_bytes(4, "big") * 25 for i in range(small_count))
    done_at = events.index(("bulk_done", bulk_size))
    assert sum(1 for kind, _ in events[:done_at] if kind == "small") == small_count
    await wait_for(lambda: not local.streams, 10)


@pytest.mark.parametrize("layout", ["stream_window", "connection_window"])
async def test_a_peer_that_overruns_a_window_loses_the_connection_and_the_node_lives_on(cluster, layout):
    node1, node2 = cluster.node("node1"), cluster.node("node2")
    conn = node1.peers["node2"].conn
    _, remote = sessions(cluster)
    errors_before = node2.stats.protocol_errors
    # A misbehaving peer: bypass node1's session and write stream frames past the credit node2 gave.
    if layout == "stream_window":
        conn.send_message(StreamOpen(), 0, 0, 10_001)
        conn.send_message(StreamData(data=b"x" * (WIRE_INITIAL_WINDOW + 1)), 0, 0, 10_001)
    else:
        for sid in (10_001, 10_003):
            conn.send_message(StreamOpen(), 0, 0, sid)
            conn.send_message(StreamData(data=b"x" * 40_000), 0, 0, sid)
    await asyncio.wait_for(conn.wait_closed(), 10)
    await asyncio.wait_for(remote.conn.wait_closed(), 10)
    assert isinstance(remote.error, FlowControlError)
    assert remote.conn.error is not None and remote.conn.error.code == "flow_control_error"
    assert node2.stats.protocol_errors == errors_before + 1
    assert node2.running
    assert await node1.request("node2", Echo(data=b"again"), timeout=10) == EchoReply(data=b"again")


async def test_max_streams_plus_one_open_waits_until_a_stream_closes(cluster):
    async def serve(stream):
        await stream.read_all()
        stream.close()

    pool(cluster, "node2").stream_handler = serve
    p1 = pool(cluster, "node1")
    opened = [await p1.open_stream("node2", timeout=10) for _ in range(MAX_STREAMS)]
    local, _ = sessions(cluster)
    with pytest.raises(TimeoutError):
        await p1.open_stream("node2", timeout=0.2)
    extra = asyncio.create_task(p1.open_stream("node2", timeout=10))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not extra.done()
    row = await streams_row(cluster, "node1", local.conn.conn_id)
    assert row["active_streams"] >= MAX_STREAMS and row["max_streams"] == MAX_STREAMS
    assert set(s.stream_id for s in opened) <= set(row["stream_ids"])
    opened[0].close()
    fourth = await asyncio.wait_for(extra, 10)
    assert opened[0].stream_id not in local.streams and fourth.stream_id in local.streams
    assert fourth.stream_id > opened[-1].stream_id
    for s in [*opened[1:], fourth]:
        s.close()
    await wait_for(lambda: not local.streams, 10)


async def test_api_shows_stream_ids_and_windows_moving_then_zero_active(cluster):
    permits: asyncio.Queue[int] = asyncio.Queue()

    async def serve(stream):  # reads only as many chunks as the test permits
        while True:
            n = await permits.get()
            for _ in range(n):
                if not await stream.recv():
                    stream.close()
                    return

    pool(cluster, "node2").stream_handler = serve
    local, remote = sessions(cluster)
    stream = await pool(cluster, "node1").open_stream("node2")
    sid = stream.stream_id
    send = asyncio.create_task(stream.send(b"z" * (1024 * 1024)))
    await wait_for(lambda: local.send_core.stream_window(sid) == 0, 10)

    row = await streams_row(cluster, "node1", local.conn.conn_id)
    assert sid in row["stream_ids"] and row["multiplexed"] is True
    entry = next(s for s in row["streams"] if s["stream_id"] == sid)
    assert entry["send_window"] == 0 and entry["bytes_sent"] == WIRE_INITIAL_WINDOW
    assert entry["queued_bytes"] == 1024 * 1024 - WIRE_INITIAL_WINDOW
    assert row["send_window"] == 0 and row["stream_bytes_sent"] >= WIRE_INITIAL_WINDOW
    peer_row = await streams_row(cluster, "node2", remote.conn.conn_id)
    peer_entry = next(s for s in peer_row["streams"] if s["stream_id"] == sid)
    assert peer_entry["recv_window"] == 0 and peer_entry["bytes_received"] == WIRE_INITIAL_WINDOW

    permits.put_nowait(2)  # two 16 KiB chunks read: half the window, so one grant of 32,768 bytes
    await wait_for(lambda: stream.bytes_sent == WIRE_INITIAL_WINDOW + 32_768, 10)
    entry = next(s for s in (await streams_row(cluster, "node1", local.conn.conn_id))["streams"]
                 if s["stream_id"] == sid)
    assert entry["bytes_sent"] == WIRE_INITIAL_WINDOW + 32_768 and entry["send_window"] == 0

    permits.put_nowait(10_000)
    await asyncio.wait_for(send, 30)
    stream.close()
    await wait_for(lambda: not local.streams and not remote.streams, 10)

    async def idle() -> bool:
        row = await streams_row(cluster, "node1", local.conn.conn_id)
        return row["active_streams"] == 0 and row["stream_ids"] == [] and row["streams"] == []

    for _ in range(200):
        if await idle():
            break
        await asyncio.sleep(0.02)  # background exchanges (membership probes) are brief
    assert await idle()
    row = await streams_row(cluster, "node1", local.conn.conn_id)
    assert row["stream_bytes_sent"] >= 1024 * 1024 and row["streams_opened"] >= 1


async def test_a_peer_without_the_capability_gets_the_old_behaviour(cluster):
    node1 = cluster.node("node1")
    node3 = await cluster.start_node("node3", seeds=(node1.tcp_address,), capabilities=("lz4", "tls13"))
    assert MUX_CAPABILITY not in node3.capabilities
    seen = []
    node3.on(Echo, lambda ctx, m: seen.append(ctx.frame.stream_id) or EchoReply(data=m.data))
    await wait_for(lambda: node1.peers.get("node3") is not None, 10)
    assert await node1.request("node3", Echo(data=b"old"), timeout=10) == EchoReply(data=b"old")
    conn = node1.peers["node3"].conn
    assert seen == [None] and pool(cluster, "node1").session_for(conn) is None
    row = await streams_row(cluster, "node1", conn.conn_id)
    assert row["multiplexed"] is False and row["stream_ids"] == [] and row["max_streams"] == MAX_STREAMS
    with pytest.raises(MultiplexError):
        await pool(cluster, "node1").open_stream("node3")
