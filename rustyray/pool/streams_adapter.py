"""Streams on the node's connections (NETWORKING-045): the asyncio adapter.

Every request/response exchange this node starts (``request_on``, the node's request channel)
opens one logical stream of the connection it travels on and closes it when the reply (or the
timeout) arrives. When ``max_streams`` streams this node opened are in flight on a connection,
the next exchange waits for a free stream (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS semantics)
within the request's own timeout. Only exchanges this node initiates are counted (send side).

When both ends offer ``mux-streams`` (``on_handshake``) the connection gets a ``MuxSession``
(``pool.mux_adapter``): the exchange's stream id then travels in the request frame
(``Flags.STREAM``; the reply echoes it), and flow-controlled byte streams (``open_stream``;
inbound ones via ``stream_handler`` or ``accept_stream``) share the same limit. Without it the
in-process accounting of ``ExchangeSlots`` applies, its waiters' futures held in ``Waiters``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from rustyray.pool.errors import MultiplexError
from rustyray.pool.exchange_slots import ExchangeSlots
from rustyray.pool.multiplexing import MultiplexConfig
from rustyray.pool.mux_adapter import MUX_CAPABILITY, MuxSession, Stream
from rustyray.pool.stream_messages import StreamData, StreamOpen, StreamReset, StreamWindowUpdate
from rustyray.pool.waiters_adapter import Waiters
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext
    from rustyray.transport.connection import Connection

log = logging.getLogger(__name__)


class PoolStreams:
    """Wire-stream sessions and exchange accounting of one node's connections (see the module docstring)."""

    def __init__(self, node: Host, config: MultiplexConfig) -> None:
        self.node = node
        self.config = config
        self.sessions: dict[str, MuxSession] = {}
        """Conn id -> wire streams (the peer offered mux-streams)."""
        self.slots: dict[str, ExchangeSlots] = {}
        """Conn id -> exchange accounting (connections without a session)."""
        self._slot_conns: dict[str, Connection] = {}
        self._waiters: Waiters[tuple[str, int], int] = Waiters()
        self.incoming: asyncio.Queue[Stream] = asyncio.Queue()
        self.stream_handler: Callable[[Stream], Awaitable[None] | None] | None = None
        """Called with every stream a peer opens; when None they queue for ``accept_stream``."""
        for msg_type in (StreamOpen, StreamData, StreamWindowUpdate, StreamReset):
            node.on(msg_type, self._on_stream_frame)

    # ------------------------------------------------------------------ request/response exchanges
    async def request_on(self, conn: Connection, message: Message, *, timeout: float | None = None,
                         priority: int = 1, stream_id: int | None = None) -> Message:
        """One exchange on ``conn`` as one stream of it (waits while ``max_streams`` of ours are open)."""
        timeout = timeout or self.node.config.transport.request_timeout_s
        start = time.monotonic()
        session = self.sessions.get(conn.conn_id)
        if session is not None and stream_id is None:
            sid = await session.open_exchange(timeout)
            wire_id: dict[str, int] = {"stream_id": sid}

            def close() -> None:
                session.close_exchange(sid)
        else:
            slots = self._slots_for(conn)
            sid = await self._open_slot(conn.conn_id, slots, start, timeout)
            wire_id = {}

            def close() -> None:
                self._close_slot(conn.conn_id, slots, sid)
        try:
            remaining = max(0.001, timeout - (time.monotonic() - start))
            return await self.node.direct_request_on(conn, message, timeout=remaining, priority=priority, **wire_id)
        finally:
            close()

    def _slots_for(self, conn: Connection) -> ExchangeSlots:
        slots = self.slots.get(conn.conn_id)
        if slots is None:
            slots = self.slots[conn.conn_id] = ExchangeSlots(conn.conn_id, conn.peer_node_id or "", self.config)
            self._slot_conns[conn.conn_id] = conn
        return slots

    async def _open_slot(self, conn_id: str, slots: ExchangeSlots, now: float, timeout: float) -> int:
        outcome = slots.open(now, timeout)
        if outcome.stream_id is not None:
            return outcome.stream_id

        def abandon(granted: int | None) -> None:
            if not slots.cancel(outcome.waiter_id) and granted is not None:
                self._close_slot(conn_id, slots, granted)

        return await self._waiters.wait((conn_id, outcome.waiter_id), outcome.deadline - now, abandon)

    def _close_slot(self, conn_id: str, slots: ExchangeSlots, stream_id: int) -> None:
        grant = slots.close(stream_id)
        while grant is not None and not self._waiters.resolve((conn_id, grant.waiter_id), grant.stream_id):
            grant = slots.close(grant.stream_id)  # that waiter left: the stream goes to the next one

    def in_flight(self, conn_id: str) -> int:
        """Request/response exchanges this node has in flight on a connection."""
        session = self.sessions.get(conn_id)
        slots = self.slots.get(conn_id)
        return (len(session.exchanges) if session else 0) + (slots.active if slots else 0)

    def opened_total(self, conn_id: str) -> int:
        """Exchanges this node has started on a connection so far (the pool reads a change as use)."""
        session = self.sessions.get(conn_id)
        slots = self.slots.get(conn_id)
        return (session.opened_total if session else 0) + (slots.opened_total if slots else 0)

    def prune(self) -> None:
        """Forget the accounting of closed connections with nothing in flight."""
        for cid in [c for c, conn in self._slot_conns.items() if conn.is_closed and not self.slots[c].active]:
            del self.slots[cid], self._slot_conns[cid]

    # ------------------------------------------------------------------ wire streams (both ends offer mux-streams)
    def on_handshake(self, conn: Connection) -> None:
        if MUX_CAPABILITY not in conn.peer_capabilities or MUX_CAPABILITY not in self.node.capabilities:
            return
        session = MuxSession(conn, self.config, on_stream=self._stream_opened_by_peer)
        self.sessions[conn.conn_id] = session
        self.node.spawn(self._watch_session(session), name=f"mux watch {conn.conn_id}")

    async def _watch_session(self, session: MuxSession) -> None:
        try:
            await session.conn.wait_closed()
        finally:
            session.connection_lost()
            self.sessions.pop(session.conn.conn_id, None)

    def _on_stream_frame(self, ctx: RequestContext, msg: Message) -> None:
        session = self.sessions.get(ctx.conn.conn_id)
        if session is None:
            log.info("%s: stream frame on %s, which did not negotiate %s; ignored", self.node.node_id,
                     ctx.conn.conn_id, MUX_CAPABILITY)
            return
        session.frame_received(ctx.frame.stream_id, msg)

    def _stream_opened_by_peer(self, stream: Stream) -> None:
        handler = self.stream_handler
        if handler is None:
            self.incoming.put_nowait(stream)
            return
        result = handler(stream)
        if result is not None:
            self.node.spawn(result, name=f"stream {stream.stream_id} on {stream.session.conn.conn_id}")

    async def open_stream(self, peer_id: str, timeout: float | None = None) -> Stream:
        """Open a flow-controlled byte stream to ``peer_id`` on the node's primary connection.

        Waits while ``max_streams`` streams of ours are open on it (``TimeoutError`` after
        ``timeout``); raises ``MultiplexError`` when the peer did not negotiate ``mux-streams``.
        """
        conn = await self.node.connection_to(peer_id, timeout=timeout)
        session = self.sessions.get(conn.conn_id)
        if session is None:
            raise MultiplexError(f"{peer_id} did not negotiate {MUX_CAPABILITY} on {conn.conn_id}")
        return await session.open_stream(timeout)

    async def accept_stream(self) -> Stream:
        """The next stream any peer opened to this node (when no ``stream_handler`` is set)."""
        return await self.incoming.get()
