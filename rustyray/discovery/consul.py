"""Consul discovery adapter (NETWORKING-022): the local agent's HTTP API over httpx.

``register`` puts the service with a TTL check and marks it passing every third of the TTL;
``discover`` reads the passing instances (optionally as a blocking query); ``watch`` chains blocking
queries and yields JOIN/LEAVE as instances pass or fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import httpx

from rustyray._aio import cancel_and_wait
from rustyray.discovery._http import HttpBackend, decode_json, send
from rustyray.discovery.config import ConsulDiscoveryConfig
from rustyray.discovery.consul_records import (
    build_consul_result,
    check_id,
    next_index,
    parse_index,
    registration_body,
    service_id,
)
from rustyray.discovery.errors import BackendResponseError, BackendUnavailableError
from rustyray.discovery.model import Candidate, DiscoveryEvent, DiscoveryResult, diff_candidates


class ConsulDiscovery(HttpBackend):
    """Registers nodes with a Consul agent and reads the passing ones back."""

    name = "consul"

    def __init__(
        self,
        config: ConsulDiscoveryConfig,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(config, client)
        self._headers = {"X-Consul-Token": config.token} if config.token else {}
        self._sleep = sleep
        self._ttl_tasks: dict[str, asyncio.Task[None]] = {}

    def _url(self, path: str) -> str:
        return self.config.address.rstrip("/") + path

    # -- registration ---------------------------------------------------------------------------
    async def register(
        self,
        node_id: str,
        host: str,
        port: int,
        tags: Iterable[str] | None = None,
        meta: Mapping[str, str] | None = None,
        *,
        keep_passing: bool = True,
    ) -> dict[str, Any]:
        """Register ``<service>-<node_id>``, mark its check passing, keep it passing.

        Returns the NETWORKING-022 body ``{"registered": true, "service_id", "consul_index"}``.
        """
        body = registration_body(
            self.config.service_name,
            node_id,
            host,
            port,
            tags=[*self.config.tags, *(tags or ())],
            meta=meta,
            check_ttl_s=self.config.check_ttl_s,
            deregister_critical_after_s=self.config.deregister_critical_after_s or None,
        )
        sid = body["ID"]
        await send(self._client, "PUT", self._url("/v1/agent/service/register"), json=body, headers=self._headers)
        await self.pass_check(node_id)
        self._stop_ttl_task(sid)
        if keep_passing:
            self._ttl_tasks[sid] = asyncio.create_task(self._ttl_loop(node_id), name=f"consul-ttl-{sid}")
        index = (await self.discover()).body["consul_index"]
        return {"registered": True, "service_id": sid, "consul_index": index}

    async def pass_check(self, node_id: str, note: str = "") -> None:
        """Mark the node's TTL check passing now."""
        sid = service_id(self.config.service_name, node_id)
        params = {"note": note} if note else None
        url = self._url(f"/v1/agent/check/pass/{check_id(sid)}")
        await send(self._client, "PUT", url, params=params, headers=self._headers)

    async def _ttl_loop(self, node_id: str) -> None:
        while True:
            await self._sleep(self.config.check_ttl_s / 3)
            with contextlib.suppress(BackendUnavailableError, BackendResponseError):
                await self.pass_check(node_id)

    def _stop_ttl_task(self, sid: str) -> asyncio.Task[None] | None:
        task = self._ttl_tasks.pop(sid, None)
        if task is not None:
            task.cancel()
        return task

    async def deregister(self, node_id: str) -> dict[str, Any]:
        """Stop keeping the check passing and remove the registration from the agent."""
        sid = service_id(self.config.service_name, node_id)
        task = self._stop_ttl_task(sid)
        if task is not None:
            await cancel_and_wait([task], 1.0, owner="consul deregister")
        await send(self._client, "PUT", self._url(f"/v1/agent/service/deregister/{sid}"), headers=self._headers)
        return {"deregistered": True, "service_id": sid}

    # -- discovery ------------------------------------------------------------------------------
    async def discover(self, index: int = 0, wait_s: float | None = None) -> DiscoveryResult:
        """Passing instances; with ``index`` > 0 a blocking query held up to ``wait_s`` seconds."""
        params: dict[str, str] = {"passing": "true"}
        if self.config.datacenter:
            params["dc"] = self.config.datacenter
        timeout = self.config.request_timeout_s
        if index > 0:
            wait = self.config.wait_s if wait_s is None else wait_s
            params["index"] = str(index)
            params["wait"] = f"{wait:g}s"
            timeout += wait * 1.1  # Consul adds up to wait/16 of jitter
        url = self._url(f"/v1/health/service/{self.config.service_name}")
        response = await send(self._client, "GET", url, params=params, headers=self._headers, timeout=timeout)
        consul_index = parse_index(response.headers.get("X-Consul-Index"))
        return build_consul_result(
            decode_json(response), self.config.service_name, self.config.datacenter, consul_index
        )

    async def watch(self) -> AsyncIterator[DiscoveryEvent]:
        """Chain blocking queries; yield JOIN/LEAVE whenever the passing set changes. Runs until closed."""
        known: tuple[Candidate, ...] = ()
        index = 0
        while True:
            try:
                result = await self.discover(index=index)
            except BackendUnavailableError:
                await self._sleep(1.0)
                continue
            for event in diff_candidates(known, result.candidates):
                yield event
            known = result.candidates
            index = next_index(index, int(result.body["consul_index"]))

    async def aclose(self) -> None:
        """Stop the TTL tasks (registrations stay until their checks expire) and close the client."""
        for sid in list(self._ttl_tasks):
            task = self._stop_ttl_task(sid)
            if task is not None:
                await cancel_and_wait([task], 1.0, owner="consul close")
        await super().aclose()
