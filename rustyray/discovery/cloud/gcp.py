"""GCP discovery adapter (NETWORKING-024): zonal instance group members via the Compute REST API v1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from rustyray.discovery._http import HttpBackend, send_json
from rustyray.discovery.cloud.records import (
    build_cloud_result,
    candidate_from_gcp_instance,
    gcp_members,
    region_from_zone,
)
from rustyray.discovery.config import GcpDiscoveryConfig
from rustyray.discovery.errors import BackendResponseError
from rustyray.discovery.model import Candidate, DiscoveryEvent, DiscoveryResult
from rustyray.discovery.polling import poll_watch

#: Guards against a pageToken loop: at most this many pages per listing.
MAX_PAGES = 100


class GcpDiscovery(HttpBackend):
    """Lists an instance group's members, then reads each instance for its private IP."""

    name = "gcp"

    def __init__(self, config: GcpDiscoveryConfig, *, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config, client)
        self._headers = {"Authorization": f"Bearer {config.access_token}"}

    def _project_url(self) -> str:
        return f"{self.config.base_url.rstrip('/')}/projects/{quote(self.config.project, safe='')}"

    async def _members(self) -> list[tuple[str, str]]:
        c = self.config
        url = (
            f"{self._project_url()}/zones/{quote(c.zone, safe='')}"
            f"/instanceGroups/{quote(c.instance_group, safe='')}/listInstances"
        )
        body = {"instanceState": "RUNNING" if c.running_only else "ALL"}
        members: list[tuple[str, str]] = []
        token: str | None = None
        for _ in range(MAX_PAGES):
            params = {"pageToken": token} if token else None
            page = await send_json(self._client, "POST", url, json=body, params=params, headers=self._headers)
            if not isinstance(page, dict):
                raise BackendResponseError("GCP listInstances: response is not an object")
            members.extend(gcp_members(page))
            token = page.get("nextPageToken")
            if not token:
                return members
        raise BackendResponseError(f"GCP listInstances: more than {MAX_PAGES} pages")

    async def _instance(self, zone: str, name: str, gate: asyncio.Semaphore) -> dict[str, Any]:
        url = f"{self._project_url()}/zones/{quote(zone, safe='')}/instances/{quote(name, safe='')}"
        async with gate:
            return await send_json(self._client, "GET", url, headers=self._headers)

    async def discover(self) -> DiscoveryResult:
        """``{"provider": "GCP", "region", "instances": [{"instance_id", "private_ip", "az"}]}``."""
        members = await self._members()
        gate = asyncio.Semaphore(self.config.max_concurrency)
        instances = await asyncio.gather(*(self._instance(zone, name, gate) for zone, name in members))
        candidates: list[Candidate] = []
        for instance in instances:
            candidate = candidate_from_gcp_instance(instance, self.config.port)
            if candidate is not None:
                candidates.append(candidate)
        return build_cloud_result("GCP", region_from_zone(self.config.zone), candidates)

    def watch(self, interval_s: float = 30.0) -> AsyncIterator[DiscoveryEvent]:
        """Poll ``discover()`` every ``interval_s`` seconds, yielding JOIN/LEAVE (the API has no feed)."""
        return poll_watch(self.discover, interval_s)

