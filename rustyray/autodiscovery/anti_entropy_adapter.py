"""Anti-entropy on a node (NETWORKING-030): the asyncio side of ``AntiEntropyNode``.

Answers ``AESyncStep`` frames, runs syncs as ``Host.request`` round trips, runs the periodic
rounds, and reads and writes the membership view the sync repairs (``source``).

Membership state comes from the membership service (given by the node) when it offers
``entries() -> {node_id: (incarnation, status)}`` and
``apply_entries(list[(node_id, incarnation, status)])``. Otherwise ``PeerView`` derives it from
``node.peers`` (Alive when connected, else Suspect, incarnation from the peer's hello) merged
with the entries earlier syncs brought in; such an entry is dropped when a fresh connection to
that peer is made (a handshake is first-hand evidence).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from rustyray.autodiscovery.anti_entropy import AEEntry, EntryStatus, MerkleTree, precedence
from rustyray.autodiscovery.anti_entropy_node import AESyncStep, AntiEntropyNode, pick_source
from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)

__all__ = ["AntiEntropyAdapter", "PeerView"]


class PeerView:
    """Fallback membership view for anti-entropy when no membership service offers one.

    Alive if the outbound connection is up, else Suspect; the incarnation is the one the peer's
    hello carried. Entries brought by syncs are kept in ``overrides`` and win by SWIM precedence.
    """

    def __init__(self, node: Host) -> None:
        self.node = node
        self.overrides: dict[str, tuple[int, EntryStatus]] = {}

    def entries(self) -> dict[str, tuple[int, EntryStatus]]:
        view = {self.node.node_id: (self.node.incarnation, EntryStatus.ALIVE)}
        for peer in self.node.peers.values():
            view[peer.node_id] = (peer.incarnation, EntryStatus.ALIVE if peer.connected else EntryStatus.SUSPECT)
        for nid, entry in self.overrides.items():
            if nid not in view or precedence(*entry) > precedence(*view[nid]):
                view[nid] = entry
        return view

    def apply_entries(self, entries: list[tuple[str, int, str]]) -> None:
        for node_id, incarnation, status in entries:
            entry = (incarnation, EntryStatus(status))
            cur = self.overrides.get(node_id)
            if cur is None or precedence(*entry) > precedence(*cur):
                self.overrides[node_id] = entry
            peer = self.node.peers.get(node_id)
            if peer is not None:
                peer.incarnation = max(peer.incarnation, incarnation)


class AntiEntropyAdapter:
    """Runs one ``AntiEntropyNode``; ``source`` (None: see ``state_source``) replaces the view synchronised."""

    def __init__(self, node: Host, core: AntiEntropyNode, *, membership: Any | None,
                 request_timeout_s: float) -> None:
        self.node = node
        self.core = core
        self.membership = membership
        self.request_timeout_s = request_timeout_s
        self.peer_view = PeerView(node)
        self.source: Any | None = None
        """An object with ``entries()`` and ``apply_entries(list[(node_id, incarnation, status)])``
        that replaces the membership view anti-entropy synchronises (tests, embedding)."""

    def start(self) -> None:
        if self.core.enabled:
            self.node.spawn(self._loop(), name="autodiscovery anti-entropy")

    def on_peer_event(self, event: str, peer_id: str) -> None:
        if event == "connected" and peer_id in self.node.peers:
            self.peer_view.overrides.pop(peer_id, None)

    # ------------------------------------------------------------ the membership view
    def state_source(self) -> tuple[str, Any]:
        """``(name, view)``: ``source`` if set, the membership service if it offers entries, else ``peer_view``."""
        return pick_source(self.source, self.membership, self.peer_view)

    def tree(self) -> MerkleTree:
        return self.core.tree(self.state_source()[1].entries())

    def _apply(self, entries: list[AEEntry]) -> None:
        if entries:
            self.state_source()[1].apply_entries([(e.node_id, e.incarnation, e.status) for e in entries])

    # ------------------------------------------------------------ sessions
    def on_step(self, ctx: RequestContext, msg: AESyncStep) -> Message:
        reply, entries = self.core.answer(ctx.peer_id, msg, self.tree)
        self._apply(entries)
        return reply

    async def sync_with(self, target: str) -> dict[str, Any]:
        """Run one anti-entropy session with ``target`` and apply what it brings."""
        sync = self.core.begin(target, self.tree(), time.monotonic())
        request: AESyncStep | None = sync.start()
        while request is not None:
            reply = await self.node.request(target, request, timeout=self.request_timeout_s)
            request = sync.step(reply)
        report, entries = self.core.finish(sync, time.monotonic(), time.time())
        self._apply(entries)
        return report

    async def _loop(self) -> None:
        """Periodic anti-entropy with one random live peer (Demers et al. 1987)."""
        while True:
            await asyncio.sleep(self.core.round_delay())
            connected = {p: peer.connected for p, peer in self.node.peers.items()}
            target = self.core.pick_target(connected, frozenset(self.node.live_members()))
            if target is None:
                continue
            try:
                await self.sync_with(target)
            except Exception as exc:  # a failed round is retried at the next interval
                self.core.failed()
                log.debug("anti-entropy with %s failed on %s: %s", target, self.node.node_id, exc)
