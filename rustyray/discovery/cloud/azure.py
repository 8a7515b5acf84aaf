"""Azure discovery adapter (NETWORKING-024): VM scale set members via the ARM REST API over httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from rustyray.discovery._http import HttpBackend, send_json
from rustyray.discovery.cloud.records import build_cloud_result, candidates_from_scale_set, rebase_link
from rustyray.discovery.config import AzureDiscoveryConfig
from rustyray.discovery.errors import BackendResponseError
from rustyray.discovery.model import DiscoveryEvent, DiscoveryResult
from rustyray.discovery.polling import poll_watch

#: Guards against a nextLink loop: at most this many pages per listing.
MAX_PAGES = 100


class AzureDiscovery(HttpBackend):
    """Lists a scale set's VMs and their primary private IPs."""

    name = "azure"

    def __init__(self, config: AzureDiscoveryConfig, *, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config, client)

    def _scale_set_path(self) -> str:
        c = self.config
        return (
            f"/subscriptions/{quote(c.subscription_id, safe='')}/resourceGroups/{quote(c.resource_group, safe='')}"
            f"/providers/Microsoft.Compute/virtualMachineScaleSets/{quote(c.scale_set, safe='')}"
        )

    async def _list_all(self, path: str, api_version: str) -> list[dict[str, Any]]:
        base = self.config.base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {self.config.access_token}"}
        url: str | None = f"{base}{path}?api-version={api_version}"
        items: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return items
            body = await send_json(self._client, "GET", url, headers=headers)
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                raise BackendResponseError(f"Azure {path}: response has no 'value' list")
            items.extend(body["value"])
            next_link = body.get("nextLink")
            url = rebase_link(next_link, base) if next_link else None
        raise BackendResponseError(f"Azure {path}: more than {MAX_PAGES} pages")

    async def discover(self) -> DiscoveryResult:
        """``{"provider": "Azure", "region", "instances": [{"instance_id", "private_ip", "az"}]}``."""
        path = self._scale_set_path()
        vms = await self._list_all(f"{path}/virtualMachines", self.config.compute_api_version)
        nics = await self._list_all(f"{path}/networkInterfaces", self.config.network_api_version)
        candidates = candidates_from_scale_set(nics, vms, self.config.port)
        region = self.config.location or next((str(vm["location"]) for vm in vms if vm.get("location")), "")
        return build_cloud_result("Azure", region, candidates)

    def watch(self, interval_s: float = 30.0) -> AsyncIterator[DiscoveryEvent]:
        """Poll ``discover()`` every ``interval_s`` seconds, yielding JOIN/LEAVE (the API has no feed)."""
        return poll_watch(self.discover, interval_s)

