"""asyncio ends of the management-API channel (format and rationale: ``rustyray.transport.api_channel``).

``ApiChannelServer`` runs on the node next to its mesh listeners, with the node's own server TLS context
(TLS 1.3, a client certificate chaining to the cluster CA is required: a client without one never gets a
frame read). ``ApiChannelClient`` is one pooled connection from the API replica to one node; requests are
multiplexed on it by call id. Both are thin: framing and validation live in the sans-I/O module.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from rustyray.errors import DomainError, ErrorKind
from rustyray.transport.api_channel import (
    ApiChannelError,
    ApiRequest,
    FrameDecoder,
    encode_reply,
    encode_request,
    parse_reply,
    parse_request,
)

__all__ = ["ApiChannelClient", "ApiChannelClosed", "ApiChannelServer", "api_reply", "node_dispatch"]

log = logging.getLogger(__name__)

Dispatch = Callable[[ApiRequest], Awaitable[tuple[Any, ...]]]
_READ = 256 * 1024


async def api_reply(node: Any, service: str, method: str, kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """``node.call_api`` as the tagged tuple both API paths (Ray actor call, channel) answer with.

    A ``DomainError`` keeps its kind and field; any other exception is a bug or an unexpected failure:
    logged with its traceback and answered as ``INTERNAL`` (HTTP 500), the node stays up.
    """
    try:
        return ("ok", await node.call_api(service, method, kwargs))
    except DomainError as exc:
        return ("error", exc.kind.name, exc.message, exc.field)
    except Exception as exc:
        log.exception("%s.%s failed", service, method)
        return ("error", ErrorKind.INTERNAL.name, f"{service}.{method} failed: {type(exc).__name__}: {exc}", None)


def node_dispatch(node: Any) -> Dispatch:
    """The server's dispatch for a ``Node``: ``call`` -> ``call_api``, ``info`` -> ``info()``."""

    async def dispatch(request: ApiRequest) -> tuple[Any, ...]:
        if request.op == "info":
            return ("ok", node.info())
        return await api_reply(node, request.service, request.method, request.kwargs)

    return dispatch


class ApiChannelServer:
    """Accepts mTLS connections and answers API-call frames, each request in its own task."""

    def __init__(self, dispatch: Dispatch, ssl_context: ssl.SSLContext) -> None:
        if ssl_context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("the API channel needs a TLS context that requires client certificates")
        self.dispatch = dispatch
        self.ssl_context = ssl_context
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self, host: str, port: int = 0) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and close every connection (their clients see the channel closed)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._conns):
            writer.transport.abort()  # the connection's read loop ends on it and cleans up
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        pending: set[asyncio.Task[None]] = set()
        try:
            if not writer.get_extra_info("peercert"):  # CERT_REQUIRED refuses these already; never serve one
                return
            decoder = FrameDecoder()
            while data := await reader.read(_READ):
                for body in decoder.feed(data):
                    try:
                        request = parse_request(body)
                    except ApiChannelError as exc:
                        if not (isinstance(body, list) and body and isinstance(body[0], int)):
                            raise
                        writer.write(encode_reply(body[0], ("error", ErrorKind.UNPROCESSABLE.name, str(exc), None)))
                        continue
                    task = asyncio.get_running_loop().create_task(self._answer(request, writer))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
        except (ApiChannelError, ConnectionError, ssl.SSLError, OSError) as exc:
            log.debug("API channel connection closed: %s", exc)
        finally:
            self._conns.discard(writer)
            for task in pending:
                task.cancel()
            writer.close()

    async def _answer(self, request: ApiRequest, writer: asyncio.StreamWriter) -> None:
        reply = await self.dispatch(request)
        try:
            frame = encode_reply(request.call_id, reply)
        except (ApiChannelError, TypeError, ValueError, OverflowError) as exc:  # msgpack cannot carry it
            frame = encode_reply(request.call_id, ("error", ErrorKind.INTERNAL.name,
                                                   f"answer of {request.service}.{request.method} cannot be "
                                                   f"encoded: {exc}", None))
        if not writer.is_closing():
            writer.write(frame)


class ApiChannelClosed(ConnectionError):
    """The channel failed. ``sent``: the request was written, so the node may have run it."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class ApiChannelClient:
    """One connection to one node's API channel; ``request`` may be called concurrently."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext,
                 verify: Callable[[Any], None] | None = None) -> None:
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.verify = verify
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[tuple[Any, ...]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self.closed = False

    async def connect(self, timeout: float = 2.0) -> None:
        """Dial and handshake; ``verify(ssl_object)`` may raise to refuse the server (wrong node)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl_context), timeout)
        try:
            if self.verify is not None:
                self.verify(writer.get_extra_info("ssl_object"))
        except BaseException:
            writer.close()
            raise
        self._writer = writer
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def request(self, op: str, service: str = "", method: str = "", kwargs: dict[str, Any] | None = None,
                      timeout: float | None = None) -> tuple[Any, ...]:
        """The node's reply tuple; ``ApiChannelClosed`` when the channel fails, ``TimeoutError`` on timeout.

        An argument msgpack cannot carry raises ``ApiChannelError`` (nothing was sent).
        """
        if self.closed or self._writer is None or self._writer.is_closing():
            raise ApiChannelClosed("the API channel is closed", sent=False)
        call_id = next(self._ids)
        frame = encode_request(call_id, op, service, method, kwargs)  # before registering: may raise
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            self._writer.write(frame)
            if timeout is None:
                return await future
            return await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(call_id, None)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        decoder = FrameDecoder()
        reason = "the node closed the API channel"
        try:
            while data := await reader.read(_READ):
                for body in decoder.feed(data):
                    call_id, reply = parse_reply(body)
                    future = self._pending.get(call_id)
                    if future is not None and not future.done():
                        future.set_result(reply)
        except (ApiChannelError, ConnectionError, ssl.SSLError, OSError) as exc:
            reason = f"API channel failed: {type(exc).__name__}: {exc}"
        finally:
            self._fail(reason)

    def _fail(self, reason: str) -> None:
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ApiChannelClosed(reason, sent=True))
        if self._writer is not None:
            self._writer.close()

    def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
        self._fail("closed by the client")
