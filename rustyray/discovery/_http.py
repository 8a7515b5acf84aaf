"""Thin httpx helpers shared by the HTTP-based adapters: one place that maps transport errors."""

from __future__ import annotations

import json
from typing import Any

import httpx

from rustyray.discovery.errors import BackendResponseError, BackendUnavailableError


class HttpBackend:
    """A backend adapter that talks HTTP through one ``httpx.AsyncClient``: the one it is given (the caller's
    to close) or one it opens itself (``_open_client``) and closes in ``aclose``. ``config`` is validated first."""

    def __init__(self, config: Any, client: httpx.AsyncClient | None) -> None:
        config.validate()
        self.config = config
        self._own_client = client is None
        self._client = client or self._open_client()

    def _open_client(self) -> httpx.AsyncClient:
        """The client opened when none is given: the config's ``request_timeout_s`` for every request."""
        return httpx.AsyncClient(timeout=self.config.request_timeout_s)

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_client:
            await self._client.aclose()


async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send a request; transport failures become BackendUnavailableError, >=400 BackendResponseError."""
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise BackendUnavailableError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
    if response.status_code >= 400:
        raise BackendResponseError(
            f"{method} {url} -> HTTP {response.status_code}: {response.text[:300]}", response.status_code
        )
    return response


def decode_json(response: httpx.Response) -> Any:
    """The JSON body, or BackendResponseError when it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackendResponseError(
            f"{response.request.method} {response.request.url}: body is not JSON: {response.text[:200]!r}",
            response.status_code,
        ) from exc


async def send_json(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    """:func:`send` then :func:`decode_json`."""
    return decode_json(await send(client, method, url, **kwargs))
