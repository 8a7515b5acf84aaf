"""``TlsProvider``: what the mesh needs to terminate TLS, without knowing where certificates live."""

from __future__ import annotations

from typing import Any, Protocol


class TlsProvider(Protocol):
    def load(self) -> Any:
        """The node's credentials (``cert_path``, ``key_path``, CA), created if missing."""

    def server_context(self, creds: Any) -> Any: ...

    def client_context(self, creds: Any) -> Any: ...

    def quic_configuration(self, creds: Any, *, is_client: bool, server_node_id: str | None = None) -> Any: ...

    def require_client_certificate(self, quic: Any) -> None: ...

    def peer_node_id(self, ssl_object: Any) -> str | None:
        """The node id (certificate CN) of a verified TLS peer, None without one."""

    def quic_peer_node_id(self, quic: Any) -> str | None:
        """The same for an aioquic ``QuicConnection``."""
