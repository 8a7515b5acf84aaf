"""A small Azure Resource Manager double: scale-set VMs and network interfaces, on 127.0.0.1.

Checks the bearer token (401 ``InvalidAuthenticationToken``), requires ``api-version``, pages results
``page_size`` at a time with an absolute ``nextLink`` that points at the real ARM host (as ARM does):
a client must rebase it rather than follow it. 404 ``ResourceNotFound`` for unknown scale sets.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.servers._aiohttp_server import LoopbackServer

ARM_HOST = "https://management.azure.com"


class AzureDouble:
    def __init__(self, token: str, *, page_size: int = 2) -> None:
        self.token = token
        self.page_size = page_size
        #: (subscription, resource group, scale set) -> list of (vm, nic) pairs
        self.scale_sets: dict[tuple[str, str, str], list[tuple[dict[str, Any], dict[str, Any]]]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        app = web.Application()
        base = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}"
        app.router.add_get(base + "/virtualMachines", self._handler(0))
        app.router.add_get(base + "/networkInterfaces", self._handler(1))
        self._server = LoopbackServer(app)

    async def start(self) -> str:
        return await self._server.start()

    @property
    def base_url(self) -> str:
        return self._server.base_url

    async def stop(self) -> None:
        await self._server.stop()

    def add_vm(
        self, sub: str, rg: str, vmss: str, index: int, ip: str, location: str = "eastus", zone: str | None = "1"
    ) -> None:
        """Add VM ``<vmss>_<index>`` with one primary NIC holding ``ip``."""
        vm_id = (
            f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
            f"virtualMachineScaleSets/{vmss}/virtualMachines/{index}"
        )
        vm = {"name": f"{vmss}_{index}", "id": vm_id, "instanceId": str(index), "location": location}
        if zone:
            vm["zones"] = [zone]
        nic = {
            "name": "nic0",
            "id": f"{vm_id}/networkInterfaces/nic0",
            "properties": {
                "primary": True,
                "virtualMachine": {"id": vm_id},
                "ipConfigurations": [
                    {"name": "ipconfig1", "properties": {"primary": True, "privateIPAddress": ip}},
                ],
            },
        }
        self.scale_sets.setdefault((sub, rg, vmss), []).append((vm, nic))

    def _handler(self, which: int) -> Any:
        async def handler(request: web.Request) -> web.Response:
            self.requests.append((request.path, dict(request.query)))
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                err = {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}
                return web.json_response({"error": err}, status=401)
            if "api-version" not in request.query:
                err = {"code": "MissingApiVersionParameter", "message": "The api-version query parameter is required."}
                return web.json_response({"error": err}, status=400)
            m = request.match_info
            members = self.scale_sets.get((m["sub"], m["rg"], m["vmss"]))
            if members is None:
                err = {"code": "ResourceNotFound", "message": f"scale set {m['vmss']} not found"}
                return web.json_response({"error": err}, status=404)
            skip = int(request.query.get("$skiptoken", "0"))
            items = [pair[which] for pair in members]
            body: dict[str, Any] = {"value": items[skip : skip + self.page_size]}
            if skip + self.page_size < len(items):
                body["nextLink"] = (
                    f"{ARM_HOST}{request.path}?api-version={request.query['api-version']}"
                    f"&$skiptoken={skip + self.page_size}"
                )
            return web.json_response(body)

        return handler
