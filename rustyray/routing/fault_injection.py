"""Fault injection for routed traffic: drop, delay, duplicate and reorder outbound frames.

Why a link (``rustyray.transport.link``) in front of the node's own: every frame a node writes (requests,
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rustyray.protocol.errors import ProtocolError
from rustyray.protocol.messages import Message
from rustyray.routing.messages import RouteAck, RouteEnvelope
from rustyray.transport.link import WrapperLink

if TYPE_CHECKING:
    from rustyray.transport.api import Host
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


class FaultInjector(WrapperLink):
    """A link in front of the node's own while installed; ``counters`` says what it did."""

    def __init__(self, node: Host, config: FaultConfig, rng: random.Random) -> None:
        super().__init__()
        self.node = node
        self.config = config.validate()
        self.rng = rng
        self.counters = FaultCounters()
        self._installed = False
        self._held: dict[str, tuple[Connection, Message, int, int, asyncio.TimerHandle]] = {}

    @property
    def installed(self) -> bool:
        return self._installed

    def install(self) -> FaultInjector:
        assert not self._installed, "already installed"
        self.node.add_link(self)
        self._installed = True
        return self

    def uninstall(self) -> None:
        """Flush held frames and take this link out of the node's chain."""
        if not self._installed:
            return
        for conn_id in list(self._held):
            self._release(conn_id)
        self.node.remove_link(self)
        self._installed = False

    def _write(self, conn: Connection, message: Message, msg_id: int, flags: int) -> None:
        if conn.is_closed:
            return
        with contextlib.suppress(ConnectionError, ProtocolError):
            super().write(conn, message, msg_id, flags, None)

    def write(self, conn: Connection, message: Message, msg_id: int, flags: int, stream_id: int | None) -> None:
        if stream_id is not None or not isinstance(message, self.config.message_types):
            super().write(conn, message, msg_id, flags, stream_id)
            return
        c = self.config
        u = self.rng.random()
        if u < c.drop:
            self.counters.dropped += 1
        elif u < c.drop + c.duplicate:
            self.counters.duplicated += 1
            self._write(conn, message, msg_id, flags)
            self._write(conn, message, msg_id, flags)
        elif u < c.drop + c.duplicate + c.reorder and conn.conn_id not in self._held:
            self.counters.reordered += 1
            timer = asyncio.get_running_loop().call_later(c.hold_max_s, self._release, conn.conn_id)
            self._held[conn.conn_id] = (conn, message, msg_id, flags, timer)
            return
        elif u < c.drop + c.duplicate + c.reorder + c.delay:
            self.counters.delayed += 1
            wait = self.rng.uniform(c.delay_min_s, c.delay_max_s)
            asyncio.get_running_loop().call_later(wait, self._write, conn, message, msg_id, flags)
        else:
            self.counters.passed += 1
            self._write(conn, message, msg_id, flags)
        self._release(conn.conn_id)  # a held frame goes out after this one

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
    link, so every service's traffic is cut, not only routed frames) and a new dial to an
    address of another group fails at once (the same link refuses the connect), so neither side can reach the
    other by reconnecting. Connections opened before the split stay up but carry nothing across, as
    when a switch drops packets without resetting TCP. ``heal()`` lets everything through again.

        part = NetworkPartition(cluster.nodes).install()
        part.split([["node1", "node2"], ["node3", "node4", "node5"]])
        ...
        part.heal()
        part.uninstall()
    """

    def __init__(self, nodes: dict[str, Host]) -> None:
        self.nodes = nodes
        self.group: dict[str, int] | None = None
        self.dropped = 0
        self.refused_dials = 0
        self._links: dict[str, _PartitionLink] = {}
        self._by_address: dict[str, str] = {}

    def install(self) -> NetworkPartition:
        assert not self._links, "already installed"
        for nid, node in self.nodes.items():
            for addr in (node.tcp_address, node.quic_address):
                if addr:
                    self._by_address[addr] = nid
            self._links[nid] = link = _PartitionLink(self, nid)
            node.add_link(link)
        return self

    def uninstall(self) -> None:
        for nid, link in self._links.items():
            self.nodes[nid].remove_link(link)
        self._links.clear()
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


class _PartitionLink(WrapperLink):
    """One node's side of a ``NetworkPartition``: drops frames and refuses dials across the cut."""

    def __init__(self, partition: NetworkPartition, node_id: str) -> None:
        super().__init__()
        self.partition = partition
        self.node_id = node_id

    def write(self, conn: Connection, message: Message, msg_id: int, flags: int, stream_id: int | None) -> None:
        if self.partition.cut(self.node_id, conn.peer_node_id):
            self.partition.dropped += 1
            return
        super().write(conn, message, msg_id, flags, stream_id)

    async def connect(self, mesh: Any, host: str, port: int, *, protocol: str, expect_node: str | None,
                      timeout: float) -> Connection:
        from rustyray.transport.tcp import format_address

        target = expect_node or self.partition._by_address.get(format_address(host, port))
        if self.partition.cut(self.node_id, target):
            self.partition.refused_dials += 1
            raise ConnectionError(f"partitioned: {self.node_id} cannot reach {target}")
        return await super().connect(mesh, host, port, protocol=protocol, expect_node=expect_node, timeout=timeout)
