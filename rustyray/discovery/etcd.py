"""etcd discovery adapter (NETWORKING-023) over the v3 JSON gateway with httpx.

Registration = lease grant + put(key, value, lease) + a keepalive every third of the TTL; if a
keepalive finds the lease gone (TTL 0, e.g. after a long pause) the node registers again with a fresh
lease. ``watch()`` lists the prefix, then streams ``/v3/watch`` from the next revision and turns puts and
deletes into JOIN/LEAVE events; a compacted start revision triggers a re-list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from rustyray._aio import cancel_and_wait
from rustyray.discovery._http import HttpBackend, send_json
from rustyray.discovery.config import EtcdDiscoveryConfig
from rustyray.discovery.errors import BackendResponseError, BackendUnavailableError
from rustyray.discovery.etcd_records import (
    as_int,
    b64encode,
    build_etcd_result,
    check_gateway_error,
    encode_node_value,
    header_revision,
    node_key,
    parse_watch_message,
    prefix_range_end,
)
from rustyray.discovery.model import Candidate, DiscoveryEvent, DiscoveryResult, diff_candidates


@dataclass
class EtcdRegistration:
    """A live self-registration; ``lease_id`` changes if the lease had to be re-granted."""

    node_id: str
    key: str
    value: bytes
    lease_id: int
    ttl_s: int
    keepalives: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class EtcdDiscovery(HttpBackend):
    """Lists, registers in and watches one etcd key prefix."""

    name = "etcd"

    def __init__(
        self,
        config: EtcdDiscoveryConfig,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(config, client)
        self._sleep = sleep
        self._registrations: dict[str, EtcdRegistration] = {}
        self._watch_endpoint = 0

    # -- plumbing -------------------------------------------------------------------------------
    async def _call(self, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        last: BackendUnavailableError | None = None
        for endpoint in self.config.endpoints:
            try:
                body = await send_json(self._client, "POST", endpoint.rstrip("/") + path, json=payload)
            except BackendUnavailableError as exc:
                last = exc
                continue
            check_gateway_error(body, path)
            return body
        assert last is not None
        raise last

    # -- discovery ------------------------------------------------------------------------------
    async def discover(self) -> DiscoveryResult:
        """Every registration under the prefix, with the store revision it was read at."""
        prefix = self.config.key_prefix.encode()
        body = await self._call(
            "/v3/kv/range", {"key": b64encode(prefix), "range_end": b64encode(prefix_range_end(prefix))}
        )
        return build_etcd_result(body, self.config.key_prefix)

    # -- registration ---------------------------------------------------------------------------
    async def register(
        self, node_id: str, host: str, port: int, meta: Mapping[str, Any] | None = None, *, keepalive: bool = True
    ) -> dict[str, Any]:
        """Put ``<prefix><node_id>`` on a fresh lease and keep the lease alive in the background.

        Returns ``{"registered": True, "key", "lease_id": int, "ttl_seconds": int, "revision": int}``.
        """
        await self.deregister(node_id)
        reg = EtcdRegistration(
            node_id=node_id,
            key=node_key(self.config.key_prefix, node_id),
            value=encode_node_value(node_id, host, port, meta),
            lease_id=0,
            ttl_s=self.config.lease_ttl_s,
        )
        revision = await self._grant_and_put(reg)
        if keepalive:
            reg.task = asyncio.create_task(self._keepalive_loop(reg), name=f"etcd-keepalive-{node_id}")
        self._registrations[node_id] = reg
        return {
            "registered": True,
            "key": reg.key,
            "lease_id": reg.lease_id,
            "ttl_seconds": reg.ttl_s,
            "revision": revision,
        }

    async def _grant_and_put(self, reg: EtcdRegistration) -> int:
        grant = await self._call("/v3/lease/grant", {"TTL": str(self.config.lease_ttl_s)})
        reg.lease_id = as_int(grant.get("ID"), "ID")
        reg.ttl_s = as_int(grant.get("TTL"), "TTL") or self.config.lease_ttl_s
        put = await self._call(
            "/v3/kv/put", {"key": b64encode(reg.key), "value": b64encode(reg.value), "lease": str(reg.lease_id)}
        )
        return header_revision(put)

    async def keepalive_once(self, node_id: str) -> int:
        """Renew ``node_id``'s lease now; re-register if it had expired. Returns the remaining TTL."""
        reg = self._registrations[node_id]
        body = await self._call("/v3/lease/keepalive", {"ID": str(reg.lease_id)})
        result = body.get("result", body)
        ttl = as_int(result.get("TTL"), "TTL")
        if ttl <= 0:  # lease gone: its key went with it, so put it back
            await self._grant_and_put(reg)
            ttl = reg.ttl_s
        reg.keepalives += 1
        return ttl

    async def _keepalive_loop(self, reg: EtcdRegistration) -> None:
        while True:
            await self._sleep(max(reg.ttl_s / 3, 0.1))
            with contextlib.suppress(BackendUnavailableError, BackendResponseError):
                await self.keepalive_once(reg.node_id)

    async def deregister(self, node_id: str) -> bool:
        """Stop renewing, revoke the lease and delete the key. False if ``node_id`` was not registered."""
        reg = self._registrations.pop(node_id, None)
        if reg is None:
            return False
        if reg.task is not None:
            await cancel_and_wait([reg.task], 1.0, owner="etcd deregister")
        with contextlib.suppress(BackendResponseError):  # already expired is fine
            await self._call("/v3/lease/revoke", {"ID": str(reg.lease_id)})
        await self._call("/v3/kv/deleterange", {"key": b64encode(reg.key)})
        return True

    def registration(self, node_id: str) -> EtcdRegistration | None:
        """The live registration of ``node_id``, if any."""
        return self._registrations.get(node_id)

    # -- watch ----------------------------------------------------------------------------------
    async def watch(self) -> AsyncIterator[DiscoveryEvent]:
        """JOIN for every node listed now, then JOIN/LEAVE as keys are put/deleted; runs until closed."""
        known: dict[str, Candidate] = {}
        revision = 0
        while True:
            if revision == 0:  # (re-)list and diff
                result = await self.discover()
                listed = {c.meta["key"]: c for c in result.candidates}
                for event in diff_candidates(known.values(), listed.values()):
                    yield event
                known = listed
                revision = int(result.body["revision"])
            try:
                async for message in self._watch_stream(revision + 1):
                    if message.compact_revision:
                        revision = 0
                        break
                    for change in message.changes:
                        before = list(known.values())
                        if change.kind == "delete":
                            known.pop(change.key, None)
                        else:
                            assert change.candidate is not None
                            known[change.key] = change.candidate
                        for event in diff_candidates(before, known.values()):
                            yield event
                        revision = max(revision, change.mod_revision)
            except BackendUnavailableError:
                pass
            await self._sleep(self.config.watch_retry_s)

    async def _watch_stream(self, start_revision: int) -> AsyncIterator[Any]:
        prefix = self.config.key_prefix.encode()
        request = {
            "create_request": {
                "key": b64encode(prefix),
                "range_end": b64encode(prefix_range_end(prefix)),
                "start_revision": str(start_revision),
            }
        }
        endpoints = self.config.endpoints
        url = endpoints[self._watch_endpoint % len(endpoints)].rstrip("/") + "/v3/watch"
        timeout = httpx.Timeout(self.config.request_timeout_s, read=None)
        try:
            async with self._client.stream("POST", url, json=request, timeout=timeout) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise BackendResponseError(f"etcd watch -> HTTP {response.status_code}", response.status_code)
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    try:
                        payload = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise BackendResponseError(f"etcd watch: bad JSON line {line[:200]!r}") from exc
                    yield parse_watch_message(payload, self.config.key_prefix)
        except httpx.TransportError as exc:
            self._watch_endpoint += 1  # next attempt tries the next member
            raise BackendUnavailableError(f"etcd watch {url}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Deregister everything this client registered and close its HTTP client."""
        for node_id in list(self._registrations):
            with contextlib.suppress(BackendUnavailableError, BackendResponseError):
                await self.deregister(node_id)
        await super().aclose()
