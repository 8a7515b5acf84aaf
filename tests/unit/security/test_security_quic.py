"""Real QUIC handshakes on 127.0.0.1: aioquic with the cluster credentials and enforced client certs."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent, StreamDataReceived

from rustyray.security.certificates import NodeCredentials
from rustyray.security.tls import QUIC_ALPN, quic_configuration, quic_peer_node_id, require_client_certificate


class EchoServerProtocol(QuicConnectionProtocol):
    """Echoes stream data prefixed with the peer CN; records what happened for the test."""

    log: list[tuple[str, object]]

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, HandshakeCompleted):
            self.log.append(("handshake", quic_peer_node_id(self._quic)))
        elif isinstance(event, StreamDataReceived):
            self.log.append(("data", event.data))
            reply = f"{quic_peer_node_id(self._quic)}:".encode() + event.data
            self._quic.send_stream_data(event.stream_id, reply, end_stream=True)
            self.transmit()
        elif isinstance(event, ConnectionTerminated):
            self.log.append(("closed", event.reason_phrase))


async def _start(config: QuicConfiguration, enforce: bool, **serve_kwargs):
    log: list[tuple[str, object]] = []

    def factory(quic: QuicConnection, **kwargs) -> EchoServerProtocol:
        if enforce:
            require_client_certificate(quic)
        proto = EchoServerProtocol(quic, **kwargs)
        proto.log = log
        return proto

    server = await serve("127.0.0.1", 0, configuration=config, create_protocol=factory, **serve_kwargs)
    port = server._transport.get_extra_info("sockname")[1]
    return server, port, log


async def _request(port: int, config: QuicConfiguration) -> bytes:
    """Open a stream, send a ping, return the reply; raises ConnectionError / TimeoutError on refusal."""
    async with connect("127.0.0.1", port, configuration=config, wait_connected=True) as client:
        reader, writer = await client.create_stream()
        writer.write(b"ping")
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 3)


def _client(creds: NodeCredentials | None, trust: NodeCredentials, server_node_id: str = "node1"):
    if creds is not None:
        return quic_configuration(creds, is_client=True, server_node_id=server_node_id)
    config = QuicConfiguration(is_client=True, alpn_protocols=[QUIC_ALPN], server_name=server_node_id)
    config.load_verify_locations(cafile=str(trust.ca_path))
    return config


def _refused(reply: bytes | BaseException) -> bool:
    """No echo: the handshake/connection failed, or the stream ended empty because the peer closed."""
    return isinstance(reply, ConnectionError | TimeoutError) or reply == b""


async def _run(server_creds: NodeCredentials, client_config: QuicConfiguration, enforce: bool = True):
    server, port, log = await _start(quic_configuration(server_creds, is_client=False), enforce)
    try:
        try:
            reply: bytes | BaseException = await asyncio.wait_for(_request(port, client_config), 5)
        except (ConnectionError, TimeoutError) as exc:
            reply = exc
        await asyncio.sleep(0)  # let the server drain its last events
        return reply, log
    finally:
        server.close()


def test_configuration_fields(pki) -> None:
    for is_client in (True, False):
        config = quic_configuration(pki.node1, is_client=is_client, server_node_id="node2")
        assert config.alpn_protocols == ["rustyray/1"]
        assert config.verify_mode == ssl.CERT_REQUIRED
        assert config.cafile == str(pki.node1.ca_path)
        assert config.certificate is not None and config.private_key is not None
        assert config.server_name == ("node2" if is_client else None)


async def test_cluster_client_is_accepted_and_identified(pki) -> None:
    reply, log = await _run(pki.node1, _client(pki.node2, pki.node1))
    assert reply == b"node2:ping"
    assert ("handshake", "node2") in log


async def test_client_without_certificate_is_refused(pki) -> None:
    reply, log = await _run(pki.node1, _client(None, pki.node1))
    assert _refused(reply)
    assert not [e for e in log if e[0] in ("handshake", "data")]


async def test_client_with_foreign_certificate_is_refused(pki) -> None:
    reply, log = await _run(pki.node1, _client(pki.foreign2, pki.node1))
    assert _refused(reply)
    assert not [e for e in log if e[0] in ("handshake", "data")]


async def test_client_with_expired_certificate_is_refused(pki) -> None:
    reply, log = await _run(pki.node1, _client(pki.expired2, pki.node1))
    assert _refused(reply)
    assert not [e for e in log if e[0] in ("handshake", "data")]


async def test_client_rejects_server_with_other_node_id(pki) -> None:
    reply, log = await _run(pki.node1, _client(pki.node2, pki.node1, server_node_id="node3"))
    assert _refused(reply)
    assert not [e for e in log if e[0] == "data"]


async def test_aioquic_alone_does_not_require_client_certs(pki) -> None:
    """Pins the aioquic gap require_client_certificate closes: without it a cert-less client gets in.

    If this starts failing, aioquic changed its server-side client-auth behaviour: revisit quic_tls.py.
    """
    reply, _ = await _run(pki.node1, _client(None, pki.node1), enforce=False)
    assert reply == b"None:ping"


@pytest.mark.parametrize("enforce", [False, True])
async def test_enforcement_turns_session_tickets_off(pki, enforce: bool) -> None:
    """Resumed (PSK) handshakes skip client auth, so an enforcing server must not issue tickets."""
    store: dict[bytes, object] = {}
    server, port, _ = await _start(
        quic_configuration(pki.node1, is_client=False),
        enforce,
        session_ticket_fetcher=store.pop,
        session_ticket_handler=lambda t: store.__setitem__(t.ticket, t),
    )
    tickets: list[object] = []
    try:
        config = _client(pki.node2, pki.node1)
        async with connect(
            "127.0.0.1", port, configuration=config, session_ticket_handler=tickets.append
        ) as client:
            reader, writer = await client.create_stream()
            writer.write(b"x")
            writer.write_eof()
            expected = b"node2:x" if enforce else b"None:x"  # no CertificateRequest without enforcement
            assert await asyncio.wait_for(reader.read(), 3) == expected
            await client.ping()
    finally:
        server.close()
    assert (tickets == []) is enforce
