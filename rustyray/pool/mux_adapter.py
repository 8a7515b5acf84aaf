"""Multiplexed byte streams over one framed ``Connection``: the asyncio adapter (NETWORKING-045).

Theory of operation (HTTP/2 streams, RFC 9113 sections 5.1 and 6.9, over our frames):

- Negotiation. Both ends offer the handshake capability ``mux-streams`` (the pool service adds
  it when ``multiplexing`` is among the node's capabilities); only then does the pool service
  build a ``MuxSession`` for the connection. A peer without it gets the old behaviour: plain
  request/response frames, no stream ids on the wire.
- Frames. Every stream frame sets ``Flags.STREAM``; the 4-byte stream id in the frame names
  the stream. Messages (``pool.stream_messages``): ``StreamOpen`` opens a stream,
  ``StreamData(data, end)`` carries bytes (``end`` half-closes the sender's side, like
  END_STREAM), ``StreamWindowUpdate(increment)`` returns credit (stream id 0: the
  connection), ``StreamReset(code)`` aborts both directions. The dialer opens odd ids, the
  listener even ids, each increasing.
- Flow control. Sending uses ``MultiplexedConnection`` (credit windows, round-robin
  ``next_chunk()`` scheduler, ``max_frame_size`` chunks), starting every window at
  ``WIRE_INITIAL_WINDOW``; receiving uses ``ReceiveWindows``, which grants credit back as the
  application reads. ``Stream.send`` queues its bytes and returns once the scheduler has
  written all of them, so a stream buffers at most what its caller passed; a large transfer
  on one stream is cut into chunks that alternate with every other stream's chunks. A peer
  that overruns a window (or breaks the stream-id rules) gets the connection aborted with a
  ``RemoteProtocolError`` whose code is ``flow_control_error`` (or ``stream_protocol_error``);
  ``session.error`` keeps the typed pool error.
- Limits. ``open_stream`` (and every request/response exchange, see ``open_exchange``) waits
  while ``max_streams`` streams this side opened are still open. A peer opening more streams
  than our ``max_streams`` gets ``StreamReset(code="refused_stream")``.
- Closing. A stream is gone when both sides sent ``end`` or either sent a reset; a
  closed connection fails every waiting call with ``ConnectionError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.pool.errors import FlowControlError, MultiplexError, StreamLimitError
from rustyray.pool.flow_control import WIRE_INITIAL_WINDOW, Grant, ReceiveWindows
from rustyray.pool.multiplexing import MultiplexConfig, MultiplexedConnection
from rustyray.pool.stream_messages import StreamData, StreamOpen, StreamReset, StreamWindowUpdate
from rustyray.protocol.errors import ProtocolError, RemoteProtocolError
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.connection import Connection

log = logging.getLogger(__name__)

MUX_CAPABILITY = "mux-streams"
"""Handshake capability both ends must offer before stream frames flow."""


class StreamClosedError(MultiplexError):
    """The stream was reset, or this side already ended it, or its connection closed."""


class Stream:
    """One bidirectional byte stream of a ``MuxSession``."""

    def __init__(self, session: MuxSession, stream_id: int) -> None:
        self.session = session
        self.stream_id = stream_id
        self.bytes_sent = 0
        self.bytes_received = 0
        self._out: deque[tuple[memoryview, asyncio.Future[None]]] = deque()
        self._out_offset = 0
        self._inbox: deque[bytes] = deque()
        self._readable = asyncio.Event()
        self.local_ended = False  # we sent end (or will, after the queued data)
        self._end_sent = False
        self.remote_ended = False
        self.reset_code: str | None = None

    @property
    def closed(self) -> bool:
        return self.reset_code is not None or (self._end_sent and self.remote_ended)

    async def send(self, data: bytes) -> None:
        """Queue ``data`` and return once all of it is written (waits for flow-control credit)."""
        if self.reset_code is not None:
            raise StreamClosedError(f"stream {self.stream_id} was reset ({self.reset_code})")
        if self.local_ended:
            raise StreamClosedError(f"stream {self.stream_id}: send after close")
        if not data:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._out.append((memoryview(data), fut))
        self.session._enqueue(self, len(data))
        await fut

    async def recv(self) -> bytes:
        """The next chunk of bytes the peer sent; ``b""`` once the peer ended its side."""
        while not self._inbox:
            if self.reset_code is not None:
                raise StreamClosedError(f"stream {self.stream_id} was reset ({self.reset_code})")
            if self.remote_ended:
                return b""
            self._readable.clear()
            await self._readable.wait()
        data = self._inbox.popleft()
        self.session._consumed(self, len(data))
        return data

    async def read_all(self) -> bytes:
        """Everything until the peer ends its side."""
        parts = []
        while chunk := await self.recv():
            parts.append(chunk)
        return b"".join(parts)

    def close(self) -> None:
        """Half-close: send ``end`` after any queued data. The stream is gone once the peer ends too."""
        if self.local_ended or self.reset_code is not None:
            return
        self.local_ended = True
        if not self._out:
            self.session._send_end(self)

    def reset(self, code: str = "cancel", message: str = "") -> None:
        """Abort both directions at once; queued data is dropped."""
        if self.closed:
            return
        self.session._send(StreamReset(code=code, message=message), self.stream_id)
        self.session._on_reset(self, code)

    # --- session side --------------------------------------------------------------
    def _take(self, n: int) -> bytes:
        """Pop ``n`` queued bytes (the scheduler's chunk); resolves the sends it completes."""
        parts = []
        while n:
            view, fut = self._out[0]
            piece = view[self._out_offset:self._out_offset + n]
            parts.append(piece)
            n -= len(piece)
            self._out_offset += len(piece)
            if self._out_offset == len(view):
                self._out.popleft()
                self._out_offset = 0
                if not fut.done():
                    fut.set_result(None)
        return b"".join(parts)

    def _fail(self, exc: BaseException) -> None:
        for _, fut in self._out:
            if not fut.done():
                fut.set_exception(exc)
        self._out.clear()
        self._readable.set()


class MuxSession:
    """Streams over one connection (see the module docstring)."""

    def __init__(self, conn: Connection, config: MultiplexConfig | None = None, *,
                 on_stream: Callable[[Stream], None] | None = None) -> None:
        self.conn = conn
        self.config = config or MultiplexConfig()
        wire = dataclasses.replace(self.config, initial_stream_window=WIRE_INITIAL_WINDOW,
                                   initial_connection_window=WIRE_INITIAL_WINDOW)
        self.send_core = MultiplexedConnection(conn.conn_id, conn.peer_node_id or "", wire,
                                               first_stream_id=1 if conn.outbound else 2)
        self.recv_core = ReceiveWindows(self.config)
        self.streams: dict[int, Stream] = {}
        self.exchanges: set[int] = set()  # stream ids of in-flight request/response exchanges
        self.on_stream = on_stream
        self.incoming: asyncio.Queue[Stream] = asyncio.Queue()
        self.error: Exception | None = None
        self.opened_total = 0
        self.peak = 0
        self._last_peer_id = 0
        self._slot_waiters: deque[asyncio.Future[None]] = deque()

    # ------------------------------------------------------------------ opening
    async def _acquire_slot(self, timeout: float | None) -> None:
        """Return once a stream of ours may open; the caller must open it before awaiting anything.

        Why futures and a deadline rather than ``wait_for(coroutine)``: the check and the
        open must happen in the same loop turn, or a freed slot goes to another caller.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            self._check_alive()
            if self.send_core.local_streams < self.config.max_streams:
                return
            fut: asyncio.Future[None] = loop.create_future()
            self._slot_waiters.append(fut)
            try:
                remaining = None if deadline is None else max(0.0, deadline - loop.time())
                await asyncio.wait_for(fut, remaining)
            except BaseException:
                if fut.done() and not fut.cancelled():
                    self._release_slot()  # we were woken but leave: pass the wake-up on
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._slot_waiters.remove(fut)

    def _opened(self, stream_id: int) -> None:
        self.opened_total += 1
        self.peak = max(self.peak, self.send_core.active_streams)

    async def open_stream(self, timeout: float | None = None) -> Stream:
        """Open a stream; waits (up to ``timeout``) while ``max_streams`` of ours are open."""
        await self._acquire_slot(timeout)
        sid = self.send_core.open_stream()
        stream = self.streams[sid] = Stream(self, sid)
        self._send(StreamOpen(), sid)
        self._grant(self.recv_core.open(sid))
        self._opened(sid)
        return stream

    async def open_exchange(self, timeout: float | None = None) -> int:
        """A stream id for one request/response exchange (the request frame carries it)."""
        await self._acquire_slot(timeout)
        sid = self.send_core.open_stream()
        self.exchanges.add(sid)
        self._opened(sid)
        return sid

    def close_exchange(self, stream_id: int) -> None:
        if stream_id in self.exchanges:
            self.exchanges.discard(stream_id)
            self.send_core.close_stream(stream_id)
            self._release_slot()

    async def accept(self) -> Stream:
        """The next stream the peer opened (when no ``on_stream`` callback takes them)."""
        return await self.incoming.get()

    def _release_slot(self) -> None:
        while self._slot_waiters:
            fut = self._slot_waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _check_alive(self) -> None:
        if self.error is not None or self.conn.is_closed:
            raise ConnectionError(f"{self.conn.conn_id} is closed ({self.conn.close_reason})")

    # ------------------------------------------------------------------ sending
    def _send(self, message: Message, stream_id: int) -> None:
        if not self.conn.is_closed:
            self.conn.send_message(message, 0, 0, stream_id)

    def _grant(self, grants: list[Grant]) -> None:
        for sid, inc in grants:
            self._send(StreamWindowUpdate(increment=inc), sid)

    def _enqueue(self, stream: Stream, n: int) -> None:
        self._check_alive()
        self.send_core.enqueue(stream.stream_id, n)
        self._pump()

    def _pump(self) -> None:
        """Write every chunk the windows allow, in the scheduler's round-robin order."""
        while self.error is None and (chunk := self.send_core.next_chunk()) is not None:
            sid, n = chunk
            stream = self.streams[sid]
            data = stream._take(n)
            stream.bytes_sent += n
            end = stream.local_ended and not stream._out
            self._send(StreamData(data=data, end=end), sid)
            if end:
                self._ended_locally(stream)

    def _send_end(self, stream: Stream) -> None:
        self._send(StreamData(end=True), stream.stream_id)
        self._ended_locally(stream)

    def _ended_locally(self, stream: Stream) -> None:
        stream._end_sent = True
        self._maybe_forget(stream)

    def _consumed(self, stream: Stream, n: int) -> None:
        if self.recv_core.is_open(stream.stream_id):
            self._grant(self.recv_core.consume(stream.stream_id, n))

    # ------------------------------------------------------------------ receiving
    def frame_received(self, stream_id: int | None, message: Message) -> None:
        """Route one inbound stream frame; a protocol violation aborts the connection."""
        if self.error is not None:
            return
        try:
            self._dispatch(stream_id, message)
        except (MultiplexError, ProtocolError) as exc:
            self._abort(exc)

    def _dispatch(self, stream_id: int | None, message: Message) -> None:
        if stream_id is None:
            raise RemoteProtocolError(f"{type(message).__name__} without a stream id", code="stream_protocol_error")
        if isinstance(message, StreamWindowUpdate):
            if stream_id == 0 or stream_id in self.streams:
                self.send_core.grant(stream_id, message.increment)
                self._pump()
            return  # an update for a stream that just closed is harmless
        if stream_id == 0:
            raise RemoteProtocolError("stream frame on stream 0", code="stream_protocol_error")
        if isinstance(message, StreamOpen):
            self._peer_opened(stream_id)
        elif isinstance(message, StreamData):
            self._grant(self.recv_core.receive(stream_id, len(message.data)))
            stream = self.streams.get(stream_id)
            if stream is None:
                self._check_known(stream_id)
                return  # data racing a reset: credit already returned
            if stream.remote_ended:
                raise RemoteProtocolError(f"data after end on stream {stream_id}", code="stream_protocol_error")
            if message.data:
                stream._inbox.append(message.data)
                stream.bytes_received += len(message.data)
            if message.end:
                stream.remote_ended = True
                self._maybe_forget(stream)
            stream._readable.set()
        elif isinstance(message, StreamReset):
            stream = self.streams.get(stream_id)
            if stream is None:
                self._check_known(stream_id)
                return
            self._on_reset(stream, message.code)

    def _check_known(self, stream_id: int) -> None:
        """A frame for a stream that is not open must name one that existed."""
        if self.send_core.is_local(stream_id):
            known = stream_id < self.send_core._next_id
        else:
            known = stream_id <= self._last_peer_id
        if not known:
            raise RemoteProtocolError(f"frame for stream {stream_id}, which was never opened",
                                      code="stream_protocol_error")

    def _peer_opened(self, stream_id: int) -> None:
        if self.send_core.is_local(stream_id) or stream_id <= self._last_peer_id:
            raise RemoteProtocolError(f"peer may not open stream {stream_id}", code="stream_protocol_error")
        self._last_peer_id = stream_id
        peer_open = sum(1 for s in self.streams if not self.send_core.is_local(s))
        if peer_open >= self.config.max_streams:
            self._send(StreamReset(code="refused_stream", message=f"{self.config.max_streams} streams open"),
                       stream_id)
            return
        self.send_core.accept_stream(stream_id)
        stream = self.streams[stream_id] = Stream(self, stream_id)
        self._grant(self.recv_core.open(stream_id))
        self._opened(stream_id)
        if self.on_stream is not None:
            self.on_stream(stream)
        else:
            self.incoming.put_nowait(stream)

    # ------------------------------------------------------------------ closing
    def _on_reset(self, stream: Stream, code: str) -> None:
        stream.reset_code = code
        stream._fail(StreamClosedError(f"stream {stream.stream_id} was reset ({code})"))
        self._forget(stream)

    def _maybe_forget(self, stream: Stream) -> None:
        if stream.closed and stream.stream_id in self.streams:
            self._forget(stream)

    def _forget(self, stream: Stream) -> None:
        sid = stream.stream_id
        if self.streams.pop(sid, None) is None:
            return
        self.send_core.close_stream(sid)
        if self.recv_core.is_open(sid):
            self._grant(self.recv_core.close(sid))
        if self.send_core.is_local(sid):
            self._release_slot()

    def _abort(self, exc: MultiplexError | ProtocolError) -> None:
        code = "flow_control_error" if isinstance(exc, FlowControlError) else getattr(exc, "code", "stream_error")
        if isinstance(exc, StreamLimitError):
            code = "stream_protocol_error"
        log.warning("closing %s from %s: %s (%s)", self.conn.conn_id, self.conn.peer_address, exc, code)
        self.error = exc
        if self.conn.error is None:
            self.conn.error = exc if isinstance(exc, ProtocolError) else RemoteProtocolError(str(exc), code=code)
        self.conn.abort(f"protocol error: {code}")
        self.connection_lost()

    def connection_lost(self) -> None:
        """The connection is gone: fail every stream and waiter."""
        if self.error is None:
            self.error = ConnectionError(f"{self.conn.conn_id} closed ({self.conn.close_reason})")
        exc = ConnectionError(f"{self.conn.conn_id} closed ({self.conn.close_reason})")
        for stream in list(self.streams.values()):
            if stream.reset_code is None:
                stream.reset_code = "connection_closed"
            stream._fail(exc)
        for fut in self._slot_waiters:
            if not fut.done():
                fut.set_result(None)  # the waiter re-checks and raises ConnectionError

    # ------------------------------------------------------------------ introspection
    def describe(self) -> dict[str, Any]:
        """Live stream ids, windows and byte counts (the multiplexing endpoint's wire fields)."""
        streams = []
        for sid in sorted(self.streams):
            s = self.streams[sid]
            recv_open = self.recv_core.is_open(sid)
            streams.append({
                "stream_id": sid,
                "initiator": "local" if self.send_core.is_local(sid) else "remote",
                "send_window": self.send_core.stream_window(sid),
                "recv_window": self.recv_core.window(sid) if recv_open else 0,
                "bytes_sent": s.bytes_sent,
                "bytes_received": s.bytes_received,
                "queued_bytes": self.send_core.pending(sid),
                "local_ended": s.local_ended,
                "remote_ended": s.remote_ended,
            })
        return {
            "stream_ids": sorted(self.streams),
            "exchange_stream_ids": sorted(self.exchanges),
            "send_window": self.send_core.connection_window,
            "recv_window": self.recv_core.connection_window,
            "stream_bytes_sent": self.send_core.sent_total,
            "stream_bytes_received": self.recv_core.received_total,
            "streams": streams,
        }
