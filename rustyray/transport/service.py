"""Transport service: live connects over TCP and QUIC, frame encoding and handshakes.

Backs NETWORKING-001 (TCP connect), 002 (QUIC connect), 005 (protocol encode) and
006 (handshake). Connects are real dials from this node, including TLS and the
hello exchange; connections opened through the API are kept (so they show in the
pool and multiplexing statistics) up to ``API_CONNECTION_LIMIT``, oldest closed first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.transport.api_adapter import TransportApi
from rustyray.transport.health import TransportHealth

if TYPE_CHECKING:
    from rustyray.transport.api import Host

API_CONNECTION_LIMIT = 64


class TransportService:
    def __init__(self, node: Host, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.api_connections: OrderedDict[str, Any] = OrderedDict()
        self._health = TransportHealth()
        self._clock = clock
        self.api = TransportApi(self)

    def keep(self, conn: Any) -> None:
        """Hold a connection the API opened (so it shows in the pool and stream views), oldest closed first."""
        self.api_connections[conn.conn_id] = conn
        while len(self.api_connections) > API_CONNECTION_LIMIT:
            _, old = self.api_connections.popitem(last=False)
            old.close("api connection limit")

    def health(self) -> tuple[str, str]:
        """Listeners bound, loops alive, error ratio: judged by ``transport.health``."""
        return self._health.observe(self.node.transport_sample(), self._clock())

    async def stop(self) -> None:
        for conn in self.api_connections.values():
            conn.close("node stopping")
