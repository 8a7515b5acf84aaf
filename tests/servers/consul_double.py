"""A small, stateful stand-in for a Consul agent's HTTP API, served on 127.0.0.1.

Speaks exactly what :mod:`rustyray.discovery.consul` uses, with Consul's semantics:

- ``PUT /v1/agent/service/register``: ID defaults to Name; a ``Check.TTL`` check starts *critical*.
- ``PUT /v1/agent/check/pass/<check_id>``: passing until ``now + TTL``, then critical (TTL expiry).
- ``PUT /v1/agent/service/deregister/<id>``.
- ``GET /v1/health/service/<name>`` with ``passing``, ``dc``, ``index``, ``wait``: blocking queries
  held until the raft index moves past ``index`` or ``wait`` elapses; ``X-Consul-Index`` on answers.
- ``DeregisterCriticalServiceAfter`` reaps services critical for longer than that.
- ``X-Consul-Token`` is enforced when the double is given a token (403 otherwise).

Time comes from an injectable ``clock`` so tests expire TTLs by moving a fake clock instead of sleeping;
a reaper task re-evaluates expiry every ``reap_interval_s`` so blocked queries wake up on expiry.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.servers._aiohttp_server import LoopbackServer

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """ "10s", "1m30s", "250ms" -> seconds; ValueError otherwise."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(n) * _UNIT[u] for n, u in parts)


@dataclass
class _Check:
    check_id: str
    service_id: str
    ttl_s: float
    deregister_after_s: float | None
    status: str = "critical"
    output: str = "TTL check has not been updated"
    deadline: float = float("-inf")
    critical_since: float = 0.0


@dataclass
class _Service:
    body: dict[str, Any]
    checks: list[str] = field(default_factory=list)


