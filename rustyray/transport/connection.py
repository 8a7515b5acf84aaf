"""One connection interface over TCP and QUIC.

A ``Connection`` carries frames both ways. It owns a ``FrameDecoder``, counts bytes
and frames, and hands every decoded frame to its ``handler``. A malformed frame
(``RemoteProtocolError``) closes only this connection, logs the typed reason and
reports it through ``handler.connection_lost(conn, exc)``; nothing propagates into
the node.

Why ``asyncio.Protocol`` rather than streams: the per-frame path (decode, dispatch,
encode, write) is the hot path for throughput, and protocol callbacks avoid a
reader task, a buffer copy and an await per frame.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable
from typing import Protocol

from rustyray.protocol.compression import Compression
from rustyray.protocol.errors import ProtocolError
from rustyray.protocol.frame import Frame, FrameDecoder, encode_frame
from rustyray.protocol.messages import Message

log = logging.getLogger(__name__)
_conn_ids = itertools.count(1)


class ConnectionHandler(Protocol):
    """What a connection reports to its owner (the node)."""

    def frame_received(self, conn: Connection, frame: Frame) -> None: ...

    def connection_lost(self, conn: Connection, exc: BaseException | None) -> None: ...


class Connection:
    """Transport-independent half of a framed connection."""

    protocol_name = "TCP"

    def __init__(self, *, outbound: bool) -> None:
        self.conn_id = f"conn-{next(_conn_ids)}"
        self.outbound = outbound
        self.peer_node_id: str | None = None
        self.peer_address: str = ""
        self.local_address: str = ""
        self.compression = Compression.NONE
        self.tls_version: str | None = None
        self.cipher: str | None = None
        self.created_at = time.time()
        self.last_used = time.monotonic()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.frames_sent = 0
        self.frames_received = 0
        self.handler: ConnectionHandler | None = None
        self.close_reason: str | None = None
        self.error: ProtocolError | None = None
        self._decoder = FrameDecoder()
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        self._wbuf: list[bytes] = []
        self._flush_scheduled = False
        self._receiving = False  # inside _data: writes queue until the received burst is handled
        self._seal: Callable[[bytes, bytes], bytes] | None = None
        self.peer_capabilities: frozenset[str] = frozenset()
        self._pending: list[Frame] = []
        self._handshake_waiter: asyncio.Future[Frame] | None = None

    # --- receiving -----------------------------------------------------------------
    def _data(self, data: bytes) -> None:
        """Decode what arrived, hand every frame on, then write what the handlers queued.

        Why flush here instead of on the next loop turn: replies to a burst go out in one
        write right after it (a round trip does not wait a loop iteration per hop), and
        over QUIC they go into the packet aioquic sends when its receive handling ends.
        """
        self.bytes_received += len(data)
        self.last_used = time.monotonic()
        try:
            frames, error = self._decoder.receive(data)
        except ProtocolError as exc:  # already poisoned: the connection is closing
            frames, error = [], exc
        if frames:  # good frames before a bad one still count
            self.frames_received += len(frames)
            waiter, handler = self._handshake_waiter, self.handler
            self._receiving = True
            try:
                if handler is not None and (waiter is None or waiter.done()):
                    deliver = handler.frame_received
                    for frame in frames:
                        deliver(self, frame)
                else:
                    for frame in frames:
                        self._deliver(frame)
            except ProtocolError as exc:  # a handler's own protocol error closes this connection too
                error = exc
            except BaseException:  # a handler bug: still write the replies queued so far
                self._receiving = False
                if self._wbuf:
                    self.flush()
                raise
            self._receiving = False
        if error is not None:
            self.error = error
            log.warning("closing %s from %s: %s (%s)", self.conn_id, self.peer_address, error, error.code)
            self.abort(f"protocol error: {error.code}")
        elif self._wbuf:
            self.flush()

    def _deliver(self, frame: Frame) -> None:
        if self._handshake_waiter is not None and not self._handshake_waiter.done():
            self._handshake_waiter.set_result(frame)
        elif self.handler is not None:
            self.handler.frame_received(self, frame)
        else:
            self._pending.append(frame)

    async def first_frame(self, timeout: float) -> Frame:
        """Wait for the first frame (the handshake) before any handler is attached."""
        if self._pending:
            return self._pending.pop(0)
        self._handshake_waiter = asyncio.get_running_loop().create_future()
        waiter = self._handshake_waiter
        closed = self._closed
        done, _ = await asyncio.wait({waiter, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter in done:
            return waiter.result()
        waiter.cancel()
        if self.error is not None:
            raise self.error
        raise ConnectionError(f"connection closed before the handshake ({self.close_reason or 'timeout'})")

    def attach(self, handler: ConnectionHandler) -> None:
        """Attach the owner; frames that arrived before are delivered now, in order."""
        self.handler = handler
        pending, self._pending = self._pending, []
        for frame in pending:
            handler.frame_received(self, frame)
        if self._closed.done():
            handler.connection_lost(self, self.error)

    # --- sending -------------------------------------------------------------------
    def enable_payload_encryption(self, seal: Callable[[bytes, bytes], bytes],
                                  unseal: Callable[[bytes, bytes], bytes]) -> None:
        """Seal every later frame's payload (frame header as associated data) and accept sealed frames.

        Both sides switch right after the hello exchange, which itself stays in the clear.
        """
        self._seal = seal
        self._decoder._unseal = unseal

    @property
    def payload_encrypted(self) -> bool:
        return self._seal is not None

    def send_message(self, message: Message, msg_id: int, flags: int = 0, stream_id: int | None = None) -> int:
        """Encode and write one frame (on a multiplexed stream if ``stream_id``); returns its size.

        Raises ConnectionError when closed.
        """
        data = encode_frame(message, msg_id, flags=flags, compression=self.compression, seal=self._seal,
                            stream_id=stream_id)
        self.frames_sent += 1
        if self._flush_scheduled and not self._closed.done():  # ``write``'s queueing, inlined: the per-frame path
            self.bytes_sent += len(data)
            self._wbuf.append(data)
        else:
            self.write(data)
        return len(data)

    def write(self, data: bytes) -> None:
        """Write bytes: the first write of an event-loop iteration goes out now, later ones together.

        Why: a transport write per frame is a syscall (over QUIC a packet) per frame, so
        frames written after the first in one iteration are queued and handed over in one
        write on the next turn, which keeps pipelined senders near the bare-socket floor.
        The first goes straight out, so a lone request or reply does not wait a loop
        turn. Replies written while a received burst is handled are queued and written
        once the burst is done (``_data``).
        """
        if self._closed.done():
            raise ConnectionError(f"{self.conn_id} is closed ({self.close_reason})")
        self.bytes_sent += len(data)
        if self._flush_scheduled or self._receiving:
            self._wbuf.append(data)
            return
        self._flush_scheduled = True  # later writes of this iteration queue; the flush resets it
        self._loop.call_soon(self.flush)
        self.last_used = time.monotonic()
        try:
            self._write(data)
        except Exception as exc:  # the transport is going away under us: report it as the closed connection
            raise ConnectionError(f"{self.conn_id}: write failed ({exc})") from exc

    def flush(self) -> None:
        """Hand the queued bytes to the transport now."""
        self._flush_scheduled = False
        if not self._wbuf or self._closed.done():
            self._wbuf.clear()
            return
        data = self._wbuf[0] if len(self._wbuf) == 1 else b"".join(self._wbuf)
        self._wbuf.clear()
        self.last_used = time.monotonic()
        self._write(data)

    async def drain(self) -> None:
        """Flush, then wait while the transport's write buffer is above its high-water mark."""
        if self._wbuf:
            self.flush()

    # --- lifecycle -----------------------------------------------------------------
    @property
    def is_closed(self) -> bool:
        return self._closed.done()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def _mark_closed(self, exc: BaseException | None) -> None:
        if self._closed.done():
            return
        self._closed.set_result(None)
        if self.close_reason is None:
            self.close_reason = str(exc) if exc else "closed"
        if self.handler is not None:
            self.handler.connection_lost(self, self.error or exc)

    def close(self, reason: str = "closed") -> None:
        """Graceful close: pending writes are flushed."""
        if self.close_reason is None:
            self.close_reason = reason
        if self._wbuf and not self._closed.done():
            self.flush()
        self._close(abort=False)

    def abort(self, reason: str) -> None:
        """Immediate close, dropping anything unsent (used on protocol errors)."""
        if self.close_reason is None:
            self.close_reason = reason
        self._wbuf.clear()
        self._close(abort=True)

    def describe(self) -> dict[str, object]:
        return {
            "connection_id": self.conn_id,
            "protocol": self.protocol_name,
            "node": self.peer_node_id,
            "peer_address": self.peer_address,
            "direction": "outbound" if self.outbound else "inbound",
            "state": "Closed" if self.is_closed else "Connected",
            "encrypted": self.tls_version is not None,
            "payload_encrypted": self._seal is not None,
            "tls_version": self.tls_version,
            "compression": self.compression.api_name,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "frames_sent": self.frames_sent,
            "frames_received": self.frames_received,
            "idle_ms": round((time.monotonic() - self.last_used) * 1000, 1),
        }

    # --- transport specifics -------------------------------------------------------
    def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _close(self, *, abort: bool) -> None:
        raise NotImplementedError


OnConnection = Callable[[Connection], None]
