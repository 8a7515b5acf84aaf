"""The management-API channel: frame codec (hypothesis), and the mTLS path to a real in-process node.

Checks what the API depends on: the reply tuple is the node actor's (DomainError kinds and fields kept,
unknown methods a NOT_FOUND tuple), only cluster-CA clients get a frame read, the client refuses a server
that is not the node it dialled, and ``WireGateway`` falls back to the Ray path when the channel is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.errors import DomainError, ErrorKind
from rustyray.security.certificates import ensure_cluster_ca, ensure_node_credentials
from rustyray.security.errors import PeerIdentityError
from rustyray.security.tls import client_context, verify_claimed_identity
from rustyray.transport.api_channel import (
    MAX_FRAME,
    ApiChannelError,
    FrameDecoder,
    encode_reply,
    encode_request,
    parse_reply,
    parse_request,
)
from rustyray.transport.api_channel_adapter import (
    ApiChannelClient,
    ApiChannelClosed,
    ApiChannelServer,
    node_dispatch,
)
from serve_apps.gateway import NodeUnavailable
from serve_apps.wire_gateway import WireGateway
from tests.harness import local_cluster

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


# ------------------------------------------------------------------ codec (sans-I/O)
@settings(max_examples=200, deadline=None)
@given(calls=st.lists(st.tuples(st.integers(0, 2**32), st.sampled_from(["call", "info"]), st.text(max_size=10),
                                st.text(max_size=10), st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
                      min_size=1, max_size=5),
       cut=st.integers(1, 64))
def test_requests_survive_any_chunking(calls, cut):
    stream = b"".join(encode_request(*c) for c in calls)
    decoder = FrameDecoder()
    bodies = []
    for i in range(0, len(stream), cut):
        bodies += decoder.feed(stream[i:i + cut])
    assert [dataclasses.astuple(parse_request(b)) for b in bodies] == calls


@given(call_id=st.integers(0, 2**32), result=json_values)
def test_replies_round_trip(call_id, result):
    (body,) = FrameDecoder().feed(encode_reply(call_id, ("ok", result)))
    assert parse_reply(body) == (call_id, ("ok", result))
    (body,) = FrameDecoder().feed(encode_reply(call_id, ("error", "NOT_FOUND", "gone", None)))
    assert parse_reply(body) == (call_id, ("error", "NOT_FOUND", "gone", None))


def test_broken_streams_are_refused():
    with pytest.raises(ApiChannelError):
        FrameDecoder().feed((MAX_FRAME + 1).to_bytes(4, "big"))
    with pytest.raises(ApiChannelError):
        FrameDecoder().feed(b"\x00\x00\x00\x01\xc1")  # 0xc1 is never valid msgpack
    for bad in ([1, "exec", "", "", {}], [-1, "call", "", "", {}], [1, "call", 3, "", {}], "x", [1, 2]):
        with pytest.raises(ApiChannelError):
            parse_request(bad)
    with pytest.raises(ApiChannelError):
        parse_reply([1, ["maybe", 2]])
    with pytest.raises(ApiChannelError):
        encode_request(1, "exec")


# ------------------------------------------------------------------ mTLS path to a real node
@pytest.fixture
async def node(tmp_path):
    async with local_cluster(1, tmp_path / "state", bootstrap=False) as cluster:
        yield cluster.node("node1")


class Counting:
    def __init__(self, node) -> None:
        self.inner, self.calls = node_dispatch(node), 0

    async def __call__(self, request):
        self.calls += 1
        return await self.inner(request)


@pytest.fixture
async def served(node):
    dispatch = Counting(node)
    server = ApiChannelServer(dispatch, node.server_ssl)
    await server.start("127.0.0.1", 0)
    yield server, dispatch
    await server.stop()


def cluster_client_ssl(node, name: str = "api-test") -> ssl.SSLContext:
    return client_context(ensure_node_credentials(Path(node.config.certs_dir), name))


async def dial(server, context, expect: str | None = "node1") -> ApiChannelClient:
    verify = (lambda so: verify_claimed_identity(so, expect)) if expect else None
    client = ApiChannelClient("127.0.0.1", server.port, context, verify=verify)
    await client.connect(5)
    return client


async def test_calls_answer_like_the_node_actor(node, served):
    server, _ = served
    client = await dial(server, cluster_client_ssl(node))
    try:
        ok = await client.request("call", "manager", "stats", {})
        assert ok[0] == "ok" and set(ok[1]) == set(await node.call_api("manager", "stats", {}))
        info = await client.request("info")
        assert info[0] == "ok" and info[1]["node_id"] == "node1" and info[1]["address"] == node.tcp_address
        missing = await client.request("call", "manager", "no_such_op", {})
        assert missing[:2] == ("error", ErrorKind.NOT_FOUND.name)
        bad_arg = await client.request("call", "manager", "stats", {"bogus": 1})
        with pytest.raises(DomainError) as exc_info:
            await node.call_api("manager", "stats", {"bogus": 1})
        assert bad_arg == ("error", exc_info.value.kind.name, exc_info.value.message, exc_info.value.field)
        # concurrent requests on one connection are correlated by call id
        many = await asyncio.gather(*(client.request("info") for _ in range(20)),
                                    client.request("call", "nope", "x", {}))
        assert all(r[0] == "ok" for r in many[:-1]) and many[-1][:2] == ("error", "NOT_FOUND")
    finally:
        client.close()


async def test_unknown_op_frame_gets_an_error_tuple(node, served):
    server, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=cluster_client_ssl(node))
    body = msgpack.packb([7, "exec", "manager", "stats", {}])
    writer.write(len(body).to_bytes(4, "big") + body)
    (reply,) = FrameDecoder().feed(await reader.read(4096))
    assert parse_reply(reply) == (7, ("error", "UNPROCESSABLE", "op: unknown 'exec'", None))
    writer.close()


async def test_a_client_without_a_cluster_certificate_is_never_served(tmp_path, node, served):
    server, dispatch = served
    other = tmp_path / "other-ca"
    ensure_cluster_ca(other)
    foreign = ensure_node_credentials(other, "api-evil")  # a valid certificate from another CA
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(Path(node.config.certs_dir) / "ca.pem"))  # it trusts our server
    context.load_cert_chain(str(foreign.cert_path), str(foreign.key_path))
    no_cert = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    no_cert.check_hostname = False
    no_cert.load_verify_locations(cafile=str(Path(node.config.certs_dir) / "ca.pem"))
    for ctx in (context, no_cert):
        try:
            client = await dial(server, ctx, expect=None)
        except (ssl.SSLError, ConnectionError):
            continue  # refused in the handshake
        with pytest.raises(ApiChannelClosed):
            await client.request("info", timeout=5)  # TLS 1.3: the refusal arrives as the first read fails
        client.close()
    assert dispatch.calls == 0


async def test_the_client_refuses_a_server_that_is_not_the_node_it_dialled(node, served):
    server, _ = served
    with pytest.raises(PeerIdentityError):
        await dial(server, cluster_client_ssl(node), expect="node2")


# ------------------------------------------------------------------ WireGateway over the channel, Ray faked
class FakeWire(WireGateway):
    """The channel is the in-process server; the 'Ray path' records that it was taken."""

    def __init__(self, server, context) -> None:
        super().__init__()
        self.server, self.context, self.ray_path = server, context, 0
        self.node_gone = False

    async def _channel(self, node_id):
        channel = self._channels.get(node_id)
        if channel is None or channel.closed:
            try:
                channel = await dial(self.server, self.context)
            except OSError:
                return None
            self._channels[node_id] = channel
        return channel

    async def node_ids(self):
        return ["node1"]


@pytest.fixture
def ray_path(monkeypatch):
    from serve_apps import gateway as gw_mod

    taken: list[str] = []

    async def call(self, node_id, service, method, /, **kwargs):
        taken.append(method)
        if self.node_gone:
            raise NodeUnavailable(f"node {node_id!r} is unavailable: RayActorError")
        return {"via": "ray"}

    async def info(self, node_id, timeout=2.0):
        taken.append("info")
        return None if self.node_gone else {"node_id": node_id, "via": "ray"}

    monkeypatch.setattr(gw_mod.RayGateway, "call", call)
    monkeypatch.setattr(gw_mod.RayGateway, "info", info)
    return taken


async def test_wire_gateway_maps_errors_and_falls_back_when_the_channel_is_gone(node, served, ray_path):
    server, _ = served
    gw = FakeWire(server, cluster_client_ssl(node))
    gw.read_max_age_s = 0  # every read asks the node (snapshots: the next test)
    stats = await gw.call("node1", "manager", "stats")
    assert stats["node"] == "node1" and ray_path == []
    with pytest.raises(DomainError) as exc_info:
        await gw.call("node1", "manager", "no_such_op")
    assert exc_info.value.kind is ErrorKind.NOT_FOUND
    assert (await gw.info("node1"))["node_id"] == "node1" and gw.stats["wire_calls"] == 3
    await server.stop()  # the channel closes: the next calls take the Ray path, which decides
    await asyncio.wait_for(gw._channels["node1"]._reader_task, 5)  # it saw the close
    assert await gw.call("node1", "manager", "stats") == {"via": "ray"}
    gw.node_gone = True
    with pytest.raises(NodeUnavailable):
        await gw.call("node1", "manager", "stats")
    assert await gw.info("node1") is None
    assert ray_path == ["stats", "stats", "info"]



async def test_read_snapshots_are_bounded_in_age_and_dropped_by_writes(node, served, monkeypatch):
    import serve_apps.wire_gateway as wg

    now = [1000.0]
    monkeypatch.setattr(wg.time, "monotonic", lambda: now[0])
    server, dispatch = served
    gw = FakeWire(server, cluster_client_ssl(node))
    first, again = await asyncio.gather(gw.call("node1", "manager", "stats"), gw.call("node1", "manager", "stats"))
    assert first is again and dispatch.calls == 1  # concurrent identical reads: one round trip
    now[0] += gw.read_max_age_s / 2
    assert await gw.call("node1", "manager", "stats") is first and dispatch.calls == 1
    now[0] += gw.read_max_age_s  # older than the bound: the node is asked again
    fresh = await gw.call("node1", "manager", "stats")
    assert fresh is not first and dispatch.calls == 2
    with pytest.raises(DomainError):  # any other call (here a failing one) drops the snapshots first
        await gw.call("node1", "manager", "no_such_op")
    assert await gw.call("node1", "manager", "stats") is not fresh and dispatch.calls == 4
    with pytest.raises(DomainError):  # a read with arguments is never shared (it is not a snapshot read)
        await asyncio.gather(gw.call("node1", "manager", "stats", bogus=1), gw.call("node1", "manager", "stats",
                                                                                    bogus=1))
    assert dispatch.calls == 6 and gw.stats["snapshot_hits"] == 2


async def test_a_node_that_never_answers_is_unavailable_after_the_call_deadline(node, ray_path):
    """A host that vanished without closing its connections: the call fails (503), it does not hang."""
    stuck = asyncio.Event()

    async def never(request):
        await stuck.wait()

    server = ApiChannelServer(never, node.server_ssl)
    await server.start("127.0.0.1", 0)
    try:
        gw = FakeWire(server, cluster_client_ssl(node))
        gw.read_max_age_s = 0
        gw.call_timeout_s = 0.2
        with pytest.raises(NodeUnavailable, match="did not answer"):
            await gw.call("node1", "routing", "send")
        assert "node1" not in gw._channels and ray_path == []  # dropped, and never re-run over Ray
    finally:
        stuck.set()
        await server.stop()
