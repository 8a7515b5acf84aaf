"""A small GCP Compute API (v1) double: zonal instanceGroups.listInstances and instances.get.

Checks the bearer token (401), pages listInstances with ``nextPageToken``, filters members by
``instanceState`` (RUNNING / ALL), and returns member URLs on the real compute host, as GCP does
(a client must not follow them). 404 for unknown groups or instances.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.servers._aiohttp_server import LoopbackServer

COMPUTE = "https://www.googleapis.com/compute/v1"


class GcpDouble:
    def __init__(self, token: str, *, page_size: int = 2) -> None:
        self.token = token
        self.page_size = page_size
        self.instances: dict[tuple[str, str, str], dict[str, Any]] = {}  # (project, zone, name)
        self.groups: dict[tuple[str, str, str], list[str]] = {}  # (project, zone, group) -> names
        self.requests: list[tuple[str, str]] = []
        app = web.Application(middlewares=[self._auth])
        app.router.add_post(
            "/compute/v1/projects/{project}/zones/{zone}/instanceGroups/{group}/listInstances", self._list
        )
        app.router.add_get("/compute/v1/projects/{project}/zones/{zone}/instances/{name}", self._get)
        self._server = LoopbackServer(app)
        self._next_id = 1000

    async def start(self) -> str:
        return await self._server.start()

    @property
    def base_url(self) -> str:
        """Compute API root to put in GcpDiscoveryConfig.base_url."""
        return self._server.base_url + "/compute/v1"

    async def stop(self) -> None:
        await self._server.stop()

    def add_instance(self, project: str, zone: str, group: str, name: str, ip: str, status: str = "RUNNING") -> None:
        self._next_id += 1
        self.instances[(project, zone, name)] = {
            "kind": "compute#instance",
            "id": str(self._next_id),
            "name": name,
            "status": status,
            "zone": f"{COMPUTE}/projects/{project}/zones/{zone}",
            "networkInterfaces": [{"name": "nic0", "networkIP": ip}],
        }
        self.groups.setdefault((project, zone, group), []).append(name)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            err = {
                "code": 401,
                "message": "Request had invalid authentication credentials.",
                "status": "UNAUTHENTICATED",
            }
            return web.json_response({"error": err}, status=401)
        return await handler(request)

    async def _list(self, request: web.Request) -> web.Response:
        m = request.match_info
        names = self.groups.get((m["project"], m["zone"], m["group"]))
        if names is None:
            return web.json_response({"error": {"code": 404, "message": "instanceGroup not found"}}, status=404)
        body = await request.json() if request.can_read_body else {}
        state = body.get("instanceState", "ALL")
        members = []
        for name in names:
            inst = self.instances[(m["project"], m["zone"], name)]
            if state == "RUNNING" and inst["status"] != "RUNNING":
                continue
            members.append(
                {
                    "instance": f"{COMPUTE}/projects/{m['project']}/zones/{m['zone']}/instances/{name}",
                    "status": inst["status"],
                }
            )
        start = int(request.query.get("pageToken", "0"))
        out: dict[str, Any] = {
            "kind": "compute#instanceGroupsListInstances",
            "items": members[start : start + self.page_size],
        }
        if start + self.page_size < len(members):
            out["nextPageToken"] = str(start + self.page_size)
        return web.json_response(out)

    async def _get(self, request: web.Request) -> web.Response:
        m = request.match_info
        inst = self.instances.get((m["project"], m["zone"], m["name"]))
        if inst is None:
            return web.json_response({"error": {"code": 404, "message": "instance not found"}}, status=404)
        return web.json_response(inst)
