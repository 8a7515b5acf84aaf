"""Fault injection for routed traffic: drop, delay, duplicate and reorder outbound frames.

Why a node-level hook on ``Node.send_on``: every frame a node writes (requests,
replies, routed envelopes and acks) passes through it with the message object in
hand, so faults can target chosen message types (by default the routing
envelopes and acks) while handshakes and heartbeats stay intact. Faults happen
at frame granularity, so the byte stream stays well-framed, exactly what loss
and reordering look like above a reliable transport that reconnects (a frame
written to a connection that is then reset is lost; a retransmission is a
duplicate). Decisions come from a seeded ``random.Random``; the timing of
delayed frames still depends on the event loop.

    injector = FaultInjector(node, FaultConfig(drop=0.2, duplicate=0.2), random.Random(7))
    injector.install()   # ... run traffic ...
    injector.uninstall()
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rustyray.protocol.errors import ProtocolError
from rustyray.protocol.messages import Message
from rustyray.routing.messages import RouteAck, RouteEnvelope

if TYPE_CHECKING:
    from rustyray.node import Node
    from rustyray.transport.connection import Connection


@dataclass(frozen=True)
class FaultConfig:
    """Probabilities are per frame of a faulted type and are tried in the order drop, duplicate,
    reorder, delay (one fault per frame at most)."""

    drop: float = 0.0
    """Probability (0..1) that a frame is silently not written."""

    duplicate: float = 0.0
    """Probability that a frame is written twice (same frame id)."""

    reorder: float = 0.0
    """Probability that a frame is held back and written after the next faulted frame on its connection."""

    delay: float = 0.0
    """Probability that a frame is written ``delay_min_s..delay_max_s`` seconds later."""

    delay_min_s: float = 0.001
    """Shortest extra delay of a delayed frame, seconds."""

    delay_max_s: float = 0.05
    """Longest extra delay of a delayed frame, seconds."""

    hold_max_s: float = 0.05
    """Seconds after which a held (reordered) frame is written anyway when no other frame follows."""

    message_types: tuple[type[Message], ...] = (RouteEnvelope, RouteAck)
    """Message classes the faults apply to; every other frame passes untouched."""

    def validate(self) -> FaultConfig:
        for name in ("drop", "duplicate", "reorder", "delay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        if self.drop + self.duplicate + self.reorder + self.delay > 1.0:
            raise ValueError("drop: the fault probabilities must add up to at most 1")
        if not 0 <= self.delay_min_s <= self.delay_max_s:
            raise ValueError("delay_min_s must be in [0, delay_max_s]")
        if self.hold_max_s <= 0:
            raise ValueError("hold_max_s must be > 0")
        return self


@dataclass
class FaultCounters:
    passed: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    delayed: int = 0


class FaultInjector:
    """Wraps ``node.send_on`` while installed; ``counters`` says what it did."""

    def __init__(self, node: Node, config: FaultConfig, rng: random.Random) -> None:
        self.node = node
        self.config = config.validate()
        self.rng = rng
        self.counters = FaultCounters()
        self._original: Callable[..., int] | None = None
        self._held: dict[str, tuple[Connection, Message, int, int, asyncio.TimerHandle]] = {}

    @property
    def installed(self) -> bool:
        return self._original is not None

    def install(self) -> FaultInjector:
        assert self._original is None, "already installed"
        self._original = self.node.send_on
        self.node.send_on = self._send_on  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        """Restore the node's writer and flush held frames."""
        if self._original is None:
            return
        for conn_id in list(self._held):
            self._release(conn_id)
        self.node.send_on = self._original  # type: ignore[method-assign]
        self._original = None

    def _write(self, conn: Connection | None, message: Message, msg_id: int, flags: int) -> None:
        assert self._original is not None
        with contextlib.suppress(ConnectionError, ProtocolError):
            self._original(conn, message, msg_id=msg_id, flags=flags)

    def _send_on(
        self, conn: Connection | None, message: Message, *, msg_id: int | None = None, flags: int = 0
    ) -> int:
        assert self._original is not None
        if not isinstance(message, self.config.message_types):
            return self._original(conn, message, msg_id=msg_id, flags=flags)
        if conn is None or conn.is_closed:
            raise ConnectionError("connection is closed")
        mid = self.node.next_id() if msg_id is None else msg_id
        c = self.config
        u = self.rng.random()
        if u < c.drop:
            self.counters.dropped += 1
        elif u < c.drop + c.duplicate:
            self.counters.duplicated += 1
            self._write(conn, message, mid, flags)
            self._write(conn, message, mid, flags)
        elif u < c.drop + c.duplicate + c.reorder and conn.conn_id not in self._held:
            self.counters.reordered += 1
            timer = asyncio.get_running_loop().call_later(c.hold_max_s, self._release, conn.conn_id)
            self._held[conn.conn_id] = (conn, message, mid, flags, timer)
            return mid
        elif u < c.drop + c.duplicate + c.reorder + c.delay:
            self.counters.delayed += 1
            wait = self.rng.uniform(c.delay_min_s, c.delay_max_s)
            asyncio.get_running_loop().call_later(wait, self._write, conn, message, mid, flags)
        else:
            self.counters.passed += 1
            self._write(conn, message, mid, flags)
        self._release(conn.conn_id)  # a held frame goes out after this one
        return mid

    def _release(self, conn_id: str) -> None:
        held = self._held.pop(conn_id, None)
        if held is None:
            return
        conn, message, mid, flags, timer = held
        timer.cancel()
        self._write(conn, message, mid, flags)

    def stats(self) -> dict[str, Any]:
        return dict(self.counters.__dict__)


