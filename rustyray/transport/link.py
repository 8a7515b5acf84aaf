"""The link: where a mesh writes frames and opens connections.

Why a seam here rather than patched methods: fault injection and test partitions
must see every frame a node writes and every dial it makes, yet the mesh must stay
one class that nobody rewires at run time. A wrapper link implements the same two
calls, keeps the link it wraps in ``inner``, and is put in front with
``Mesh.add_link`` and taken out with ``Mesh.remove_link``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from rustyray.protocol.messages import Message

if TYPE_CHECKING:
    from rustyray.transport.connection import Connection


class Link(Protocol):
    inner: Link | None

    def write(self, conn: Connection, message: Message, msg_id: int, flags: int, stream_id: int | None) -> None:
        """Write one frame on ``conn`` (it is open; the mesh checked)."""

    async def connect(self, mesh: Any, host: str, port: int, *, protocol: str, expect_node: str | None,
                      timeout: float) -> Connection:
        """Open a TCP or QUIC connection (TLS included, hello not yet exchanged)."""


class DirectLink:
    """The real thing: frames go straight to the connection, dials to the network."""

    inner: Link | None = None

    def write(self, conn: Connection, message: Message, msg_id: int, flags: int, stream_id: int | None) -> None:
        conn.send_message(message, msg_id, flags, stream_id)

    async def connect(self, mesh: Any, host: str, port: int, *, protocol: str, expect_node: str | None,
                      timeout: float) -> Connection:
        if protocol.upper() == "QUIC":
            from rustyray.transport.quic import quic_dial

            return await quic_dial(host, port, timeout=timeout,
                                   configuration=mesh.quic_client_config(server_node_id=expect_node))
        from rustyray.transport.tcp import tcp_dial

        tls = mesh.config.transport.tls
        return await tcp_dial(host, port, ssl_context=mesh.client_ssl if tls else None, timeout=timeout)


class WrapperLink:
    """Base of links that pass through to ``inner`` unless they decide otherwise."""

    def __init__(self) -> None:
        self.inner: Link | None = None

    def write(self, conn: Connection, message: Message, msg_id: int, flags: int, stream_id: int | None) -> None:
        assert self.inner is not None, "link not installed"
        self.inner.write(conn, message, msg_id, flags, stream_id)

    async def connect(self, mesh: Any, host: str, port: int, *, protocol: str, expect_node: str | None,
                      timeout: float) -> Connection:
        assert self.inner is not None, "link not installed"
        return await self.inner.connect(mesh, host, port, protocol=protocol, expect_node=expect_node,
                                        timeout=timeout)
