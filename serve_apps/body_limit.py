"""A cap on request bodies, before any route reads them.

Why here and not in each model: FastAPI reads the whole body before validation, so a
client could make a replica buffer gigabytes just to be told 422. The largest legitimate
body is a message of up to the 16 MiB frame limit for ``/protocol/encode`` (one over it
gets that route's own 413 naming ``data``), so the cap sits a little above. A declared
``Content-Length`` over the cap is refused at once; a chunked body is counted as it
streams and refused when it crosses the cap. Either way the answer is the API's JSON error.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rustyray.errors import DomainError, ErrorKind
from serve_apps.errors import error_body, http_status

#: Largest request body accepted, in bytes (JSON of a 16 MiB frame's data fits; gigabytes do not).
MAX_BODY_BYTES = 20 << 20


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Pure ASGI middleware (no buffering of its own): HTTP only; WebSockets pass through."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, declared)
            return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, seen)

    async def _refuse(self, send: Send, size: int) -> None:
        exc = DomainError(ErrorKind.PAYLOAD_TOO_LARGE,
                          f"request body of {size}+ bytes exceeds the {self.max_bytes} byte limit", "body")
        body = json.dumps(error_body(exc)).encode()
        await send({"type": "http.response.start", "status": http_status(exc),
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
