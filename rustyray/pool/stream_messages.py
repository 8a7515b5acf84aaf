"""Wire messages of multiplexed streams (NETWORKING-045).

Each travels in a frame with ``Flags.STREAM``; the frame's stream id names the stream
(0 = the connection, for ``StreamWindowUpdate`` only). See ``pool.mux_adapter`` for the
protocol these carry and ``pool.flow_control`` for the credit rules.
"""

from __future__ import annotations

from rustyray.protocol.messages import Message


class StreamOpen(Message):
    """The sender opens the stream named by the frame (HTTP/2 HEADERS without the headers)."""


class StreamData(Message):
    """Stream bytes; ``len(data)`` spends flow-control credit. ``end`` half-closes the sender's side."""

    data: bytes = b""
    end: bool = False


class StreamWindowUpdate(Message):
    """Return ``increment`` bytes of credit to the stream (or the connection when the stream id is 0)."""

    increment: int


class StreamReset(Message):
    """Abort the stream in both directions; ``code`` is machine-readable (e.g. ``refused_stream``)."""

    code: str
    message: str = ""
