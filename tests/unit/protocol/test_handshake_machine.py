"""The handshake state machines, driven without sockets: both sides agree, or refuse with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustyray.protocol.compression import Compression
from rustyray.protocol.errors import HandshakeRefused
from rustyray.protocol.handshake import (
    ClientHandshake,
    HandshakeState,
    Hello,
    HelloAck,
    LocalEnd,
    ServerHandshake,
)

A = LocalEnd("node1", ("lz4", "zstd", "tls13"), tcp_address="127.0.0.1:7001", cluster="c")
B = LocalEnd("node2", ("zstd", "lz4", "tls13"), tcp_address="127.0.0.1:7002", cluster="c")


def run(client: LocalEnd, server: LocalEnd, *, client_cn: str | None, server_cn: str | None,
        refusal: str | None = None):
    c, s = ClientHandshake(client, expect_node=server.node_id), ServerHandshake(server)
    s.receive(c.start(), peer_cn=client_cn, tls=True)
    ack, terms = s.decide(refusal)
    return c, s, ack, terms


def test_both_sides_agree_on_the_clients_preferred_common_codec() -> None:
    c, s, ack, server_terms = run(A, B, client_cn="node1", server_cn="node2")
    client_terms = c.receive(ack, peer_cn="node2", tls=True)
    assert server_terms is not None and server_terms.peer_node_id == "node1"
    assert client_terms.peer_node_id == "node2"
    assert server_terms.compression is Compression.ZSTD  # the listener's preference order
    assert client_terms.compression is Compression.LZ4  # the dialler's preference order
    assert client_terms.peer_tcp_address == "127.0.0.1:7002"
    assert c.state is s.state is HandshakeState.ESTABLISHED


def test_a_certificate_for_another_node_is_refused_with_the_reason() -> None:
    c, s, ack, terms = run(A, B, client_cn="node9", server_cn="node2")
    assert terms is None and not ack.accepted and "node9" in ack.reason
    assert s.state is HandshakeState.REFUSED
    with pytest.raises(HandshakeRefused, match="refused"):
        c.receive(ack, peer_cn="node2", tls=True)
    assert c.state is HandshakeState.REFUSED


def test_another_cluster_and_plaintext_are_refused() -> None:
    other = LocalEnd("node1", ("lz4",), cluster="other")
    _, _, ack, terms = run(other, B, client_cn="node1", server_cn="node2")
    assert terms is None and "cluster" in ack.reason
    s = ServerHandshake(B)
    s.receive(ClientHandshake(A).start(), peer_cn=None, tls=False)
    assert s.identity_problem == "TLS is required"


def test_an_admission_refusal_wins_over_an_acceptable_hello() -> None:
    _, s, ack, terms = run(A, B, client_cn="node1", server_cn="node2", refusal="acl deny")
    assert terms is None and ack.reason == "acl deny" and s.identity_problem is None


def test_the_dialler_checks_who_answered() -> None:
    c = ClientHandshake(A, expect_node="node2")
    c.start()
    impostor = HelloAck(accepted=True, node_id="node3", capabilities=["lz4"], negotiated_protocol=1)
    with pytest.raises(HandshakeRefused, match="expected node 'node2'"):
        c.receive(impostor, peer_cn="node3", tls=True)
    c = ClientHandshake(A)
    c.start()
    with pytest.raises(HandshakeRefused, match="does not match"):
        c.receive(HelloAck(accepted=True, node_id="node2", negotiated_protocol=1), peer_cn="node3", tls=True)


def test_an_api_client_certificate_is_never_a_mesh_peer() -> None:
    """The API replica's certificate is CA-signed; it opens the node channel, never a peer session."""
    api = LocalEnd("api-1f2e3d", ("lz4", "tls13"), tcp_address="127.0.0.1:7009", cluster="c")
    _, _, ack, terms = run(api, B, client_cn="api-1f2e3d", server_cn="node2")
    assert terms is None and not ack.accepted and "API client" in ack.reason
    c = ClientHandshake(A)
    c.start()
    with pytest.raises(HandshakeRefused, match="API client"):
        c.receive(HelloAck(accepted=True, node_id="api-1f2e3d", negotiated_protocol=1), peer_cn="api-1f2e3d",
                  tls=True)


def test_frames_out_of_order_are_refused() -> None:
    s = ServerHandshake(B)
    with pytest.raises(HandshakeRefused, match="expected Hello"):
        s.receive(HelloAck(accepted=True, node_id="x"), peer_cn="x", tls=True)
    c = ClientHandshake(A)
    with pytest.raises(HandshakeRefused):
        c.receive(HelloAck(accepted=True, node_id="node2"), peer_cn=None, tls=False)  # nothing sent yet
    c.start()
    with pytest.raises(HandshakeRefused):
        c.start()


@given(addr=st.text(max_size=30))
def test_an_unparsable_advertised_address_never_establishes(addr: str) -> None:
    s = ServerHandshake(B)
    hello = Hello(node_id="node1", versions=[1], capabilities=["lz4"], tcp_address=addr, cluster="c")
    s.receive(hello, peer_cn="node1", tls=True)
    ack, terms = s.decide()
    try:
        from rustyray.protocol.addresses import parse_address

        if addr:
            parse_address(addr, field="tcp_address")
        valid = True
    except ValueError:
        valid = False
    assert (terms is not None) == valid == ack.accepted
