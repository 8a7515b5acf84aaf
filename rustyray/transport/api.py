"""``Host``: what a subsystem service may ask of the node it runs on.

Why a protocol: services are written against these transport verbs, not against
the composition root (``rustyray.node``), so no service imports the node and the
node alone decides which services exist and how they are wired. ``Mesh``
(``rustyray.transport.mesh``) is the one implementation; tests may pass a fake.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio
    import random
    from collections.abc import Awaitable
    from pathlib import Path

    from rustyray.protocol.messages import Message
    from rustyray.transport.config import HeartbeatSettings, TransportConfig
    from rustyray.transport.connection import Connection
    from rustyray.transport.health import TransportSample
    from rustyray.transport.mesh import Handler, NodeStats, Peer, RequestContext  # noqa: F401 (re-exported for services)

__all__ = ["Host", "NodeSettings"]


class NodeSettings(Protocol):
    """What a node's config offers (``rustyray.config.NodeConfig`` is the one implementation)."""

    node_id: str
    cluster_name: str
    state_dir: str
    transport: TransportConfig
    heartbeat: HeartbeatSettings
    seeds: tuple[str, ...]
    bootstrap_members: tuple[str, ...]
    cluster: Any
    """The typed config of every subsystem (``rustyray.config.ClusterConfig``)."""

    @property
    def node_dir(self) -> Path: ...

    @property
    def certs_dir(self) -> Path: ...

    def section(self, name: str) -> dict[str, Any]: ...

    def validate(self) -> None: ...


class Host(Protocol):
    config: NodeSettings
    node_id: str
    rng: random.Random
    stats: NodeStats
    peers: dict[str, Peer]
    connections: dict[str, Connection]
    incarnation: int
    running: bool
    stopping: bool
    ready: asyncio.Event

    @property
    def tcp_address(self) -> str: ...

    @property
    def quic_address(self) -> str: ...

    @property
    def capabilities(self) -> list[str]: ...

    def on(self, msg_type: type[Message], handler: Handler) -> None: ...

    def spawn(self, coro: Awaitable[Any], *, name: str = "") -> asyncio.Task[Any]: ...

    def send_on(self, conn: Connection | None, message: Message, *, msg_id: int | None = None,
                flags: int = 0, stream_id: int | None = None) -> int: ...

    async def send(self, peer_id: str, message: Message, *, priority: int = 1) -> int: ...

    async def request(self, peer_id: str, message: Message, *, timeout: float | None = None,
                      priority: int = 1) -> Message: ...

    async def request_on(self, conn: Connection, message: Message, *, timeout: float | None = None,
                         priority: int = 1, stream_id: int | None = None) -> Message: ...

    async def request_members(self, message: Message, *, timeout: float = 2.0,
                              peers: list[str] | None = None) -> dict[str, Message | Exception]: ...

    async def connection_to(self, peer_id: str, *, timeout: float | None = None) -> Connection: ...

    async def dial(self, host: str, port: int, *, protocol: str = "TCP", expect_node: str | None = None,
                   timeout: float | None = None) -> tuple[Connection, Any]: ...

    def learn_peer(self, node_id: str, tcp_address: str, quic_address: str = "",
                   incarnation: int = 0) -> Peer: ...

    def forget_peer(self, node_id: str) -> None: ...

    def live_members(self) -> list[str]: ...

    def stats_snapshot(self) -> dict[str, Any]: ...

    def transport_sample(self) -> TransportSample: ...
