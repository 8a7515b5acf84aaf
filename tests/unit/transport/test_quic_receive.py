"""A datagram whose handling raises must still transmit what was queued before the error.

Why it matters: writes made while a datagram is handled skip their own transmit and rely on the one
that ends the receive; if that transmit were skipped, an ACK or a reply would wait for the next packet.
"""

from __future__ import annotations

import pytest
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from rustyray.transport.quic import QuicFrameProtocol


class _Boom(Exception):
    pass


def _protocol() -> QuicFrameProtocol:
    quic = QuicConnection(configuration=QuicConfiguration(is_client=True, alpn_protocols=["rustyray"]))
    return QuicFrameProtocol(quic, outbound=True)


async def test_a_raising_receive_still_transmits_and_clears_receiving(monkeypatch: pytest.MonkeyPatch) -> None:
    proto = _protocol()
    seen: list[bool] = []

    def boom(*_a: object, **_k: object) -> None:
        raise _Boom

    monkeypatch.setattr(proto._quic, "receive_datagram", boom)
    monkeypatch.setattr(proto, "transmit", lambda: seen.append(proto.receiving))
    with pytest.raises(_Boom):
        proto.datagram_received(b"\x00" * 32, ("127.0.0.1", 4433))
    assert seen == [False]  # one transmit, after the receive flag is cleared
    assert proto.receiving is False


async def test_a_write_during_receive_defers_to_the_closing_transmit(monkeypatch: pytest.MonkeyPatch) -> None:
    proto = _protocol()
    transmits: list[bool] = []
    monkeypatch.setattr(proto, "transmit", lambda: transmits.append(proto.receiving))

    def handle(*_a: object, **_k: object) -> None:
        proto.conn._write(b"reply")  # a reply written while the request is handled

    monkeypatch.setattr(proto._quic, "receive_datagram", handle)
    proto.datagram_received(b"\x00" * 32, ("127.0.0.1", 4433))
    assert transmits == [False]  # the write did not transmit on its own; the receive's transmit did
    proto.conn._write(b"later")  # outside a receive, a write transmits at once
    assert transmits == [False, False]
