"""The transport's management operations (NETWORKING-001, 002, 004, 005, 006): ``TransportApi``.

An adapter, not a core: ``connect`` dials for real and times it. Why a facade apart from
``TransportService``: the service owns what outlives a call (the connections
the API opened); the operations, their checks and their answers (``api_types``) live here, and
``Node.call_api("transport", op, kwargs)`` reaches them as ``TransportService.api.<op>``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import msgspec

from rustyray.errors import forbidden, payload_too_large, unprocessable
from rustyray.protocol.compression import Compression
from rustyray.protocol.control import AppMessage
from rustyray.protocol.errors import ProtocolError
from rustyray.protocol.frame import MAX_FRAME_SIZE, FrameDecoder, encode_payload
from rustyray.protocol.handshake import SUPPORTED_VERSIONS, Hello, answer_hello, validate_capabilities
from rustyray.protocol.messages import all_message_types, encode_message
from rustyray.transport.api_types import (
    CheckDialRequest,
    Connected,
    ConnectFailed,
    ConnectionsList,
    ConnectRequest,
    DialAllowed,
    EncodeRequest,
    EncodeResult,
    HandshakeRequest,
    HandshakeResult,
)
from rustyray.transport.tcp import format_address

if TYPE_CHECKING:
    from rustyray.transport.service import TransportService

__all__ = ["TransportApi"]


class TransportApi:
    """One method per management operation of the transport."""

    def __init__(self, service: TransportService) -> None:
        self._svc = service
        self.node = service.node

    async def connect(self, req: ConnectRequest) -> Connected | ConnectFailed:
        """Dial ``host:port`` for real and report the outcome (failure is ``success: false``)."""
        protocol, host, port = req.protocol, req.host, req.port
        refusal = self.node.dial_policy.refusal(host)
        if refusal is not None:
            raise forbidden(f"not dialled: {refusal}", "host")
        start = time.perf_counter()
        try:
            conn, ack = await self.node.dial(host, port, protocol=protocol, expect_node=req.node_id)
        except (ConnectionError, OSError) as exc:
            return ConnectFailed(success=False, protocol=protocol, state="Failed",
                                 address=format_address(host, port), error=str(exc),
                                 latency_ms=round((time.perf_counter() - start) * 1000, 3))
        self._svc.keep(conn)
        return Connected(
            success=True,
            connection_id=conn.conn_id,
            state="Connected",
            protocol=protocol,
            encrypted=conn.tls_version is not None,
            tls_version=conn.tls_version,
            node_id=ack.node_id,
            peer_address=conn.peer_address,
            local_address=conn.local_address,
            negotiated_protocol=ack.negotiated_protocol,
            compression=conn.compression.api_name,
            latency_ms=round((time.perf_counter() - start) * 1000, 3),
        )

    def check_dial(self, req: CheckDialRequest) -> DialAllowed:
        """Refuse (403) any host this node's dial policy forbids, before anything is dialled."""
        for host in req.hosts:
            refusal = self.node.dial_policy.refusal(host)
            if refusal is not None:
                raise forbidden(f"not dialled: {refusal}", req.field)
        return DialAllowed(allowed=True)

    def connections_list(self) -> ConnectionsList:
        conns = [c.describe() for c in self.node.connections.values()]
        return ConnectionsList(node=self.node.node_id, connections=conns, total=len(conns))

    def encode(self, req: EncodeRequest) -> EncodeResult:
        """Encode a real frame with the node's codec and decode it back to prove the round trip."""
        message_type, compression, message_id = req.message_type, req.compression, req.message_id
        try:
            codec = Compression.from_name(compression)
        except ValueError as exc:
            raise unprocessable(str(exc), "compression") from None
        data = req.data or {}
        types = {t.__name__: t for t in all_message_types()}
        wire_type = types.get(message_type)
        try:
            if wire_type is not None:
                message = msgspec.convert({**data, "type": message_type}, wire_type)
            else:
                message = AppMessage(message_type=message_type, data=data)
            raw = encode_message(message)
        except msgspec.ValidationError as exc:
            raise unprocessable(f"data does not fit {message_type}: {exc}", "data") from None
        except (TypeError, msgspec.EncodeError) as exc:
            raise unprocessable(f"data cannot be encoded: {exc}", "data") from None
        if len(raw) > MAX_FRAME_SIZE:
            msg = f"message of {len(raw)} bytes exceeds the {MAX_FRAME_SIZE} byte frame limit"
            raise payload_too_large(msg, "data")
        mid = message_id if message_id is not None else self.node.next_id()
        try:
            frame = encode_payload(raw, mid, compression=codec, always_compress=True)
        except ProtocolError as exc:
            raise payload_too_large(str(exc), "data") from None
        packed_size = len(frame) - 18
        decoder = FrameDecoder()
        decoder.feed(frame)
        back = decoder.next_frame()
        assert back is not None and back.message == message
        return EncodeResult(
            encoded_size=len(frame),
            payload_size=len(raw),
            compressed_payload_size=packed_size,
            compression=codec.api_name,
            compression_ratio=round(packed_size / len(raw), 4) if raw else 1.0,
            checksum=format(int.from_bytes(frame[-4:], "big"), "08x"),
            message_id=mid,
            message_type=message_type,
            wire_type=type(message).__name__,
            header_hex=frame[:14].hex(),
            round_trip=True,
        )

    def handshake(self, req: HandshakeRequest) -> HandshakeResult:
        """Run this node's listener-side negotiation against the offered hello."""
        try:
            caps = validate_capabilities(req.capabilities)
        except ValueError as exc:
            raise unprocessable(str(exc), "capabilities") from None
        hello = Hello(node_id=req.node_id, protocol_version=req.protocol_version, capabilities=caps)
        ack, _result = answer_hello(hello, node_id=self.node.node_id, local_caps=self.node.capabilities,
                                   tcp_address=self.node.tcp_address, quic_address=self.node.quic_address)
        return HandshakeResult(
            accepted=ack.accepted,
            peer_capabilities=list(self.node.capabilities),
            negotiated_protocol=ack.negotiated_protocol if ack.accepted else None,
            compression=ack.compression if ack.accepted else None,
            peer_node=self.node.node_id,
            supported_versions=list(SUPPORTED_VERSIONS),
            reason=None if ack.accepted else ack.reason,
        )

