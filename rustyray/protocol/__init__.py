"""Wire protocol: frames, messages, compression and handshake (sans-I/O)."""

from rustyray.protocol.compression import Compression
from rustyray.protocol.control import Echo, EchoReply, ErrorReply, Goodbye, Heartbeat, Oneway
from rustyray.protocol.errors import HandshakeRefused, LocalProtocolError, ProtocolError, RemoteProtocolError
from rustyray.protocol.frame import MAX_FRAME_SIZE, Flags, Frame, FrameDecoder, encode_frame, encode_payload
from rustyray.protocol.handshake import PROTOCOL_VERSION, Hello, HelloAck, Negotiated, answer_hello, negotiate
from rustyray.protocol.messages import Message, decode_message, encode_message

__all__ = [
    "MAX_FRAME_SIZE", "PROTOCOL_VERSION", "Compression", "Echo", "EchoReply", "ErrorReply", "Flags", "Frame",
    "FrameDecoder", "Goodbye", "HandshakeRefused", "Heartbeat", "Hello", "HelloAck", "LocalProtocolError", "Message",
    "Negotiated", "Oneway", "ProtocolError", "RemoteProtocolError", "answer_hello", "decode_message",
    "encode_frame", "encode_message", "encode_payload", "negotiate",
]
