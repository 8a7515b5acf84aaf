"""TCP transport (optionally TLS 1.3 with mutual authentication) on asyncio.Protocol."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Callable

from rustyray.protocol.addresses import format_address, parse_address
from rustyray.transport.connection import Connection

__all__ = ["TcpConnection", "TcpListener", "format_address", "parse_address", "tcp_dial"]


class TcpConnection(Connection, asyncio.Protocol):
    protocol_name = "TCP"

    def __init__(self, *, outbound: bool) -> None:
        Connection.__init__(self, outbound=outbound)
        self.transport: asyncio.Transport | None = None
        self._can_write = asyncio.Event()
        self._can_write.set()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop transports are not asyncio.Transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        if peer:
            self.peer_address = format_address(peer[0], peer[1])
        if local:
            self.local_address = format_address(local[0], local[1])
        ssl_obj = transport.get_extra_info("ssl_object")
        if ssl_obj is not None:
            self.tls_version = ssl_obj.version()
            c = ssl_obj.cipher()
            self.cipher = c[0] if c else None
        transport.set_write_buffer_limits(high=4 * 1024 * 1024)

    def data_received(self, data: bytes) -> None:
        self._data(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._can_write.set()
        self._mark_closed(exc)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        return self.transport.get_extra_info("ssl_object") if self.transport else None

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    async def drain(self) -> None:
        if self._wbuf:
            self.flush()
        if not self._can_write.is_set():
            await self._can_write.wait()
        if self.is_closed:
            raise ConnectionError(f"{self.conn_id} is closed ({self.close_reason})")

    def _close(self, *, abort: bool) -> None:
        if self.transport is None:
            return
        if abort:
            self.transport.abort()
        else:
            self.transport.close()


async def tcp_dial(host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                   timeout: float = 5.0) -> TcpConnection:
    """Open one TCP (or TLS) connection; raises OSError / TimeoutError on failure."""
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: TcpConnection(outbound=True), host, port, ssl=ssl_context,
                               server_hostname=None if ssl_context is None else "",
                               ssl_handshake_timeout=timeout if ssl_context else None),
        timeout,
    )
    return proto


class TcpListener:
    """Accepts connections and passes each (after TLS, before the frame handshake) on."""

    def __init__(self, on_connection: Callable[[TcpConnection], None], *,
                 ssl_context: ssl.SSLContext | None = None, handshake_timeout: float = 10.0) -> None:
        self._on_connection = on_connection
        self._ssl = ssl_context
        self._handshake_timeout = handshake_timeout
        self.server: asyncio.Server | None = None
        self.host = ""
        self.port = 0

    def _factory(self) -> TcpConnection:
        conn = TcpConnection(outbound=False)
        original = conn.connection_made

        def made(transport: asyncio.BaseTransport) -> None:
            original(transport)
            self._on_connection(conn)

        conn.connection_made = made  # type: ignore[method-assign]
        return conn

    async def start(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            self._factory, host, port, ssl=self._ssl, reuse_address=True, backlog=1024,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl else None,
        )
        sockname = self.server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)
            self.server = None
