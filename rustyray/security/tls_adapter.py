"""A node's TLS material: the cluster CA, its own certificate, and the contexts built from them.

Why a provider object: the mesh (``rustyray.transport``) terminates TLS but must not know
where certificates come from or how contexts are built; it asks this provider, which the
composition root (``rustyray.node``) hands it. That keeps transport below security, and a
different source of certificates (enrolment over Ray, an external PKI) is one more provider.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from rustyray.security.certificates import NodeCredentials, ensure_cluster_ca, ensure_node_credentials
from rustyray.security.quic_tls import quic_configuration, quic_peer_node_id, require_client_certificate
from rustyray.security.tls import client_context, peer_node_id, server_context


class ClusterTls:
    """Credentials under ``certs_dir`` (created with the cluster CA when missing)."""

    def __init__(self, certs_dir: Path, node_id: str) -> None:
        self.certs_dir = certs_dir
        self.node_id = node_id

    def load(self) -> NodeCredentials:
        ensure_cluster_ca(self.certs_dir)
        return ensure_node_credentials(self.certs_dir, self.node_id)

    def server_context(self, creds: NodeCredentials) -> ssl.SSLContext:
        return server_context(creds)

    def client_context(self, creds: NodeCredentials) -> ssl.SSLContext:
        return client_context(creds)

    def quic_configuration(self, creds: NodeCredentials, *, is_client: bool,
                           server_node_id: str | None = None) -> Any:
        return quic_configuration(creds, is_client=is_client, server_node_id=server_node_id)

    def require_client_certificate(self, quic: Any) -> None:
        require_client_certificate(quic)

    def peer_node_id(self, ssl_object: Any) -> str | None:
        return peer_node_id(ssl_object)

    def quic_peer_node_id(self, quic: Any) -> str | None:
        return quic_peer_node_id(quic)
