"""Stream accounting for request/response exchanges on a connection without wire streams (NETWORKING-045).

Theory of operation: HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 section 5.1.2), kept
in-process. When the peer did not negotiate ``mux-streams`` no stream id travels on the wire,
yet every request/response exchange this node starts on a connection still counts as one open
stream of it, and at most ``max_streams`` are open at once. Only exchanges this node initiates
are counted (send side).

``open(now, timeout)`` opens a stream (an odd dialer id from ``MultiplexedConnection``) or, when
``max_streams`` are open, queues a FIFO waiter whose deadline is ``now + timeout``.
``close(stream_id)`` frees the stream and hands a new one straight to the head waiter (a
``SlotGrant``), so a freed stream never goes to a later caller first; hence waiters queue only
while every stream is taken. A caller that gives up ``cancel``s its waiter; False means it was
granted a stream meanwhile, which the caller then ``close``s (passing it on). The core counts;
the adapter (``pool.streams_adapter``) holds the futures and reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from rustyray.pool.multiplexing import MultiplexConfig, MultiplexedConnection


@dataclass(frozen=True)
class SlotOutcome:
    """Result of ``open``: a stream now, or a queued waiter."""

    waiter_id: int
    stream_id: int | None
    """The opened stream; None means the waiter is queued."""
    deadline: float
    """When the caller gives up waiting (seconds, caller's clock)."""


@dataclass(frozen=True)
class SlotGrant:
    """The waiter ``waiter_id`` now owns the open stream ``stream_id``."""

    waiter_id: int
    stream_id: int


class ExchangeSlots:
    """Open exchanges of one connection, with FIFO waiters beyond ``max_streams``."""

    def __init__(self, conn_id: str, peer: str, config: MultiplexConfig | None = None) -> None:
        self.mux = MultiplexedConnection(conn_id, peer, config)
        self.opened_total = 0
        """Streams opened over the connection's life."""
        self.peak = 0
        """Most streams open at once."""
        self._waiters: dict[int, float] = {}  # waiter id -> deadline, FIFO by insertion
        self._next_waiter = 0

    @property
    def active(self) -> int:
        """Streams open now."""
        return self.mux.active_streams

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def open(self, now: float, timeout: float) -> SlotOutcome:
        """Open a stream, or queue a waiter while ``max_streams`` are open."""
        waiter_id = self._next_waiter
        self._next_waiter += 1
        if not self._waiters and self.active < self.mux.config.max_streams:
            return SlotOutcome(waiter_id, self._open(), now + timeout)
        self._waiters[waiter_id] = now + timeout
        return SlotOutcome(waiter_id, None, now + timeout)

    def close(self, stream_id: int) -> SlotGrant | None:
        """The exchange on ``stream_id`` ended: the freed stream goes to the head waiter, if any."""
        self.mux.close_stream(stream_id)
        if not self._waiters:
            return None
        waiter_id = next(iter(self._waiters))
        del self._waiters[waiter_id]
        return SlotGrant(waiter_id, self._open())

    def cancel(self, waiter_id: int) -> bool:
        """Drop a waiter whose caller gave up; False if it was already granted (or never queued)."""
        if waiter_id not in self._waiters:
            return False
        del self._waiters[waiter_id]
        return True

    def _open(self) -> int:
        stream_id = self.mux.open_stream()
        self.opened_total += 1
        self.peak = max(self.peak, self.active)
        return stream_id

    def check_invariants(self) -> None:
        """Assert the accounting invariants (used by tests)."""
        assert self.active <= self.mux.config.max_streams, "more streams open than max_streams"
        assert not self._waiters or self.active == self.mux.config.max_streams, "a waiter queues beside a free stream"
        assert self.peak >= self.active and self.opened_total >= self.active
