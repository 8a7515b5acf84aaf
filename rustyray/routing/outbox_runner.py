"""The tasks that drain the per-peer outboxes of ``SendCore``: one sender task per peer.

A sender takes the most urgent live message for its peer (``SendCore.take``) and writes it on the
*current* connection to that peer (the node redials dropped peers by itself), stamped with its
attempt number and with its priority in the frame flags, then sleeps until ``wake(peer)``. Without a
connection, a retrying message keeps its place in the outbox while the sender redials (an AtMostOnce
one fails at once); a failed write is left to the retry timer unless it can never succeed. What
fails is handed to ``settle``, the service's way back to the waiting caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.protocol.errors import LocalProtocolError, ProtocolError
from rustyray.routing.priority import frame_flags
from rustyray.routing.send_core import SendCore, Settle

if TYPE_CHECKING:
    from rustyray.transport.api import Host
    from rustyray.transport.connection import Connection

REDIAL_TIMEOUT_S = 0.5
"""Seconds a sender waits for a dial to its peer before it looks at the outbox again."""
REDIAL_PAUSE_S = 0.05
"""Seconds a sender pauses after a failed dial, so an unreachable peer is not dialled in a tight loop."""


class OutboxRunner:
    def __init__(self, node: Host, core: SendCore, conn_of: Callable[[str], Connection | None],
                 settle: Callable[[Settle], None]) -> None:
        self.node = node
        self.core = core
        self.conn_of = conn_of
        """The live connection to a peer, or None."""
        self.settle = settle
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._wake: dict[str, asyncio.Event] = {}

    def wake(self, peer: str) -> None:
        """``peer``'s outbox has something new: start its sender if it is not running and wake it."""
        event = self._wake.get(peer)
        if event is None:
            event = self._wake[peer] = asyncio.Event()
        task = self._tasks.get(peer)
        if task is None or task.done():
            self._tasks[peer] = self.node.spawn(self._drain(peer), name=f"routing sender {peer}")
        event.set()

    async def _drain(self, peer: str) -> None:
        wake, core = self._wake[peer], self.core
        while True:
            mid = core.take(peer)
            if mid is None:
                wake.clear()
                await wake.wait()
                continue
            conn = self.conn_of(peer)
            if conn is None:
                failed = core.on_no_connection(mid, peer)
                if failed is not None:
                    self.settle(failed)
                    continue
                # it kept its place by priority rather than falling back to the retry timer: (re)dial
                with contextlib.suppress(ConnectionError, OSError, TimeoutError, KeyError):
                    await self.node.connection_to(peer, timeout=REDIAL_TIMEOUT_S)
                if self.conn_of(peer) is None:
                    await asyncio.sleep(REDIAL_PAUSE_S)
                continue
            env = core.frame(mid)
            try:
                self.node.send_on(conn, env, flags=frame_flags(env.priority))
                await conn.drain()
            except (ConnectionError, ProtocolError) as exc:
                # a message we may not encode (over the frame limit) fails the same way on every retry
                failed = core.not_sent(mid, f"write to {peer} failed: {exc}", final=isinstance(exc, LocalProtocolError))
                if failed is not None:
                    self.settle(failed)