class ConsulDouble:
    """In-memory agent + catalog for one datacenter and one node."""

    def __init__(
        self,
        *,
        datacenter: str = "dc1",
        node_name: str = "consul-double",
        node_address: str = "127.0.0.1",
        token: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        reap_interval_s: float = 0.05,
    ) -> None:
        self.datacenter = datacenter
        self.node_name = node_name
        self.node_address = node_address
        self.token = token
        self.clock = clock
        self.reap_interval_s = reap_interval_s
        self.index = 1
        self.services: dict[str, _Service] = {}
        self.checks: dict[str, _Check] = {}
        #: (method, path, query) of every request, for assertions.
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._changed = asyncio.Condition()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_put("/v1/agent/service/register", self._register)
        app.router.add_put("/v1/agent/service/deregister/{sid}", self._deregister)
        app.router.add_put("/v1/agent/check/pass/{cid}", self._pass)
        app.router.add_get("/v1/health/service/{name}", self._health)
        self._server = LoopbackServer(app)
        self._reaper: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> str:
        url = await self._server.start()
        self._reaper = asyncio.create_task(self._reap_loop())
        return url

    @property
    def base_url(self) -> str:
        return self._server.base_url

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await self._server.stop()

    async def tick(self) -> None:
        """Apply TTL expiry / reaping at the current clock and wake blocked queries if anything moved."""
        if self._refresh():
            async with self._changed:
                self._changed.notify_all()

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reap_interval_s)
            await self.tick()

    # -- state ----------------------------------------------------------------------------------
    def _bump(self) -> None:
        self.index += 1

    def _refresh(self) -> bool:
        now = self.clock()
        changed = False
        for check in list(self.checks.values()):
            if check.status == "passing" and now >= check.deadline:
                check.status = "critical"
                check.output = "TTL expired"
                check.critical_since = now
                changed = True
            if (
                check.status == "critical"
                and check.deregister_after_s is not None
                and now - check.critical_since >= check.deregister_after_s
            ):
                self._remove_service(check.service_id)
                changed = True
        if changed:
            self._bump()
        return changed

    def _remove_service(self, sid: str) -> None:
        service = self.services.pop(sid, None)
        if service is not None:
            for cid in service.checks:
                self.checks.pop(cid, None)

    def status_of(self, sid: str) -> str | None:
        """Aggregated status of a registered service (None when unknown)."""
        service = self.services.get(sid)
        if service is None:
            return None
        statuses = [self.checks[c].status for c in service.checks]
        return "critical" if "critical" in statuses else "passing"

    # -- HTTP -----------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path, dict(request.query)))
        if self.token is not None and request.headers.get("X-Consul-Token") != self.token:
            return web.Response(status=403, text="ACL not found")
        self._refresh()
        return await handler(request)

    async def _register(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="Request decode failed")
        name = body.get("Name")
        if not name:
            return web.Response(status=400, text="Missing service name")
        sid = body.get("ID") or name
        self._remove_service(sid)
        service = _Service(
            body={
                "ID": sid,
                "Service": name,
                "Tags": list(body.get("Tags") or []),
                "Address": body.get("Address") or "",
                "Port": int(body.get("Port") or 0),
                "Meta": dict(body.get("Meta") or {}),
            }
        )
        check = body.get("Check")
        if check:
            if "TTL" not in check:
                return web.Response(status=400, text="the double only supports TTL checks")
            try:
                ttl = parse_go_duration(check["TTL"])
                dereg = check.get("DeregisterCriticalServiceAfter")
                dereg_s = parse_go_duration(dereg) if dereg else None
            except ValueError as exc:
                return web.Response(status=400, text=str(exc))
            cid = check.get("CheckID") or f"service:{sid}"
            self.checks[cid] = _Check(cid, sid, ttl, dereg_s, critical_since=self.clock())
            service.checks.append(cid)
        self.services[sid] = service
        self._bump()
        await self._notify()
        return web.Response(status=200)

    async def _deregister(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        if sid not in self.services:
            return web.Response(status=404, text=f'Unknown service ID "{sid}"')
        self._remove_service(sid)
        self._bump()
        await self._notify()
        return web.Response(status=200)

    async def _pass(self, request: web.Request) -> web.Response:
        cid = request.match_info["cid"]
        check = self.checks.get(cid)
        if check is None:
            return web.Response(status=404, text=f'Unknown check ID "{cid}"')
        check.deadline = self.clock() + check.ttl_s
        note = request.query.get("note", "")
        if check.status != "passing" or check.output != note:
            check.status = "passing"
            check.output = note
            self._bump()
            await self._notify()
        return web.Response(status=200)

    async def _health(self, request: web.Request) -> web.Response:
        dc = request.query.get("dc")
        if dc and dc != self.datacenter:
            return web.Response(status=500, text="No path to datacenter")
        name = request.match_info["name"]
        passing_only = "passing" in request.query and request.query["passing"].lower() not in ("0", "false")
        index = int(request.query.get("index", "0") or 0)
        if index > 0 and index >= self.index:
            wait = min(parse_go_duration(request.query.get("wait", "300s")), 600.0)
            deadline = asyncio.get_running_loop().time() + wait
            async with self._changed:
                while self.index <= index:
                    remaining = deadline - asyncio.get_running_loop().time()
                    if remaining <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), remaining)
        entries = []
        for sid in sorted(self.services):
            service = self.services[sid]
            if service.body["Service"] != name:
                continue
            if passing_only and self.status_of(sid) != "passing":
                continue
            checks = [
                {
                    "Node": self.node_name,
                    "CheckID": cid,
                    "Status": self.checks[cid].status,
                    "Output": self.checks[cid].output,
                    "ServiceID": sid,
                }
                for cid in service.checks
            ]
            entries.append(
                {
                    "Node": {"Node": self.node_name, "Address": self.node_address, "Datacenter": self.datacenter},
                    "Service": dict(service.body),
                    "Checks": checks,
                }
            )
        return web.json_response(entries, headers={"X-Consul-Index": str(self.index)})

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()
