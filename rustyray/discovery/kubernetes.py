"""Kubernetes discovery adapter (NETWORKING-021): the API server over httpx.

Three sources, one shape: a Service's EndpointSlices (falling back to its core/v1 Endpoints on clusters
without discovery.k8s.io/v1), or the pods of a StatefulSet (via its selector), or pods matching an
explicit label selector. ``watch()`` lists, then follows ``?watch=1`` JSON lines from the list's
resourceVersion and yields JOIN/LEAVE as endpoints become ready or go away; a 410 re-lists.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from rustyray.discovery._http import HttpBackend, send_json
from rustyray.discovery.config import SERVICE_ACCOUNT_DIR, KubernetesDiscoveryConfig
from rustyray.discovery.errors import BackendResponseError, BackendUnavailableError
from rustyray.discovery.k8s_records import (
    SERVICE_NAME_LABEL,
    WatchExpiredError,
    apply_watch_event,
    build_k8s_result,
    list_resource_version,
    nodes_from_endpoint_slices,
    nodes_from_endpoints,
    nodes_from_pods,
    selector_to_string,
)
from rustyray.discovery.model import Candidate, DiscoveryEvent, DiscoveryResult, diff_candidates


def in_cluster_namespace() -> str | None:
    """The pod's namespace from the service-account mount; None outside a pod."""
    ns_file = Path(SERVICE_ACCOUNT_DIR) / "namespace"
    return ns_file.read_text().strip() if ns_file.exists() else None


def in_cluster_api_server() -> str:
    """The API server URL from KUBERNETES_SERVICE_HOST/PORT; ValueError when they are not set."""
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ValueError("api_server is not set and KUBERNETES_SERVICE_HOST is not in the environment")
    host = f"[{host}]" if ":" in host else host
    return f"https://{host}:{port}"


def make_ssl_context(ca_path: str) -> ssl.SSLContext:
    """Verify against ``ca_path`` when it exists, else the system trust store."""
    if Path(ca_path).is_file():
        return ssl.create_default_context(cafile=ca_path)
    return ssl.create_default_context()


