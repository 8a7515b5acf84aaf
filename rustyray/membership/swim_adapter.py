"""SWIM on the event loop: where the SWIM core meets the clock and the node's connections.

Drives a ``SwimNode`` (``swim/core.py``) as its I/O contract asks: each arriving SWIM message is
``receive``-d with the time; a loop ``tick``-s the core at its ``next_deadline()`` (at least every
0.5 s, at once when woken); after each input the outbox is sent and the core's events are handed
to the service (``on_event``), which also hears once per batch that something changed
(``on_changed``: it saves ``cluster.json``).

Sends are best effort (SWIM and Raft both retry, so loss is fine): over the live connection to the
peer, else dialled in the background, one dial per target at a time. A seed not yet known by id is
addressed as ``seed:host:port``: it is dialled by address, and when the node on the other end is a
peer the node wants, the node adopts the connection; otherwise it is closed a little later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from rustyray.membership.swim import messages as swim_messages
from rustyray.membership.swim.config import SwimConfig
from rustyray.membership.swim.core import SwimNode
from rustyray.membership.swim_bridge import repair_update
from rustyray.protocol.messages import Message
from rustyray.transport.tcp import parse_address

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)

__all__ = ["SWIM_TYPES", "SwimAdapter"]

SWIM_TYPES = tuple(
    getattr(swim_messages, n) for n in ("SwimPing", "SwimAck", "SwimPingReq", "SwimNack", "SwimGossip",
                                        "SwimPushPull", "SwimAlive", "SwimSuspect", "SwimDead", "SwimLeft")
)
MAX_SLEEP_S = 0.5
"""The loop ticks the core at least this often (seconds), even without a deadline."""
DIAL_TIMEOUT_S = 2.0
SEED_CONN_LINGER_S = 5.0
"""Seconds a seed connection the node does not adopt stays open for the answer to what it carried."""
LEFT_POLLS, LEFT_POLL_S = 40, 0.05
"""After ``leave``: looks for the core to finish retransmitting its Left update (2 s in all)."""


class SwimAdapter:
    """Owns the node's ``SwimNode`` (``core``, None before ``create``) and its loop."""

    def __init__(self, node: Host, config: SwimConfig, rng: random.Random, *,
                 on_event: Callable[[Any], None], on_changed: Callable[[], None]) -> None:
        self.node = node
        self.config = config
        self.rng = rng
        self.core: SwimNode | None = None
        self._on_event = on_event
        self._on_changed = on_changed
        self._wake = asyncio.Event()
        self._dialing: set[str] = set()
        for t in SWIM_TYPES:
            node.on(t, self._on_message)

    # ------------------------------------------------------------------ lifecycle
    def create(self, now: float) -> SwimNode:
        node = self.node
        self.core = SwimNode(node.node_id, self.config, rng=self.rng, now=now, incarnation=node.incarnation,
                             tcp_address=node.tcp_address, quic_address=node.quic_address)
        return self.core

    def run(self) -> None:
        self.node.spawn(self._loop(), name="swim")

    def wake(self) -> None:
        self._wake.set()

    def join(self, members: Iterable[str], now: float) -> None:
        assert self.core is not None
        self.core.join(list(members), now)
        self._wake.set()

    async def leave(self) -> None:
        """Announce Left and give its retransmits a moment to go out."""
        core = self.core
        assert core is not None
        core.leave(time.monotonic())
        self.flush()
        for _ in range(LEFT_POLLS):
            if core.left:
                break
            await asyncio.sleep(LEFT_POLL_S)

    def repair(self, entries: list[tuple[str, int, str]]) -> None:
        """Feed anti-entropy's repaired entries to the core as SWIM updates (see ``swim_bridge.repair_update``)."""
        core = self.core
        if core is None:
            return
        own, now = self.node.node_id, time.monotonic()
        for node_id, incarnation, status in entries:
            update = repair_update(own, node_id, incarnation, status, core.member(node_id))
            if update is not None:
                with contextlib.suppress(Exception):
                    core.receive(own, update, now)
        self.flush()

    # ------------------------------------------------------------------ driving the core
    def _on_message(self, ctx: RequestContext, msg: Any) -> None:
        if self.core is None or ctx.peer_id is None:
            return
        self.core.receive(ctx.peer_id, msg, time.monotonic())
        self.flush()

    async def _loop(self) -> None:
        core = self.core
        assert core is not None
        while True:
            core.tick(time.monotonic())
            self.flush()
            deadline = core.next_deadline()
            delay = MAX_SLEEP_S if deadline is None else max(0.0, min(MAX_SLEEP_S, deadline - time.monotonic()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def flush(self) -> None:
        """Send the core's outbox, hand its events over, and wake the loop (the next deadline may be sooner)."""
        core = self.core
        assert core is not None
        for to_id, msg in core.outbox():
            try:
                self.send(to_id, msg)
            except Exception:
                log.debug("swim send to %s failed", to_id, exc_info=True)
        changed = False
        for ev in core.drain_events():
            changed = True
            self._on_event(ev)
        if changed:
            self._on_changed()
        self._wake.set()

    # ------------------------------------------------------------------ best-effort sends
    def send(self, to_id: str, msg: Message) -> None:
        """Send without waiting: over the live connection, else dial in the background (loss is fine)."""
        node = self.node
        if to_id.startswith("seed:"):
            if to_id not in self._dialing:
                self._dialing.add(to_id)
                node.spawn(self._dial_seed_and_send(to_id, msg), name=f"swim {to_id}")
            return
        peer = node.peers.get(to_id)
        if peer is not None and peer.connected:
            node.send_on(peer.conn, msg)
            return
        if peer is None and self.core is not None:
            info = self.core.member(to_id)
            if info is None or not info.tcp_address:
                return
            peer = node.learn_peer(to_id, info.tcp_address, info.quic_address, info.incarnation)
        if to_id not in self._dialing:
            self._dialing.add(to_id)
            node.spawn(self._dial_and_send(to_id, msg), name=f"swim {to_id}")

    async def _dial_and_send(self, to_id: str, msg: Message) -> None:
        try:
            conn = await self.node.connection_to(to_id, timeout=DIAL_TIMEOUT_S)
            self.node.send_on(conn, msg)
        except (ConnectionError, OSError, KeyError, TimeoutError):
            pass
        finally:
            self._dialing.discard(to_id)

    async def _dial_seed_and_send(self, seed: str, msg: Message) -> None:
        try:
            host, port = parse_address(seed[len("seed:"):], field="seed")
            conn, ack = await self.node.dial(host, port, timeout=DIAL_TIMEOUT_S)
            if ack.node_id != self.node.node_id:
                self.node.send_on(conn, msg)
                peer = self.node.peers.get(ack.node_id)
                if peer is not None and not peer.connected:
                    self.node._adopt(peer, conn)
                else:
                    self.node.spawn(self._close_later(conn), name="close seed conn")
            else:
                conn.close("dialled self")
        except (ConnectionError, OSError, ValueError, TimeoutError):
            pass
        finally:
            self._dialing.discard(seed)

    @staticmethod
    async def _close_later(conn: Any) -> None:
        await asyncio.sleep(SEED_CONN_LINGER_S)
        conn.close("seed connection no longer needed")
