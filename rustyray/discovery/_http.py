"""Thin httpx helpers shared by the HTTP-based adapters: one place that maps transport errors."""

from __future__ import annotations

import json
from typing import Any

import httpx

from rustyray.discovery.errors import BackendResponseError, BackendUnavailableError


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
