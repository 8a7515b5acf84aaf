"""mTLS is enforced on real loopback sockets, over TCP and QUIC, and every refusal is counted on the node.

Each rogue client below speaks our protocol correctly but lacks a valid identity: no client certificate,
a certificate from another CA, an expired certificate of the cluster CA, or a valid certificate whose CN is
not the node id it claims in its Hello. A legitimate member still connects afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from aioquic.quic.configuration import QuicConfiguration
from harness import local_cluster, wait_for

from rustyray.node import Node
from rustyray.protocol.handshake import Hello, HelloAck
from rustyray.security.certificates import ensure_cluster_ca, ensure_node_credentials, issue_node_certificate
from rustyray.security.quic_tls import QUIC_ALPN
from rustyray.transport.quic import quic_dial
from rustyray.transport.tcp import parse_address, tcp_dial

Identity = tuple[Path, Path] | None  # (cert, key) or no certificate at all


def _tcp_context(ca: Path, ident: Identity) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=str(ca))
    if ident is not None:
        ctx.load_cert_chain(str(ident[0]), str(ident[1]))
    return ctx


def _quic_config(ca: Path, ident: Identity, server: str) -> QuicConfiguration:
    cfg = QuicConfiguration(is_client=True, alpn_protocols=[QUIC_ALPN], verify_mode=ssl.CERT_REQUIRED,
                            server_name=server)
    cfg.load_verify_locations(cafile=str(ca))
    if ident is not None:
        cfg.load_cert_chain(str(ident[0]), str(ident[1]))
    return cfg


async def _attempt(target: Node, protocol: str, ca: Path, ident: Identity, claim: str) -> str:
    """Dial ``target`` as a rogue client; returns how it was refused ("tls" or the HelloAck reason)."""
    address = target.tcp_address if protocol == "TCP" else target.quic_address
    host, port = parse_address(address)
    try:
        if protocol == "TCP":
            conn = await tcp_dial(host, port, ssl_context=_tcp_context(ca, ident), timeout=3)
        else:
            conn = await quic_dial(host, port, configuration=_quic_config(ca, ident, target.node_id), timeout=3)
    except (OSError, ConnectionError, TimeoutError, ssl.SSLError):
        return "tls"
    try:
        conn.send_message(Hello(node_id=claim, tcp_address="", cluster=target.config.cluster_name), 1)
        frame = await conn.first_frame(3)
    except (ConnectionError, TimeoutError, OSError):
        return "tls"  # TLS 1.3: the server's verdict on our certificate arrives after our Finished
    finally:
        conn.abort("test done")
    ack = frame.message
    assert isinstance(ack, HelloAck)
    assert not ack.accepted, f"{protocol} connection claiming {claim} was accepted"
    return ack.reason


@pytest.mark.parametrize("protocol", ["TCP", "QUIC"])
async def test_rogue_clients_are_refused_and_counted(tmp_path: Path, protocol: str) -> None:
    async with local_cluster(2, tmp_path) as c:
        node1, node2 = c.node("node1"), c.node("node2")
        ca = node1.credentials.ca_path
        certs = node1.config.certs_dir
        other = tmp_path / "other-ca"
        ensure_cluster_ca(other)
        stranger = ensure_node_credentials(other, "node2")  # right name, wrong CA
        expired = issue_node_certificate(certs, "node2", days=1, out_cert=tmp_path / "old.pem",
                                         out_key=tmp_path / "old.key",
                                         not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
        member = (node2.credentials.cert_path, node2.credentials.key_path)
        prefix = "tls" if protocol == "TCP" else "quic"

        cases = [
            ("no certificate", None, "node2", f"{prefix}_certificate_required"),
            ("other CA", (stranger.cert_path, stranger.key_path), "node2", None),
            ("expired", (expired.cert_path, expired.key_path), "node2", None),
            ("CN differs from hello", member, "node7", "identity"),
        ]
        for label, ident, claim, reason in cases:
            before = dict(node1.stats.refusals)
            total = node1.stats.handshake_refusals
            how = await _attempt(node1, protocol, ca, ident, claim)
            await wait_for(lambda total=total: node1.stats.handshake_refusals > total, 5)
            grown = {k for k, v in node1.stats.refusals.items() if v > before.get(k, 0)}
            assert grown, f"{label}: refusal not counted"
            if reason is not None:
                assert reason in grown, (label, grown)
            if label == "CN differs from hello":
                assert how.startswith("certificate CN 'node2' does not match"), how
            else:
                assert how == "tls", (label, how)
                assert all(k.startswith(prefix + "_") for k in grown), (label, grown)
        counted = node1.stats.refusals
        assert any("unknown_ca" in k or "bad_certificate" in k for k in counted), counted
        assert any("expired" in k or "bad_certificate" in k for k in counted), counted

        # the API reports the same counts
        report = (await c.client.get("/security/tls/config", params={"node": "node1"})).json()
        assert report["refusals"]["total"] == node1.stats.handshake_refusals >= 4
        assert report["refusals"]["by_reason"] == dict(node1.stats.refusals)

        # a legitimate member still connects, on the same transport
        host, port = parse_address(node1.tcp_address if protocol == "TCP" else node1.quic_address)
        conn, ack = await node2.dial(host, port, protocol=protocol, expect_node="node1")
        assert ack.accepted and ack.node_id == "node1" and conn.tls_version is not None
        conn.close("done")


async def test_refusals_do_not_disturb_live_links(tmp_path: Path) -> None:
    async with local_cluster(2, tmp_path) as c:
        node1 = c.node("node1")
        ca = node1.credentials.ca_path
        results = await asyncio.gather(*(_attempt(node1, p, ca, None, "node2") for p in ("TCP", "QUIC")))
        assert results == ["tls", "tls"]
        from rustyray.protocol.control import Echo, EchoReply

        reply = await node1.request("node2", Echo(data=b"still here"), timeout=3)
        assert isinstance(reply, EchoReply) and reply.data == b"still here"