class KubernetesDiscovery(HttpBackend):
    """Reads (and watches) a Service's endpoints or a StatefulSet's pods."""

    name = "kubernetes"

    def __init__(
        self,
        config: KubernetesDiscoveryConfig,
        *,
        client: httpx.AsyncClient | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(config, client)
        self._base = config.resolved_api_server()
        self._sleep = sleep
        #: Which source the last discover() used: "endpointslices", "endpoints" or "pods".
        self.source: str | None = None

    def _open_client(self) -> httpx.AsyncClient:
        """The API server's certificate is verified against ``ca_path`` (the system store when it is absent)."""
        return httpx.AsyncClient(timeout=self.config.request_timeout_s, verify=make_ssl_context(self.config.ca_path))

    def _headers(self) -> dict[str, str]:
        token = self.config.token
        if token is None:
            try:
                token = Path(self.config.token_path).read_text().strip()
            except OSError as exc:
                raise BackendUnavailableError(f"cannot read token {self.config.token_path}: {exc}") from exc
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return await send_json(self._client, "GET", self._base + path, params=params, headers=self._headers())

    # -- sources --------------------------------------------------------------------------------
    def _ns(self) -> str:
        return quote(self.config.namespace, safe="")

    async def _pod_selector(self) -> str:
        if self.config.statefulset:
            sts = await self._get(
                f"/apis/apps/v1/namespaces/{self._ns()}/statefulsets/{quote(self.config.statefulset, safe='')}"
            )
            return selector_to_string((sts.get("spec") or {}).get("selector") or {})
        assert self.config.label_selector is not None
        return self.config.label_selector

    def _uses_pods(self) -> bool:
        return bool(self.config.statefulset or self.config.label_selector)

    async def _list(self) -> tuple[str, str, dict[str, str], list[dict[str, Any]]]:
        """(source, collection path, params, items) of the first source that works."""
        if self._uses_pods():
            path = f"/api/v1/namespaces/{self._ns()}/pods"
            params = {"labelSelector": await self._pod_selector()}
            body = await self._get(path, params)
            return "pods", path, params, self._items(body, params)
        path = f"/apis/discovery.k8s.io/v1/namespaces/{self._ns()}/endpointslices"
        params = {"labelSelector": f"{SERVICE_NAME_LABEL}={self.config.service}"}
        try:
            body = await self._get(path, params)
            return "endpointslices", path, params, self._items(body, params)
        except BackendResponseError as exc:
            if exc.status != 404:
                raise
        path = f"/api/v1/namespaces/{self._ns()}/endpoints"
        params = {"fieldSelector": f"metadata.name={self.config.service}"}
        body = await self._get(path, params)
        return "endpoints", path, params, self._items(body, params)

    @staticmethod
    def _items(body: Mapping[str, Any], params: dict[str, str]) -> list[dict[str, Any]]:
        params["resourceVersion"] = list_resource_version(body)
        items = body.get("items")
        if not isinstance(items, list):
            raise BackendResponseError("Kubernetes list response has no items")
        return items

    def _nodes(self, source: str, objects: list[Mapping[str, Any]]) -> list[Candidate]:
        port_name, default_port = self.config.port_name, self.config.default_port
        if source == "pods":
            return nodes_from_pods(objects, port_name, default_port)
        if source == "endpointslices":
            return nodes_from_endpoint_slices(objects, port_name, default_port)
        nodes: list[Candidate] = []
        for obj in objects:
            nodes.extend(nodes_from_endpoints(obj, port_name, default_port))
        return nodes

    async def discover(self) -> DiscoveryResult:
        """``{"namespace", "service", "nodes": [{"pod", "ip", "ready"}]}``; candidates are the ready ones."""
        source, _, _, items = await self._list()
        self.source = source
        return build_k8s_result(self.config.namespace, self.config.service, self._nodes(source, items))

    # -- watch ----------------------------------------------------------------------------------
    async def watch(self) -> AsyncIterator[DiscoveryEvent]:
        """JOIN for every ready node now, then JOIN/LEAVE as readiness and membership change."""
        known: list[Candidate] = []
        while True:
            try:
                source, path, params, items = await self._list()
            except BackendUnavailableError:
                await self._sleep(1.0)
                continue
            self.source = source
            state = {obj["metadata"]["name"]: obj for obj in items}
            ready = [c for c in self._nodes(source, list(state.values())) if c.meta.get("ready")]
            for event in diff_candidates(known, ready):
                yield event
            known = ready
            try:
                async for watch_event in self._watch_stream(path, params):
                    apply_watch_event(state, watch_event)
                    ready = [c for c in self._nodes(source, list(state.values())) if c.meta.get("ready")]
                    for event in diff_candidates(known, ready):
                        yield event
                    known = ready
            except WatchExpiredError:
                continue  # re-list immediately
            except BackendUnavailableError:
                await self._sleep(1.0)

    async def _watch_stream(self, path: str, params: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Follow one watch request until the server ends it (timeoutSeconds) or it breaks."""
        while True:
            query = {
                **params,
                "watch": "1",
                "allowWatchBookmarks": "true",
                "timeoutSeconds": str(self.config.watch_timeout_s),
            }
            timeout = httpx.Timeout(self.config.request_timeout_s, read=self.config.watch_timeout_s + 30)
            url = self._base + path
            try:
                async with self._client.stream(
                    "GET", url, params=query, headers=self._headers(), timeout=timeout
                ) as response:
                    if response.status_code == 410:
                        raise WatchExpiredError("watch expired", 410)
                    if response.status_code >= 400:
                        text = (await response.aread()).decode("utf-8", "replace")
                        raise BackendResponseError(
                            f"watch {path} -> HTTP {response.status_code}: {text[:200]}", response.status_code
                        )
                    async for line in response.aiter_lines():
                        if not line.strip():
                            continue
                        try:
                            event = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise BackendResponseError(f"watch {path}: bad JSON line {line[:200]!r}") from exc
                        yield event
                        rv = ((event.get("object") or {}).get("metadata") or {}).get("resourceVersion")
                        if rv and event.get("type") != "ERROR":
                            params["resourceVersion"] = rv
            except httpx.TransportError as exc:
                raise BackendUnavailableError(f"watch {url}: {type(exc).__name__}: {exc}") from exc

