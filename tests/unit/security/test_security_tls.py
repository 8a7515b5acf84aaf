"""Real TLS 1.3 handshakes on 127.0.0.1 between cluster nodes and various impostors."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from rustyray.security.certificates import NodeCredentials
from rustyray.security.errors import CertificateError, PeerIdentityError, SecurityError
from rustyray.security.tls import (
    client_context,
    peer_node_id,
    server_context,
    tls_config_report,
    verify_claimed_identity,
)


class Server:
    """An mTLS server that greets each accepted peer with the CN it verified."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.accepted: list[str | None] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cn = peer_node_id(writer.get_extra_info("ssl_object"))
        self.accepted.append(cn)
        writer.write(f"hello {cn}\n".encode())
        await writer.drain()
        writer.close()

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def _exchange(port: int, ctx: ssl.SSLContext) -> tuple[bytes, str | None]:
    """Connect and read the greeting; returns (greeting, server CN seen by the client)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx), 5)
    try:
        server_cn = peer_node_id(writer.get_extra_info("ssl_object"))
        line = await asyncio.wait_for(reader.readline(), 5)
        return line, server_cn
    finally:
        writer.close()


async def _refused(port: int, ctx: ssl.SSLContext) -> bool:
    """True when the connection yields no greeting (handshake error, alert, reset or EOF)."""
    try:
        line, _ = await _exchange(port, ctx)
    except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
        return True
    return line == b""


def _tls13_client(ca: NodeCredentials | None, cert: NodeCredentials | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    if ca is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=str(ca.ca_path))
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    return ctx


def test_contexts_are_tls13_only_and_mutual(pki) -> None:
    for ctx in (server_context(pki.node1), client_context(pki.node1)):
        assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_3
        assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert client_context(pki.node1).check_hostname is False


async def test_cluster_peers_authenticate_each_other(pki) -> None:
    async with Server(server_context(pki.node1)) as srv:
        line, server_cn = await _exchange(srv.port, client_context(pki.node2))
    assert line == b"hello node2\n"
    assert server_cn == "node1"
    assert srv.accepted == ["node2"]


async def test_client_without_certificate_is_refused(pki) -> None:
    async with Server(server_context(pki.node1)) as srv:
        assert await _refused(srv.port, _tls13_client(pki.node2, None))
    assert srv.accepted == []


async def test_client_with_foreign_ca_certificate_is_refused(pki) -> None:
    async with Server(server_context(pki.node1)) as srv:
        assert await _refused(srv.port, _tls13_client(pki.node2, pki.foreign2))
    assert srv.accepted == []


async def test_client_with_expired_certificate_is_refused(pki) -> None:
    async with Server(server_context(pki.node1)) as srv:
        assert await _refused(srv.port, _tls13_client(pki.node2, pki.expired2))
    assert srv.accepted == []


async def test_client_refuses_server_from_foreign_or_expired_cert(pki) -> None:
    for bad_server in (pki.foreign2, pki.expired2):
        async with Server(server_context(bad_server)) as srv:
            with pytest.raises(ssl.SSLCertVerificationError):
                await _exchange(srv.port, client_context(pki.node1))
        assert srv.accepted == []


async def test_tls12_client_is_refused(pki) -> None:
    ctx = _tls13_client(pki.node2, pki.node2)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    async with Server(server_context(pki.node1)) as srv:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            await _exchange(srv.port, ctx)
    assert srv.accepted == []


async def test_claimed_identity_is_checked_against_cn(pki) -> None:
    checked: list[BaseException | None] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        claimed = (await reader.readline()).decode().strip()
        try:
            verify_claimed_identity(writer.get_extra_info("ssl_object"), claimed)
            checked.append(None)
        except PeerIdentityError as exc:
            checked.append(exc)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context(pki.node1))
    port = server.sockets[0].getsockname()[1]
    try:
        for claim in (b"node2\n", b"node3\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pki.node2))
            writer.write(claim)
            await writer.drain()
            await reader.read()
            writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert checked[0] is None
    assert isinstance(checked[1], PeerIdentityError) and "node3" in str(checked[1])
    assert isinstance(checked[1], SecurityError)
    with pytest.raises(PeerIdentityError):
        verify_claimed_identity(None, "node2")


def test_config_report_reflects_live_context(pki) -> None:
    ctx = server_context(pki.node1)
    report = tls_config_report(ctx, pki.node1)
    assert report["enabled"] is True and report["version"] == "TLS1.3" and report["mutual_tls"] is True
    assert "TLS_AES_256_GCM_SHA384" in report["cipher_suites"]
    assert "TLS_CHACHA20_POLY1305_SHA256" in report["cipher_suites"]
    assert all(s.startswith("TLS_") for s in report["cipher_suites"])
    assert report["certificates"] == {
        "cert": str(pki.node1.cert_path),
        "key": str(pki.node1.key_path),
        "ca": str(pki.node1.ca_path),
    }
    assert report["cert_expiry"].endswith("Z")
    assert "ECDHE-ECDSA-AES256-GCM-SHA384" not in report["cipher_suites"]  # TLS 1.2 suites are filtered out
    assert tls_config_report(None, None)["enabled"] is False


def test_missing_files_raise_certificate_error(pki, tmp_path) -> None:
    broken = NodeCredentials("x", tmp_path / "no.pem", tmp_path / "no.key", pki.node1.ca_path)
    with pytest.raises(CertificateError):
        server_context(broken)
