"""Mutual TLS for QUIC links (aioquic), RFC 9001 over RFC 8446.

Theory of operation
-------------------
aioquic (1.7.x) verifies the *server* certificate against ``cafile`` on the client, but its server never
asks for a client certificate: ``tls.Context._request_client_certificate`` exists "for test purposes only",
and when it is set the server checks only the client's CertificateVerify signature (proof of key
possession), never the chain, and accepts an empty Certificate message. ``verify_mode`` is ignored by the
server side. So ``QuicConfiguration(verify_mode=CERT_REQUIRED)`` alone does NOT give mutual TLS.

``require_client_certificate(quic)`` closes that gap for one server-side ``QuicConnection``, before it has
processed any datagram (call it from the ``create_protocol`` factory passed to ``aioquic.asyncio.serve``).
Once aioquic builds the connection's TLS context it:

* sets ``_request_client_certificate`` so the server sends CertificateRequest (RFC 8446 4.3.2);
* swaps the context's class to ``_MutualTlsContext``, which aborts the handshake with a
  ``certificate_required`` alert when the client sends no certificate, and after aioquic has checked the
  CertificateVerify signature, verifies the chain against the cluster CA and the validity dates
  (``bad_certificate`` / ``certificate_expired`` alerts). The alert becomes a QUIC CONNECTION_CLOSE with
  CRYPTO_ERROR + alert code, before any application data is accepted;
* disables session tickets on that connection: resumed (PSK) handshakes carry no client certificate.

This relies on private aioquic internals (pinned by the loopback tests in tests/unit/security, which fail
if an aioquic upgrade changes them).

On the client, pass ``server_node_id`` to ``quic_configuration``: it becomes the ``server_name`` that
aioquic checks against the server certificate's SANs (every node certificate carries ``DNS:<node_id>``),
so the handshake itself authenticates the server as that node. Without it ``aioquic.asyncio.connect``
fills ``server_name`` with the dialled host, which only works for hosts listed in the SANs. Build one
client configuration per connection: ``connect`` mutates ``server_name``.
"""

from __future__ import annotations

import ssl

from aioquic import tls
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from cryptography.x509.oid import NameOID

from rustyray.security.certificates import NodeCredentials

__all__ = ["QUIC_ALPN", "quic_configuration", "quic_peer_node_id", "require_client_certificate"]

QUIC_ALPN = "rustyray/1"


class _AlertCertificateRequired(tls.Alert):
    description = tls.AlertDescription.certificate_required


class _MutualTlsContext(tls.Context):
    """A server TLS context that insists on, and verifies, the client certificate."""

    def _server_handle_certificate(self, input_buf: tls.Buffer) -> None:
        super()._server_handle_certificate(input_buf)
        if self._peer_certificate is None:
            raise _AlertCertificateRequired("client certificate required")

    def _server_handle_certificate_verify(self, input_buf: tls.Buffer) -> None:
        super()._server_handle_certificate_verify(input_buf)  # checks the signature over the transcript
        if self._cadata is None and self._cafile is None and self._capath is None:
            # aioquic would fall back to the public certifi bundle; never trust that for cluster peers.
            raise tls.AlertInternalError("no cluster CA configured for client verification")
        assert self._peer_certificate is not None
        tls.verify_certificate(
            certificate=self._peer_certificate,
            chain=self._peer_certificate_chain,
            server_name=None,
            cadata=self._cadata,
            cafile=self._cafile,
            capath=self._capath,
        )


def quic_configuration(
    creds: NodeCredentials,
    *,
    is_client: bool,
    server_node_id: str | None = None,
    idle_timeout: float = 60.0,
) -> QuicConfiguration:
    """A ``QuicConfiguration`` carrying this node's certificate, trusting only the cluster CA.

    ``server_node_id`` (client only): the node id the client expects to reach; it is checked against the
    server certificate during the handshake. ``idle_timeout`` is seconds of silence before aioquic closes.
    Server side: also call ``require_client_certificate`` on each new connection (see module docstring).
    """
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[QUIC_ALPN],
        verify_mode=ssl.CERT_REQUIRED,
        idle_timeout=idle_timeout,
        server_name=server_node_id if is_client else None,
    )
    config.load_cert_chain(str(creds.cert_path), str(creds.key_path))
    config.load_verify_locations(cafile=str(creds.ca_path))
    return config


def require_client_certificate(quic: QuicConnection) -> None:
    """Make this server-side connection demand and verify a cluster client certificate.

    Must be called before the connection receives its first datagram (e.g. in ``create_protocol``).
    """
    assert not quic._is_client, "require_client_certificate is for server-side connections"
    original = quic._initialize

    def _initialize(peer_cid: bytes) -> None:
        original(peer_cid)
        quic.tls.__class__ = _MutualTlsContext
        quic.tls._request_client_certificate = True
        quic.tls.get_session_ticket_cb = None
        quic.tls.new_session_ticket_cb = None

    quic._initialize = _initialize  # type: ignore[method-assign]


def quic_peer_node_id(quic: QuicConnection) -> str | None:
    """The CN of the peer certificate verified during the handshake (None before it completes)."""
    tls_ctx = getattr(quic, "tls", None)
    cert = getattr(tls_ctx, "_peer_certificate", None)
    if cert is None:
        return None
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else None
