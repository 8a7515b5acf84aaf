"""Asyncio adapter for UDP broadcast discovery (drives ``broadcast_core.BroadcastCore``).

Two datagram sockets, because Linux delivers a broadcast only to sockets bound to the
broadcast address (or the wildcard) while a socket bound there cannot be a sane reply source:

* the *listen* socket binds ``(listen_address or broadcast_address, port)`` with SO_REUSEADDR
  and SO_REUSEPORT, so several processes on one host each get a copy of every broadcast;
* the *unicast* socket binds ``(unicast_bind_address, 0)`` with SO_BROADCAST; it sends
  announces, beacons and replies, and receives the replies addressed to it.

Both feed the same core; the core's ``SendDatagram`` actions always leave by the unicast socket.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable

from rustyray.autodiscovery.broadcast_core import (
    Address,
    BroadcastConfig,
    BroadcastCore,
    CandidateSeen,
    NodeIdentity,
    SendDatagram,
)

__all__ = ["BroadcastDiscovery"]


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, owner: BroadcastDiscovery) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._owner._on_datagram(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:  # ICMP errors on UDP: nothing to do
        pass


class BroadcastDiscovery:
    """Runs a ``BroadcastCore`` on real sockets.

    ``on_candidate`` is called for every verified peer packet (``CandidateSeen``), e.g. to feed
    SWIM seeds. ``clock`` returns Unix time (the core checks packet freshness against it).
    """

    def __init__(
        self,
        core: BroadcastCore,
        *,
        on_candidate: Callable[[CandidateSeen], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.core = core
        self._on_candidate = on_candidate
        self.clock = clock
        self._listen: asyncio.DatagramTransport | None = None
        self._unicast: asyncio.DatagramTransport | None = None

    @classmethod
    def create(
        cls,
        config: BroadcastConfig,
        identity: NodeIdentity,
        *,
        on_candidate: Callable[[CandidateSeen], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> BroadcastDiscovery:
        """Convenience: a core with an unpredictable nonce source."""
        core = BroadcastCore(config, identity, random.SystemRandom())
        return cls(core, on_candidate=on_candidate, clock=clock)

    @property
    def unicast_address(self) -> Address:
        """Where replies to our announces arrive (bound address, ephemeral port)."""
        assert self._unicast is not None, "not started"
        host, port = self._unicast.get_extra_info("sockname")[:2]
        return (host, port)

    async def start(self) -> None:
        cfg = self.core.config
        loop = asyncio.get_running_loop()
        listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listen.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listen.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        uni = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        uni.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            listen.bind((cfg.listen_address or cfg.broadcast_address, cfg.port))
            uni.bind((cfg.unicast_bind_address, 0))
        except OSError:
            listen.close()
            uni.close()
            raise
        listen.setblocking(False)
        uni.setblocking(False)
        self._listen, _ = await loop.create_datagram_endpoint(lambda: _Proto(self), sock=listen)
        self._unicast, _ = await loop.create_datagram_endpoint(lambda: _Proto(self), sock=uni)

    async def close(self) -> None:
        for tr in (self._listen, self._unicast):
            if tr is not None:
                tr.close()
        self._listen = self._unicast = None

    def send(self, action: SendDatagram) -> None:
        """Send one core-built datagram from the unicast socket."""
        assert self._unicast is not None, "not started"
        self._unicast.sendto(action.data, action.addr)

    async def announce(self, wait_s: float | None = None) -> dict[str, object]:
        """Broadcast one announce and count replies for ``wait_s`` (default ``reply_wait_s``)."""
        nonce, dgram = self.core.announce(self.clock())
        self.send(dgram)
        await asyncio.sleep(self.core.config.reply_wait_s if wait_s is None else wait_s)
        return self.core.announce_result(nonce)

    def _on_datagram(self, data: bytes, source: Address) -> None:
        for action in self.core.receive(data, source, self.clock()):
            if isinstance(action, SendDatagram):
                if self._unicast is not None:
                    self._unicast.sendto(action.data, action.addr)
            elif isinstance(action, CandidateSeen) and self._on_candidate is not None:
                self._on_candidate(action)
