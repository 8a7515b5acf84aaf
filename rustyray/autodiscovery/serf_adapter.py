"""Serf events, queries and member tags on a node (NETWORKING-029): the asyncio side of ``SerfNode``.

Reads the clocks and the peer table into a ``HostView`` for every event (frame, peer event,
timer, API call), feeds ``SerfNode`` and carries out what it returns: ``Gossip`` and ``Unicast``
become node sends in background tasks (a failed send is logged and dropped, as gossip may
be), ``QueryProgress`` wakes a waiting query. One ``loop.call_later`` stays armed at the core's
next deadline (the aioquic pattern).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rustyray.autodiscovery.serf import QueryState, SendResponse
from rustyray.autodiscovery.serf_node import (
    ForeignSend,
    Gossip,
    HostView,
    NodeAction,
    PeerInfo,
    QueryProgress,
    SerfNode,
    Unicast,
)
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)

__all__ = ["SerfAdapter"]


class SerfAdapter:
    """Runs one ``SerfNode`` on the node's event loop."""

    def __init__(self, node: Host, core: SerfNode) -> None:
        self.node = node
        self.core = core
        self.gossip_sent = 0
        """Gossip sends that succeeded."""
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: dict[tuple[int, int], asyncio.Event] = {}
        # Real Serf agents beside the mesh (set by the service with [autodiscovery.serf] wire = "serf"):
        self.foreign_responder: Callable[[SendResponse], None] | None = None
        """Sends a query answer to an agent (its origin is not a mesh node)."""
        self.on_query_started: Callable[..., object] | None = None
        """Sends our query (ltime, id, timeout_s, name, payload; keywords filter_nodes, filter_tags,
        relay_factor) to the agents too."""
        self.foreign_members: Callable[[], frozenset[str]] = frozenset
        """Names of the live agents, whose answers a query also waits for."""

    def view(self) -> HostView:
        node = self.node
        now = time.monotonic()
        return HostView(now=now, wall=time.time(), node_id=node.node_id, host=node.advertise_host,
                        port=node.tcp_port, tcp_address=node.tcp_address, incarnation=node.incarnation,
                        uptime_s=now - node.started_mono, live=frozenset(node.live_members()),
                        peers={pid: PeerInfo(p.tcp_address, p.connected, p.incarnation)
                               for pid, p in node.peers.items()})

    # ------------------------------------------------------------ lifecycle and events
    def start(self, tags: dict[str, str]) -> None:
        self._loop = asyncio.get_running_loop()
        self._run(self.core.start(tags, self.view()))

    def stop(self) -> None:
        self.core.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def on_message(self, ctx: RequestContext, msg: Message) -> None:
        self._run(self.core.receive(msg, ctx.peer_id, self.view()))

    def on_foreign(self, msg: Message) -> None:
        """A Serf message from outside the mesh (a real Serf agent, through the memberlist member): handled
        as if this node had sent it, so it is delivered here and gossiped to every peer."""
        self._run(self.core.receive(msg, None, self.view()))

    def on_peer_event(self, event: str, peer_id: str) -> None:
        self._run(self.core.peer_event(event, peer_id, self.view()))

    def _tick(self) -> None:
        self._timer = None
        self._run(self.core.tick(self.view()))

    def _rearm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.core.core.next_deadline()
        if deadline is None or not self.core.running or self._loop is None:
            return
        self._timer = self._loop.call_later(max(0.0, deadline - time.monotonic()), self._tick)

    # ------------------------------------------------------------ actions
    def _run(self, actions: list[NodeAction]) -> None:
        """Carry out the core's actions; never raises into a frame handler."""
        for action in actions:
            if isinstance(action, Gossip):
                self.node.spawn(self._gossip(action), name="serf gossip")
            elif isinstance(action, Unicast):
                self.node.spawn(self._send_quietly(action.peer, action.message),
                                name=f"serf {type(action.message).__name__}")
            elif isinstance(action, ForeignSend):
                if self.foreign_responder is not None:
                    self.foreign_responder(action.send)
            elif isinstance(action, QueryProgress):
                waiter = self._waiters.get(action.key)
                if waiter is not None:
                    waiter.set()
        self._rearm()

    async def _gossip(self, gossip: Gossip) -> int:
        sent = sum(await asyncio.gather(*(self._send_quietly(t, gossip.message) for t in gossip.targets)))
        self.gossip_sent += sent
        return sent

    async def _send_quietly(self, peer_id: str, msg: Message) -> bool:
        try:
            await self.node.send(peer_id, msg)
        except (ConnectionError, OSError, KeyError, TimeoutError) as exc:
            log.debug("%s could not send %s to %s: %s", self.node.node_id, type(msg).__name__, peer_id, exc)
            return False
        return True

    # ------------------------------------------------------------ operations
    async def user_event(self, name: str, payload: bytes, coalesce: bool) -> tuple[dict[str, object], int]:
        """Send a user event and gossip it; returns the core's result and the sends that succeeded."""
        result, actions = self.core.user_event(name, payload, coalesce, self.view())
        self._run([a for a in actions if not isinstance(a, Gossip)])
        sent = 0
        for gossip in (a for a in actions if isinstance(a, Gossip)):
            sent += await self._gossip(gossip)
        return result, sent

    async def query(self, name: str, payload: bytes, timeout_s: float | None, *,
                    filter_nodes: list[str] | None = None, filter_tags: dict[str, str] | None = None,
                    relay_factor: int = 0) -> tuple[QueryState, float, float]:
        """Run a query until every live member answered or its deadline; returns the state, start and end."""
        view = self.view()
        state, actions = self.core.start_query(name, payload, timeout_s, view, filter_nodes=filter_nodes,
                                               filter_tags=filter_tags, relay_factor=relay_factor)
        key = (state.ltime, state.id)
        waiter = self._waiters[key] = asyncio.Event()
        try:
            self._run(actions)
            if self.on_query_started is not None:
                self.on_query_started(state.ltime, state.id, state.deadline - time.monotonic(), name, payload,
                                      filter_nodes=filter_nodes, filter_tags=filter_tags, relay_factor=relay_factor)
            while (wait := self.core.query_wait(state, frozenset(self.node.live_members()) | self.foreign_members(),
                                                time.monotonic())) is not None:
                waiter.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waiter.wait(), wait)
        finally:
            self._waiters.pop(key, None)
        return state, view.now, time.monotonic()
