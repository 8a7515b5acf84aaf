"""Consul discovery adapter (NETWORKING-022): the local agent's HTTP API over httpx.

``register`` puts the service with a TTL check and marks it passing every third of the TTL;
``discover`` reads the passing instances (optionally as a blocking query); ``watch`` chains blocking
queries and yields JOIN/LEAVE as instances pass or fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from rustyray._aio import cancel_and_wait
from rustyray.discovery._config import require_http_url, require_positive, require_text
from rustyray.discovery._http import decode_json, send
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


@dataclass(frozen=True)
class ConsulDiscoveryConfig:
    """``[discovery.consul]``: the agent to talk to and how this cluster's service is named."""

    #: Base URL of the local Consul agent's HTTP API.
    address: str = "http://127.0.0.1:8500"
    #: Consul service name shared by every node of the cluster.
    service_name: str = "rustydb"
    #: Datacenter to query (``?dc=``); None means the agent's own datacenter.
    datacenter: str | None = None
    #: ACL token sent as X-Consul-Token; None sends none.
    token: str | None = None
    #: Tags added to every registration (e.g. "database").
    tags: tuple[str, ...] = ()
    #: TTL of the registration's health check in seconds; it is marked passing every TTL/3.
    check_ttl_s: float = 10.0
    #: Seconds a check may stay critical before Consul drops the registration; 0 disables.
    deregister_critical_after_s: float = 60.0
    #: Longest a blocking query is held by Consul, in seconds (its ``wait`` parameter).
    wait_s: float = 30.0
    #: Seconds allowed for each non-blocking request.
    request_timeout_s: float = 5.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        require_http_url("address", self.address)
        require_text("service_name", self.service_name)
        if self.datacenter is not None:
            require_text("datacenter", self.datacenter)
        if not isinstance(self.tags, tuple) or not all(isinstance(t, str) for t in self.tags):
            raise ValueError("tags must be a list of strings")
        require_positive("check_ttl_s", self.check_ttl_s)
        if self.deregister_critical_after_s < 0:
            raise ValueError("deregister_critical_after_s must be >= 0")
        require_positive("wait_s", self.wait_s)
        require_positive("request_timeout_s", self.request_timeout_s)


class ConsulDiscovery:
    """Registers nodes with a Consul agent and reads the passing ones back."""

    name = "consul"

    def __init__(
        self,
        config: ConsulDiscoveryConfig,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        config.validate()
        self.config = config
        headers = {"X-Consul-Token": config.token} if config.token else {}
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=config.request_timeout_s)
        self._headers = headers
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
        if self._own_client:
            await self._client.aclose()
