"""Wire messages of the health service: asking a node for its own probes (NETWORKING-018).

Each is a ``Message``, so its class name is its tag on the wire (``rustyray.protocol.messages``):
the names are part of the wire format and are defined here only, once. Heartbeats themselves are
the node's ``protocol.control.Heartbeat``.
"""

from __future__ import annotations

from rustyray.protocol.messages import Message

__all__ = ["HealthProbeReply", "HealthProbeRequest"]


class HealthProbeRequest(Message):
    """Ask a node for its own liveness / readiness / startup probes."""

    sender: str = ""


class HealthProbeReply(Message):
    node: str
    liveness: str
    readiness: str
    startup: str
    reason: str = ""