class NetworkPartition:
    """Cut every link between groups of in-process nodes, for partition tests.

    While split, a frame written to a peer of another group is dropped (a wrapper around each node's
    ``send_on``, so every service's traffic is cut, not only routed frames) and a new dial to an
    address of another group fails at once (a wrapper around ``dial``), so neither side can reach the
    other by reconnecting. Connections opened before the split stay up but carry nothing across, as
    when a switch drops packets without resetting TCP. ``heal()`` lets everything through again.

        part = NetworkPartition(cluster.nodes).install()
        part.split([["node1", "node2"], ["node3", "node4", "node5"]])
        ...
        part.heal()
        part.uninstall()
    """

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self.group: dict[str, int] | None = None
        self.dropped = 0
        self.refused_dials = 0
        self._originals: dict[str, tuple[Callable[..., int], Callable[..., Any]]] = {}
        self._by_address: dict[str, str] = {}

    def install(self) -> NetworkPartition:
        assert not self._originals, "already installed"
        for nid, node in self.nodes.items():
            for addr in (node.tcp_address, node.quic_address):
                if addr:
                    self._by_address[addr] = nid
            self._originals[nid] = (node.send_on, node.dial)
            node.send_on = self._make_send_on(nid, node.send_on)  # type: ignore[method-assign]
            node.dial = self._make_dial(nid, node.dial)  # type: ignore[method-assign]
        return self

    def uninstall(self) -> None:
        for nid, (send_on, dial) in self._originals.items():
            node = self.nodes[nid]
            node.send_on = send_on  # type: ignore[method-assign]
            node.dial = dial  # type: ignore[method-assign]
        self._originals.clear()
        self.group = None

    def split(self, groups: list[list[str]]) -> None:
        """Allow traffic only inside each group; nodes not listed form one more group."""
        self.group = {nid: i for i, members in enumerate(groups) for nid in members}

    def heal(self) -> None:
        self.group = None

    def cut(self, a: str | None, b: str | None) -> bool:
        g = self.group
        if g is None or a is None or b is None:
            return False
        return g.get(a, -1) != g.get(b, -1)

    def _make_send_on(self, nid: str, inner: Callable[..., int]) -> Callable[..., int]:
        def send_on(conn: Connection | None, message: Message, *, msg_id: int | None = None,
                    flags: int = 0) -> int:
            if conn is not None and self.cut(nid, conn.peer_node_id):
                if conn.is_closed:
                    raise ConnectionError("connection is closed")
                self.dropped += 1
                return self.nodes[nid].next_id() if msg_id is None else msg_id
            return inner(conn, message, msg_id=msg_id, flags=flags)

        return send_on

    def _make_dial(self, nid: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        from rustyray.transport.tcp import format_address

        async def dial(host: str, port: int, **kw: Any) -> Any:
            target = kw.get("expect_node") or self._by_address.get(format_address(host, port))
            if self.cut(nid, target):
                self.refused_dials += 1
                raise ConnectionError(f"partitioned: {nid} cannot reach {target}")
            return await inner(host, port, **kw)

        return dial
