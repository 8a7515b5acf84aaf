"""Azure discovery adapter (NETWORKING-024): VM scale set members via the ARM REST API over httpx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from rustyray.discovery._config import require_http_url, require_port, require_positive, require_text
from rustyray.discovery._http import send_json
from rustyray.discovery.cloud.records import build_cloud_result, candidates_from_scale_set, rebase_link
from rustyray.discovery.errors import BackendResponseError
from rustyray.discovery.model import DiscoveryEvent, DiscoveryResult
from rustyray.discovery.polling import poll_watch

#: Guards against a nextLink loop: at most this many pages per listing.
MAX_PAGES = 100


@dataclass(frozen=True)
class AzureDiscoveryConfig:
    """``[discovery.azure]``: the VM scale set whose members are cluster nodes."""

    subscription_id: str = ""
    resource_group: str = ""
    #: Name of the virtual machine scale set.
    scale_set: str = ""
    #: ARM bearer token (e.g. from the instance metadata service or ``az account get-access-token``).
    access_token: str = ""
    #: ARM endpoint; override for sovereign clouds or a local test double.
    base_url: str = "https://management.azure.com"
    #: api-version for scale-set network interfaces (a Microsoft.Network API).
    network_api_version: str = "2018-10-01"
    #: api-version for scale-set VMs (Microsoft.Compute).
    compute_api_version: str = "2024-03-01"
    #: Region echoed as ``region``; empty takes the VMs' ``location``.
    location: str = ""
    #: Port the nodes listen on for SWIM.
    port: int = 7000
    #: Seconds allowed for each request.
    request_timeout_s: float = 10.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        for name in ("subscription_id", "resource_group", "scale_set", "access_token"):
            require_text(name, getattr(self, name))
        require_http_url("base_url", self.base_url)
        require_port("port", self.port)
        require_positive("request_timeout_s", self.request_timeout_s)


class AzureDiscovery:
    """Lists a scale set's VMs and their primary private IPs."""

    name = "azure"

    def __init__(self, config: AzureDiscoveryConfig, *, client: httpx.AsyncClient | None = None) -> None:
        config.validate()
        self.config = config
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=config.request_timeout_s)

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

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._own_client:
            await self._client.aclose()
