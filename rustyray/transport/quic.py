"""QUIC transport (RFC 9000, TLS 1.3 built in) on aioquic.

Frames travel on one client-initiated bidirectional stream per connection (stream
0); QUIC's own multiplexing is available for more streams later. aioquic's
``QuicConnection`` is itself sans-I/O; ``QuicConnectionProtocol`` is its asyncio
adapter, and this module only bridges its stream events to our ``Connection``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, HandshakeCompleted, QuicEvent, StreamDataReceived

from rustyray.transport.connection import Connection
from rustyray.transport.tcp import format_address


class QuicConnectionAdapter(Connection):
    """Our ``Connection`` over one aioquic connection and its first bidirectional stream."""

    protocol_name = "QUIC"

    def __init__(self, proto: QuicFrameProtocol, *, outbound: bool) -> None:
        super().__init__(outbound=outbound)
        self.proto = proto
        self.stream_id: int | None = None

    def _write(self, data: bytes) -> None:
        proto = self.proto
        quic = proto._quic
        if self.stream_id is None:
            self.stream_id = quic.get_next_available_stream_id(is_unidirectional=False)
        quic.send_stream_data(self.stream_id, data, end_stream=False)
        if not proto.receiving:  # else the transmit that ends the receive sends it (with its ACK)
            proto.transmit()

    def _close(self, *, abort: bool) -> None:
        self.proto.close(error_code=0 if not abort else 0x1, reason_phrase=self.close_reason or "")
        self._mark_closed(None)


class QuicFrameProtocol(QuicConnectionProtocol):
    """Routes aioquic events into a ``QuicConnectionAdapter``."""

    on_new: Callable[[QuicConnectionAdapter], None] | None = None
    on_server_quic: Callable[[QuicConnection], None] | None = None

    def __init__(self, quic: QuicConnection, stream_handler: Any = None, *, outbound: bool = False) -> None:
        if not outbound and self.on_server_quic is not None:
            self.on_server_quic(quic)  # e.g. demand a client certificate before any datagram is processed
        super().__init__(quic, stream_handler)
        self.conn = QuicConnectionAdapter(self, outbound=outbound)
        self.conn.tls_version = "TLSv1.3"

    receiving = False
    """True while a datagram's events are handled; a transmit follows them."""

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        """aioquic's own (receive, handle the events, transmit), marked so writes skip their own transmit.

        Why: a reply written while the request's datagram is handled then leaves in the
        packet that acknowledges the request, one transmit per received datagram instead
        of two.
        """
        self.receiving = True
        try:
            self._quic.receive_datagram(data, addr, now=self._loop.time())  # type: ignore[arg-type]
            self._process_events()
        finally:
            # transmit even when handling raised: what the handled part queued (acks, replies) still leaves
            self.receiving = False
            self.transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        conn = self.conn
        if type(event) is StreamDataReceived:  # the common event first
            if conn.stream_id is None:
                conn.stream_id = event.stream_id
            if event.stream_id == conn.stream_id:
                conn._data(event.data)
        elif isinstance(event, HandshakeCompleted):
            peer = self._transport.get_extra_info("peername") if self._transport else None
            if not conn.outbound and self.on_new is not None:
                self.on_new(conn)
            if peer and not conn.peer_address:
                conn.peer_address = format_address(peer[0], peer[1])
        elif isinstance(event, ConnectionTerminated):
            conn.close_reason = conn.close_reason or (event.reason_phrase or f"quic error {event.error_code}")
            conn._mark_closed(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.conn._mark_closed(exc)


async def quic_dial(host: str, port: int, *, configuration: QuicConfiguration,
                    timeout: float = 5.0) -> QuicConnectionAdapter:
    """Open a QUIC connection and complete its TLS 1.3 handshake."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, addr = infos[0]
    configuration.server_name = configuration.server_name or host
    quic = QuicConnection(configuration=configuration)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind(("::1" if family == socket.AF_INET6 else "127.0.0.1", 0) if host in ("127.0.0.1", "::1", "localhost")
              else ("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
    transport, proto = await loop.create_datagram_endpoint(
        lambda: QuicFrameProtocol(quic, outbound=True), sock=sock)
    assert isinstance(proto, QuicFrameProtocol)
    try:
        proto.connect(addr)
        await asyncio.wait_for(proto.wait_connected(), timeout)
    except BaseException:
        proto.close()
        transport.close()
        raise
    proto.conn.peer_address = format_address(addr[0], addr[1])
    return proto.conn


class QuicListener:
    """A QUIC server endpoint; hands each connection on once its handshake completed."""

    def __init__(self, on_connection: Callable[[QuicConnectionAdapter], None], *,
                 configuration: QuicConfiguration,
                 on_server_quic: Callable[[QuicConnection], None] | None = None) -> None:
        self._on_connection = on_connection
        self._on_server_quic = on_server_quic
        self._configuration = configuration
        self.server: QuicServer | None = None
        self.host = ""
        self.port = 0

    async def start(self, host: str, port: int) -> None:
        on_new = self._on_connection

        class _Proto(QuicFrameProtocol):
            pass

        _Proto.on_new = staticmethod(on_new)  # type: ignore[assignment]
        _Proto.on_server_quic = staticmethod(self._on_server_quic) if self._on_server_quic else None
        self.server = await serve(host, port, configuration=self._configuration, create_protocol=_Proto)
        sockname = self.server._transport.get_extra_info("sockname")
        self.host, self.port = sockname[0], sockname[1]

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
