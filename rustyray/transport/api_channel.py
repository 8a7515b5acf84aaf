"""The management-API channel's wire format: length-prefixed msgpack frames (sans-I/O).

Why a channel of its own: the Serve replica that fronts the management API used to reach a node with one
Ray actor call per operation (1-2 ms and more under load). The node already terminates mutual TLS with the
cluster CA, so the replica keeps one pooled mTLS connection per node and sends API calls as frames that cost
what our own transport costs. It is a separate listener, not a frame type of the peer protocol, because an
API client is not a cluster member: it must not pass the peer handshake (cluster name, node-id claim,
admission filters) nor appear in the peer table, SWIM or the connection stats the API itself reports.

A frame is a 4-byte big-endian body length, then a msgpack body:

* request ``[call_id, op, service, method, kwargs]`` with ``op`` ``"call"`` (``Node.call_api``) or
  ``"info"`` (``Node.info()``; service, method and kwargs ignored);
* reply ``[call_id, reply]`` where ``reply`` is the node actor's tuple, ``["ok", result]`` or
  ``["error", kind_name, message, field]``, so both paths map errors identically.

Replies may come out of order (the server runs requests concurrently); ``call_id`` correlates them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import msgpack

__all__ = ["MAX_FRAME", "OPS", "ApiChannelError", "ApiRequest", "FrameDecoder", "encode_reply",
           "encode_request", "parse_reply", "parse_request"]

MAX_FRAME = 32 * 1024 * 1024
"""Largest body accepted (bytes): far above any API answer, small enough that a bad length is refused."""
OPS = ("call", "info")
_HEADER = struct.Struct(">I")


class ApiChannelError(ValueError):
    """A frame that breaks the format (oversized, not msgpack, wrong shape): the connection is closed."""


@dataclass(frozen=True, slots=True)
class ApiRequest:
    call_id: int
    op: str
    service: str
    method: str
    kwargs: dict[str, Any]


def _frame(body: Any) -> bytes:
    data = msgpack.packb(body, use_bin_type=True)
    if len(data) > MAX_FRAME:
        raise ApiChannelError(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
    return _HEADER.pack(len(data)) + data


def encode_request(call_id: int, op: str, service: str = "", method: str = "",
                   kwargs: dict[str, Any] | None = None) -> bytes:
    if op not in OPS:
        raise ApiChannelError(f"unknown op {op!r}")
    return _frame([call_id, op, service, method, kwargs or {}])


def encode_reply(call_id: int, reply: tuple[Any, ...] | list[Any]) -> bytes:
    return _frame([call_id, list(reply)])


def parse_request(body: Any) -> ApiRequest:
    """The request in a decoded body; ``ApiChannelError`` when it is not one (an unknown op included)."""
    if not (isinstance(body, list) and len(body) == 5):
        raise ApiChannelError("a request is [call_id, op, service, method, kwargs]")
    call_id, op, service, method, kwargs = body
    if not isinstance(call_id, int) or isinstance(call_id, bool) or call_id < 0:
        raise ApiChannelError("call_id: a non-negative integer")
    if op not in OPS:
        raise ApiChannelError(f"op: unknown {op!r}")
    if not (isinstance(service, str) and isinstance(method, str) and isinstance(kwargs, dict)
            and all(isinstance(k, str) for k in kwargs)):
        raise ApiChannelError("service and method are strings, kwargs a map with string keys")
    return ApiRequest(call_id, op, service, method, kwargs)


def parse_reply(body: Any) -> tuple[int, tuple[Any, ...]]:
    """``(call_id, reply tuple)`` of a decoded reply body; ``ApiChannelError`` when it is not one."""
    if not (isinstance(body, list) and len(body) == 2 and isinstance(body[0], int) and isinstance(body[1], list)):
        raise ApiChannelError("a reply is [call_id, reply]")
    reply = tuple(body[1])
    if not ((len(reply) == 2 and reply[0] == "ok") or (len(reply) == 4 and reply[0] == "error")):
        raise ApiChannelError("a reply is ['ok', result] or ['error', kind, message, field]")
    return body[0], reply


class FrameDecoder:
    """Bytes in, decoded msgpack bodies out (``feed``); raises ``ApiChannelError`` on a broken stream."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buf += data
        out: list[Any] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buf, pos)
            if size > self.max_frame:
                raise ApiChannelError(f"frame of {size} bytes exceeds {self.max_frame}")
            end = pos + _HEADER.size + size
            if len(buf) < end:
                break
            try:
                out.append(msgpack.unpackb(bytes(buf[pos + _HEADER.size:end]), raw=False,
                                           strict_map_key=False))
            except Exception as exc:  # msgpack raises several types (ExtraData, ValueError, ...)
                raise ApiChannelError(f"undecodable frame: {exc}") from None
            pos = end
        if pos:
            del buf[:pos]
        return out
