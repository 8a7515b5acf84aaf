"""Transport on real loopback sockets: reconnection, and bad frames closing only their connection."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from harness import make_config, wait_for

from rustyray.node import Node
from rustyray.protocol.control import Echo, EchoReply
from rustyray.protocol.frame import encode_frame
from rustyray.protocol.handshake import Hello
from rustyray.security.tls import client_context

SERVICES = ("transport",)


@pytest.fixture
async def pair(tmp_path):
    a = Node(make_config("node1", tmp_path), services=SERVICES)
    await a.start()
    b = Node(make_config("node2", tmp_path, seeds=(a.tcp_address,)), services=SERVICES)
    await b.start()
    await wait_for(lambda: "node1" in b.peers and b.peers["node1"].connected and "node2" in a.peers, 10)
    yield a, b, tmp_path
    for n in (a, b):
        await n.stop()


async def test_reconnects_after_the_peer_restarts_on_the_same_port(pair):
    a, b, tmp_path = pair
    port = a.tcp_port
    await a.stop()
    await wait_for(lambda: not b.peers["node1"].connected, 5)
    assert b.peers["node1"].backoff.attempts >= 1
    a2 = Node(make_config("node1", tmp_path), services=SERVICES)  # same state dir: same port, next incarnation
    await a2.start()
    try:
        assert a2.tcp_port == port and a2.incarnation == a.incarnation + 1
        await wait_for(lambda: b.peers["node1"].connected, 15)
        reply = await b.request("node1", Echo(data=b"again"))
        assert reply == EchoReply(data=b"again")
    finally:
        await a2.stop()


async def _raw_tls_connection(node: Node, creds_node: Node):
    ctx: ssl.SSLContext = client_context(creds_node.credentials)
    return await asyncio.open_connection("127.0.0.1", node.tcp_port, ssl=ctx, server_hostname=None)


@pytest.mark.parametrize("garbage", [
    b"\x00\x00\x00\x02garbage-after-a-tiny-length",           # length shorter than its checksum
    b"\x7f\xff\xff\xff\x00\x00" + b"\x00" * 8,                 # 2 GiB frame announced
    b"\x00\x00\x00\x08\x01\x00" + b"\x00" * 8 + b"abcdefgh",   # unknown flag bits
])
async def test_malformed_frames_close_only_that_connection(pair, garbage):
    a, b, _ = pair
    errors = a.stats.protocol_errors + a.stats.handshake_refusals
    reader, writer = await _raw_tls_connection(a, b)
    writer.write(encode_frame(Hello(node_id="node2"), 1))
    await writer.drain()
    await reader.read(1024)  # the HelloAck
    writer.write(garbage)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the node
    writer.close()
    assert a.stats.protocol_errors + a.stats.handshake_refusals > errors
    assert a.running
    assert await b.request("node1", Echo(data=b"still here")) == EchoReply(data=b"still here")


async def test_a_connection_that_never_says_hello_is_dropped(pair):
    a, b, _ = pair
    reader, writer = await _raw_tls_connection(a, b)
    writer.write(b"\x00\x00")  # half a header, then silence
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), a.config.transport.handshake_timeout_s + 5) == b""
    writer.close()
    assert a.stats.refusals.get("handshake_timeout", 0) >= 1


async def test_request_to_a_vanished_peer_fails_fast_and_typed(pair):
    a, b, _ = pair
    await a.stop()
    with pytest.raises(ConnectionError):
        await b.request("node1", Echo(data=b"x"), timeout=2.0)
