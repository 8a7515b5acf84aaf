"""Receive-side flow control for multiplexed streams (NETWORKING-045), sans-I/O.

Theory of operation, after HTTP/2 (RFC 9113 sections 5.2, 6.9) and the way its
implementations return credit (e.g. nghttp2, h2): the receiver keeps, per stream and for the
connection, how many bytes the peer may still send (the *receive window*). Every DATA byte
spends credit in both; DATA beyond either window is a ``FlowControlError``, and the adapter
closes the connection. Credit comes back only when the application *consumes* data: the
consumed bytes accumulate per stream and for the connection, and once they reach
``update_ratio`` (default one half) of the target window they are returned in one
WINDOW_UPDATE. So a reader that stops reading stops its sender after at most one window,
and the receiver never buffers more than ``target window`` bytes per stream.

Windows on the wire start at ``WIRE_INITIAL_WINDOW`` (65,535, the HTTP/2 default) for every
stream and the connection, so both sides agree without a settings exchange. A receiver
configured with a larger target window grants the difference as soon as the stream opens
(and, for the connection, with the first stream); smaller targets are raised to it.

Data for a stream that is no longer open (a reset raced with data in flight) still spends
connection credit, which is returned at once (RFC 9113 section 6.9). The core moves numbers
only; the adapter (``pool.mux_adapter``) writes the grants as ``StreamWindowUpdate`` frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from rustyray.pool.errors import FlowControlError, UnknownStreamError
from rustyray.pool.multiplexing import MAX_WINDOW, MultiplexConfig

WIRE_INITIAL_WINDOW = 65_535
"""Credit every stream and the connection start with on the wire, in bytes (RFC 9113 6.9.2)."""

Grant = tuple[int, int]
"""A WINDOW_UPDATE to send: (stream id, 0 for the connection; increment in bytes)."""


@dataclass
class _RecvStream:
    window: int  # bytes the peer may still send on this stream
    buffered: int = 0  # received, not yet consumed
    unacked: int = 0  # consumed, not yet granted back
    received_total: int = 0


class ReceiveWindows:
    """Per-stream and connection receive windows of one connection."""

    def __init__(self, config: MultiplexConfig | None = None, *, update_ratio: float = 0.5) -> None:
        self.config = config or MultiplexConfig()
        self.config.validate()
        if not 0 < update_ratio <= 1:
            raise ValueError("update_ratio: must be in (0, 1]")
        self.stream_target = max(WIRE_INITIAL_WINDOW, self.config.initial_stream_window)
        self.connection_target = max(WIRE_INITIAL_WINDOW, self.config.initial_connection_window)
        self.update_ratio = update_ratio
        self.connection_window = WIRE_INITIAL_WINDOW
        self._conn_unacked = 0
        self._conn_topped_up = False
        self._streams: dict[int, _RecvStream] = {}
        self.received_total = 0
        self.granted_total = 0

    # ------------------------------------------------------------------ streams
    def open(self, stream_id: int) -> list[Grant]:
        """Start receiving on a stream; returns the grants that lift its windows to their targets."""
        assert stream_id not in self._streams
        self._streams[stream_id] = _RecvStream(window=WIRE_INITIAL_WINDOW)
        grants: list[Grant] = []
        if not self._conn_topped_up:
            self._conn_topped_up = True
            if self.connection_target > WIRE_INITIAL_WINDOW:
                grants.append(self._grant_connection(self.connection_target - WIRE_INITIAL_WINDOW))
        if self.stream_target > WIRE_INITIAL_WINDOW:
            inc = self.stream_target - WIRE_INITIAL_WINDOW
            self._streams[stream_id].window += inc
            self.granted_total += inc
            grants.append((stream_id, inc))
        return grants

    def is_open(self, stream_id: int) -> bool:
        return stream_id in self._streams

    @property
    def stream_ids(self) -> list[int]:
        return sorted(self._streams)

    def window(self, stream_id: int) -> int:
        return self._get(stream_id).window

    def buffered(self, stream_id: int) -> int:
        return self._get(stream_id).buffered

    def received(self, stream_id: int) -> int:
        return self._get(stream_id).received_total

    def close(self, stream_id: int) -> list[Grant]:
        """Stop receiving on a stream; its unread bytes are discarded and their connection credit returned."""
        stream = self._get(stream_id)
        del self._streams[stream_id]
        return self._return_connection(stream.buffered)

    # ------------------------------------------------------------------ data
    def receive(self, stream_id: int, n: int) -> list[Grant]:
        """``n`` DATA bytes arrived on ``stream_id``; raises FlowControlError if a window is overrun.

        Returns grants only for data on a stream that is no longer open (connection credit
        comes straight back); data on an open stream waits for ``consume``.
        """
        assert n >= 0
        if n > self.connection_window:
            raise FlowControlError(f"peer sent {n} bytes with {self.connection_window} bytes of connection credit")
        stream = self._streams.get(stream_id)
        if stream is not None and n > stream.window:
            raise FlowControlError(f"peer sent {n} bytes on stream {stream_id} with {stream.window} bytes of credit")
        self.connection_window -= n
        self.received_total += n
        if stream is None:
            return self._return_connection(n)
        stream.window -= n
        stream.buffered += n
        stream.received_total += n
        return []

    def consume(self, stream_id: int, n: int) -> list[Grant]:
        """The application took ``n`` buffered bytes of ``stream_id``: credit them back when due."""
        stream = self._get(stream_id)
        if not 0 <= n <= stream.buffered:
            raise ValueError(f"n: {n} is not within the {stream.buffered} buffered bytes of stream {stream_id}")
        stream.buffered -= n
        stream.unacked += n
        grants: list[Grant] = []
        if stream.unacked >= self.stream_target * self.update_ratio:
            inc, stream.unacked = stream.unacked, 0
            stream.window += inc
            self.granted_total += inc
            grants.append((stream_id, inc))
        return grants + self._return_connection(n)

    # ------------------------------------------------------------------ internals
    def _get(self, stream_id: int) -> _RecvStream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise UnknownStreamError(f"stream {stream_id} is not open for receiving")
        return stream

    def _return_connection(self, n: int) -> list[Grant]:
        self._conn_unacked += n
        if self._conn_unacked and self._conn_unacked >= self.connection_target * self.update_ratio:
            inc, self._conn_unacked = self._conn_unacked, 0
            return [self._grant_connection(inc)]
        return []

    def _grant_connection(self, inc: int) -> Grant:
        assert inc > 0 and self.connection_window + inc <= MAX_WINDOW
        self.connection_window += inc
        self.granted_total += inc
        return (0, inc)
