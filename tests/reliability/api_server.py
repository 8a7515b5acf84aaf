"""The management API served over real HTTP (uvicorn on 127.0.0.1:0) beside an in-process cluster.

schemathesis sends requests with ``requests`` from the test thread; the app and the nodes share the
cluster's event loop on a ``LoopThread`` (the gateway calls node methods directly, so they must).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import requests
import uvicorn
from harness import ADMIN_HEADERS, harness_auth
from reliability_support import ThreadedCluster, wait_until

from serve_apps.app import build_app


class ApiCluster:
    """A ``ThreadedCluster`` plus uvicorn serving ``build_app(gateway)``; ``url`` is the server root."""

    def __init__(self, n: int, state_dir: Path, **kw: Any) -> None:
        self.tc = ThreadedCluster(n, state_dir, **kw)
        self.app = build_app(self.tc.cluster.gateway, harness_auth())
        config = uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                                timeout_keep_alive=30)
        self.server = uvicorn.Server(config)

        async def start() -> int:
            self._task = asyncio.ensure_future(self.server.serve())
            assert await wait_until(lambda: self.server.started, 15), "uvicorn did not start"
            return self.server.servers[0].sockets[0].getsockname()[1]

        self.port = self.tc.run(start())
        self.url = f"http://127.0.0.1:{self.port}"
        self.session = requests.Session()
        self.session.trust_env = False  # never a proxy: loopback only
        self.session.headers.update(ADMIN_HEADERS)  # the operator's session

    @property
    def cluster(self) -> Any:
        return self.tc.cluster

    def close(self) -> None:
        self.session.close()

        async def stop() -> None:
            self.server.should_exit = True
            await asyncio.wait_for(self._task, 10)

        try:
            self.tc.run(stop())
        finally:
            self.tc.close()


# INTEGRATION.md: a backend that is not configured, or a peer/dependency that cannot be reached, is a
# 503 (502 for a failing upstream) with a JSON error saying how to fix it. Those are answers, not faults;
# any other 5xx (500 above all) is a defect.
DOCUMENTED_5XX = {502, 503}
NOT_REST = {("GET", "/api/v1/network/graphql"), ("POST", "/api/v1/network/graphql")}


def response_problem(resp: requests.Response) -> str | None:
    """Why this response breaks the API's error contract, or None."""
    if resp.status_code >= 500 and resp.status_code not in DOCUMENTED_5XX:
        return f"{resp.status_code}: {resp.text[:300]}"
    if resp.status_code >= 400:
        try:
            body = resp.json()
        except ValueError:
            return f"{resp.status_code} is not JSON: {resp.text[:200]!r}"
        if not isinstance(body, dict) or not isinstance(body.get("error"), str) or not body["error"]:
            return f"{resp.status_code} has no error message: {str(body)[:200]}"
    return None


def assert_cluster_healthy(api: ApiCluster) -> None:
    cluster = api.cluster

    async def check() -> bool:
        return await wait_until(lambda: all(n.running for n in cluster.nodes.values()) and cluster.fully_meshed(), 30)

    assert api.tc.run(check(), 40), {n: sorted(p for p, peer in node.peers.items() if peer.connected)
                                     for n, node in cluster.nodes.items()}
    assert api.session.get(f"{api.url}/api/v1/network/nodes", timeout=10).status_code == 200
