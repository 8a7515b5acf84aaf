"""Transport service: live connects over TCP and QUIC, frame encoding and handshakes.

Backs NETWORKING-001 (TCP connect), 002 (QUIC connect), 005 (protocol encode) and
006 (handshake). Connects are real dials from this node, including TLS and the
hello exchange; connections opened through the API are kept (so they show in the
pool and multiplexing statistics) up to ``API_CONNECTION_LIMIT``, oldest closed first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from rustyray.errors import forbidden, payload_too_large, unprocessable
from rustyray.protocol.compression import Compression
from rustyray.protocol.control import AppMessage
from rustyray.protocol.errors import ProtocolError
from rustyray.protocol.frame import MAX_FRAME_SIZE, FrameDecoder, encode_payload
from rustyray.protocol.handshake import SUPPORTED_VERSIONS, Hello, answer_hello, validate_capabilities
from rustyray.protocol.messages import all_message_types, encode_message
from rustyray.transport.health import TransportHealth
from rustyray.transport.tcp import format_address

if TYPE_CHECKING:
    from rustyray.transport.api import Host

API_CONNECTION_LIMIT = 64


class TransportService:
    def __init__(self, node: Host, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.api_connections: OrderedDict[str, Any] = OrderedDict()
        self._health = TransportHealth()
        self._clock = clock

    def health(self) -> tuple[str, str]:
        """Listeners bound, loops alive, error ratio: judged by ``transport.health``."""
        return self._health.observe(self.node.transport_sample(), self._clock())

    async def stop(self) -> None:
        for conn in self.api_connections.values():
            conn.close("node stopping")

    async def api_connect(self, protocol: str, host: str, port: int, node_id: str | None = None) -> dict[str, Any]:
        """Dial ``host:port`` for real and report the outcome (failure is ``success: false``)."""
        if not 1 <= port <= 65535:
            raise unprocessable("port must be between 1 and 65535", "port")
        if not host:
            raise unprocessable("host must not be empty", "host")
        refusal = self.node.dial_policy.refusal(host)
        if refusal is not None:
            raise forbidden(f"not dialled: {refusal}", "host")
        start = time.perf_counter()
        try:
            conn, ack = await self.node.dial(host, port, protocol=protocol, expect_node=node_id)
        except (ConnectionError, OSError) as exc:
            return {"success": False, "protocol": protocol, "state": "Failed",
                    "address": format_address(host, port), "error": str(exc),
                    "latency_ms": round((time.perf_counter() - start) * 1000, 3)}
        self.api_connections[conn.conn_id] = conn
        while len(self.api_connections) > API_CONNECTION_LIMIT:
            _, old = self.api_connections.popitem(last=False)
            old.close("api connection limit")
        return {
            "success": True,
            "connection_id": conn.conn_id,
            "state": "Connected",
            "protocol": protocol,
            "encrypted": conn.tls_version is not None,
            "tls_version": conn.tls_version,
            "node_id": ack.node_id,
            "peer_address": conn.peer_address,
            "local_address": conn.local_address,
            "negotiated_protocol": ack.negotiated_protocol,
            "compression": conn.compression.api_name,
            "latency_ms": round((time.perf_counter() - start) * 1000, 3),
        }

    def api_check_dial(self, hosts: list[str], field: str = "host") -> dict[str, Any]:
        """Refuse (403) any host this node's dial policy forbids, before anything is dialled."""
        for host in hosts:
            refusal = self.node.dial_policy.refusal(host)
            if refusal is not None:
                raise forbidden(f"not dialled: {refusal}", field)
        return {"allowed": True}

    def api_connections_list(self) -> dict[str, Any]:
        conns = [c.describe() for c in self.node.connections.values()]
        return {"node": self.node.node_id, "connections": conns, "total": len(conns)}

    def api_encode(self, message_type: str, compression: str = "none", data: dict[str, Any] | None = None,
                   message_id: int | None = None) -> dict[str, Any]:
        """Encode a real frame with the node's codec and decode it back to prove the round trip."""
        try:
            codec = Compression.from_name(compression)
        except ValueError as exc:
            raise unprocessable(str(exc), "compression") from None
        data = data or {}
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
        return {
            "encoded_size": len(frame),
            "payload_size": len(raw),
            "compressed_payload_size": packed_size,
            "compression": codec.api_name,
            "compression_ratio": round(packed_size / len(raw), 4) if raw else 1.0,
            "checksum": format(int.from_bytes(frame[-4:], "big"), "08x"),
            "message_id": mid,
            "message_type": message_type,
            "wire_type": type(message).__name__,
            "header_hex": frame[:14].hex(),
            "round_trip": True,
        }

    def api_handshake(self, node_id: str, protocol_version: int, capabilities: list[str]) -> dict[str, Any]:
        """Run this node's listener-side negotiation against the offered hello."""
        try:
            caps = validate_capabilities(capabilities)
        except ValueError as exc:
            raise unprocessable(str(exc), "capabilities") from None
        hello = Hello(node_id=node_id, protocol_version=protocol_version, capabilities=caps)
        ack, _result = answer_hello(hello, node_id=self.node.node_id, local_caps=self.node.capabilities,
                                   tcp_address=self.node.tcp_address, quic_address=self.node.quic_address)
        out: dict[str, Any] = {
            "accepted": ack.accepted,
            "peer_capabilities": list(self.node.capabilities),
            "negotiated_protocol": ack.negotiated_protocol if ack.accepted else None,
            "compression": ack.compression if ack.accepted else None,
            "peer_node": self.node.node_id,
            "supported_versions": list(SUPPORTED_VERSIONS),
        }
        if not ack.accepted:
            out["reason"] = ack.reason
        return out

