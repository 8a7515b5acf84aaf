"""Asyncio adapter for beacons: drives ``BeaconCore`` over a started ``BroadcastDiscovery``.

It reuses the broadcast adapter's sockets (beacons leave by its unicast socket and arrive on
its listen socket, where the broadcast core counts them), and keeps a single ``loop.call_at``
armed at ``BeaconCore.next_deadline()`` (the aioquic pattern).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from rustyray.autodiscovery.beacon import BeaconCore
from rustyray.autodiscovery.broadcast import BroadcastDiscovery

__all__ = ["BeaconRunner"]


class BeaconRunner:
    """Sends beacons and expires candidates on time. ``on_expired`` receives the dropped ids."""

    def __init__(
        self,
        core: BeaconCore,
        broadcast: BroadcastDiscovery,
        *,
        on_expired: Callable[[list[str]], None] | None = None,
    ) -> None:
        assert core.broadcast is broadcast.core, "beacon core must wrap the adapter's broadcast core"
        self.core = core
        self._bc = broadcast
        self._on_expired = on_expired
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for dgram in self.core.start(self._bc.clock()):
            self._bc.send(dgram)
        self._rearm()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def status(self) -> dict[str, object]:
        return self.core.status(self._bc.clock())

    def _rearm(self) -> None:
        assert self._loop is not None
        if self._handle is not None:
            self._handle.cancel()
        deadline = self.core.next_deadline()
        if deadline is None:
            self._handle = None
            return
        delay = max(0.0, deadline - self._bc.clock())
        self._handle = self._loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        for dgram in self.core.on_timer(self._bc.clock()):
            self._bc.send(dgram)
        if self.core.expired and self._on_expired is not None:
            self._on_expired(self.core.expired)
        self._rearm()
