"""Many logical streams over one connection with credit-based flow control (NETWORKING-045).

Theory of operation, after HTTP/2 (RFC 9113 sections 5.1.2, 6.9): the sender holds a
credit window per stream and one for the whole connection. Sending ``n`` bytes on a stream
needs ``n`` credits in both and spends both; the receiver returns credit with WINDOW_UPDATE
(``grant``), per stream or for the connection. A window may never exceed 2**31 - 1 and an
increment of 0 is an error. At most ``max_streams`` streams are open at once
(SETTINGS_MAX_CONCURRENT_STREAMS) counts the streams this side opened. Stream ids are
increasing and odd for the dialer, even for the listener (``first_stream_id`` 1 or 2), as
for an HTTP/2 client and server; streams the peer opened join with ``accept_stream`` so
this side can send on them too. The receive side is ``flow_control.ReceiveWindows``.

Scheduling: streams with queued data sit in a ring; ``next_chunk()`` serves the ring in
round-robin order, one chunk of at most ``max_frame_size`` bytes per turn, skipping (but
keeping the place of) streams whose own window is empty. So while a stream has data and
credit it is served at least once every ``k`` chunks, where ``k`` is the number of streams
with queued data: one busy stream cannot starve the rest. The core moves numbers only; the
adapter writes the frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from rustyray.pool.errors import FlowControlError, StreamLimitError, UnknownStreamError, require
from rustyray.records import record

MAX_WINDOW = 2**31 - 1


@dataclass(frozen=True)
class MultiplexConfig:
    """Stream limits and initial credit (bytes)."""

    max_streams: int = 100
    """Concurrently open streams per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS)."""
    initial_stream_window: int = 65_535
    """Credit (bytes) each new stream starts with (HTTP/2 default 65,535)."""
    initial_connection_window: int = 65_535
    """Credit (bytes) the connection as a whole starts with."""
    max_frame_size: int = 16_384
    """Largest chunk the scheduler hands out in one turn (HTTP/2 default 16,384)."""

    def validate(self) -> None:
        require(self.max_streams >= 1, "max_streams", "must be >= 1")
        require(0 <= self.initial_stream_window <= MAX_WINDOW, "initial_stream_window", "must be in 0..2**31-1")
        require(0 <= self.initial_connection_window <= MAX_WINDOW, "initial_connection_window",
                "must be in 0..2**31-1")
        require(self.max_frame_size >= 1, "max_frame_size", "must be >= 1")


@dataclass(frozen=True)
class MultiplexStats:
    """The seed's multiplexing row."""

    connection_id: str
    node: str
    active_streams: int
    max_streams: int

    def to_dict(self) -> dict[str, Any]:
        return record(self)


@dataclass
class _Stream:
    window: int
    pending: int = 0


class MultiplexedConnection:
    """Send-side stream and credit accounting for one connection."""

    def __init__(self, connection_id: str, node: str, config: MultiplexConfig | None = None, *,
                 first_stream_id: int = 1) -> None:
        assert first_stream_id in (1, 2)
        self.connection_id = connection_id
        self.node = node
        self.config = config or MultiplexConfig()
        self.config.validate()
        self.connection_window = self.config.initial_connection_window
        self._streams: dict[int, _Stream] = {}
        self._ready: deque[int] = deque()  # streams with pending data, in service order
        self._next_id = first_stream_id
        self._local = 0  # open streams this side opened (the ones max_streams limits)
        self.sent_total = 0  # bytes handed out by next_chunk() or consume()

    def is_local(self, stream_id: int) -> bool:
        """Was this id (open or not) allocated by this side? Ids alternate parity by side."""
        return stream_id % 2 == self._next_id % 2

    def _stream(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise UnknownStreamError(f"stream {stream_id} is not open on {self.connection_id}")
        return stream

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    @property
    def local_streams(self) -> int:
        """Open streams this side opened (what ``max_streams`` caps)."""
        return self._local

    @property
    def stream_ids(self) -> list[int]:
        return sorted(self._streams)

    def open_stream(self) -> int:
        if self._local >= self.config.max_streams:
            raise StreamLimitError(f"{self.connection_id}: {self.config.max_streams} streams already open")
        stream_id = self._next_id
        self._next_id += 2
        self._streams[stream_id] = _Stream(window=self.config.initial_stream_window)
        self._local += 1
        return stream_id

    def accept_stream(self, stream_id: int) -> None:
        """Register a stream the peer opened, so this side can send on it (not counted by max_streams)."""
        assert not self.is_local(stream_id) and stream_id not in self._streams
        self._streams[stream_id] = _Stream(window=self.config.initial_stream_window)

    def close_stream(self, stream_id: int) -> int:
        """Close a stream, dropping its queued data; returns the dropped byte count."""
        stream = self._stream(stream_id)
        del self._streams[stream_id]
        if self.is_local(stream_id):
            self._local -= 1
        if stream.pending:
            self._ready.remove(stream_id)
        return stream.pending

    def stream_window(self, stream_id: int) -> int:
        return self._stream(stream_id).window

    def pending(self, stream_id: int) -> int:
        return self._stream(stream_id).pending

    def can_send(self, stream_id: int, n: int) -> bool:
        """Do both windows hold ``n`` credits?"""
        return 0 <= n <= min(self._stream(stream_id).window, self.connection_window)

    def consume(self, stream_id: int, n: int) -> None:
        """Spend ``n`` credits of the stream and the connection (bytes written directly)."""
        if n < 0 or not self.can_send(stream_id, n):
            raise FlowControlError(f"stream {stream_id}: {n} bytes exceed the flow-control window")
        self._streams[stream_id].window -= n
        self.connection_window -= n
        self.sent_total += n

    def grant(self, stream_id: int | None, increment: int) -> None:
        """WINDOW_UPDATE: add credit to a stream, or to the connection when ``stream_id`` is None or 0."""
        if not 1 <= increment <= MAX_WINDOW:
            raise FlowControlError(f"WINDOW_UPDATE increment {increment} is outside 1..2**31-1")
        if not stream_id:
            if self.connection_window + increment > MAX_WINDOW:
                raise FlowControlError("connection window would exceed 2**31-1")
            self.connection_window += increment
            return
        stream = self._stream(stream_id)
        if stream.window + increment > MAX_WINDOW:
            raise FlowControlError(f"stream {stream_id} window would exceed 2**31-1")
        stream.window += increment

    def enqueue(self, stream_id: int, nbytes: int) -> None:
        """Queue ``nbytes`` of data on a stream for the scheduler."""
        if nbytes < 0:
            raise ValueError("nbytes: must be >= 0")
        stream = self._stream(stream_id)
        if nbytes and not stream.pending:
            self._ready.append(stream_id)
        stream.pending += nbytes

    def next_chunk(self) -> tuple[int, int] | None:
        """The next (stream_id, nbytes) to write, windows already spent; None if nothing can go."""
        if self.connection_window <= 0:
            return None
        for _ in range(len(self._ready)):
            stream_id = self._ready.popleft()
            stream = self._streams[stream_id]
            if stream.window <= 0:
                self._ready.append(stream_id)  # blocked on its own credit: keep its turn order
                continue
            n = min(stream.pending, stream.window, self.connection_window, self.config.max_frame_size)
            stream.window -= n
            self.connection_window -= n
            stream.pending -= n
            self.sent_total += n
            if stream.pending:
                self._ready.append(stream_id)
            return stream_id, n
        return None

    def stats(self) -> MultiplexStats:
        return MultiplexStats(connection_id=self.connection_id, node=self.node,
                              active_streams=len(self._streams), max_streams=self.config.max_streams)
