"""In-process clusters for tests: real nodes on loopback, the real API over ASGI.

``local_cluster(n, tmp_path)`` starts ``n`` nodes (TLS 1.3 + mTLS TCP, QUIC) in the
current event loop, bootstraps them like ``launch`` does, waits for the full mesh,
and serves the management API through ``LocalGateway`` so that route tests need no
Ray. ``cluster.client`` is an ``httpx.AsyncClient`` whose base URL is the API prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from rustyray.api_binding import invoke, to_wire
from rustyray.config import NodeConfig, TransportConfig
from rustyray.node import Node
from serve_apps.app import build_app
from serve_apps.auth import ApiAuth
from serve_apps.gateway import LocalGateway

ADMIN_TOKEN = "test-admin-token"
READ_TOKEN = "test-read-token"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def harness_auth(read_open: bool = True) -> ApiAuth:
    """The API policy of in-process test clusters: fixed admin and read tokens, reads open as on loopback."""
    return ApiAuth.from_tokens(ADMIN_TOKEN, READ_TOKEN, read_open=read_open)


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll a condition on the event loop (for conditions with no event to await)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


def prom_sample(text: str, name: str, *, exact: bool = True, **labels: str) -> float | None:
    """The value of Prometheus sample ``name`` whose label set is ``labels`` (with ``exact=False``: includes
    them, for exporters such as Ray's that add their own labels); None when there is none."""
    for m in re.finditer(rf"^{name}{{([^}}]*)}} (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if found == labels if exact else all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return None


@dataclass
class LocalCluster:
    nodes: dict[str, Node]
    client: httpx.AsyncClient
    gateway: LocalGateway
    state_dir: Path
    config_overrides: dict[str, Any] = field(default_factory=dict)
    app: Any = None

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def client_with(self, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
        """Another client of the same app (for auth tests: no token, the read token, a wrong one)."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test/api/v1/network",
                                 timeout=30, headers=headers or {})

    async def start_node(self, node_id: str, seeds: tuple[str, ...] = (), **kw: Any) -> Node:
        node = Node(make_config(node_id, self.state_dir, seeds=seeds, **{**self.config_overrides, **kw}))
        await node.start()
        self.nodes[node_id] = node
        return node

    def fully_meshed(self) -> bool:
        live = [n for n in self.nodes.values() if n.running]
        ids = {n.node_id for n in live}
        return all(ids - {n.node_id} <= {p for p, peer in n.peers.items() if peer.connected} for n in live)


def make_config(node_id: str, state_dir: Path, *, seeds: tuple[str, ...] = (), host: str | None = None,
                port: int = 0, sections: dict[str, Any] | None = None, min_incarnation: int = 0,
                **transport: Any) -> NodeConfig:
    t = TransportConfig(**({"host": host} if host else {}), tcp_port=port, **transport)
    return NodeConfig(node_id=node_id, state_dir=str(state_dir), transport=t, seeds=seeds,
                      sections=sections or {}, min_incarnation=min_incarnation)


@contextlib.asynccontextmanager
async def local_cluster(n: int, state_dir: Path, *, bootstrap: bool = True, sections: dict[str, Any] | None = None,
                        **transport: Any) -> AsyncIterator[LocalCluster]:
    nodes: dict[str, Node] = {}
    overrides: dict[str, Any] = {"sections": sections, **transport}

    async def spawner(node_id: str, seeds: list[str], host: str | None, port: int) -> Node:
        node = Node(make_config(node_id, state_dir, seeds=tuple(seeds), host=host, port=port,
                                sections=sections, **transport))
        await node.start()
        return node

    gateway = LocalGateway(nodes, spawner)
    app = build_app(gateway, harness_auth())
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/api/v1/network",
                               timeout=30, headers=ADMIN_HEADERS)  # the operator's client: admin token
    cluster = LocalCluster(nodes, client, gateway, state_dir, overrides, app)
    try:
        for i in range(1, n + 1):
            await cluster.start_node(f"node{i}")
        if bootstrap and n > 1:
            members = {k: {"address": v.tcp_address, "quic_address": v.quic_address} for k, v in nodes.items()}
            await nodes["node1"].call_api("membership", "bootstrap", {"cluster_name": "test", "members": members})
            await wait_for(cluster.fully_meshed, 20)
        yield cluster
    finally:
        await client.aclose()
        for node in list(nodes.values()):
            with contextlib.suppress(Exception):
                await node.stop()


# ------------------------------------------------------------------ routing operations, as the API sees them
async def api_send(api: Any, target_node: str, message_type: str, data: dict[str, Any] | None = None,
                   **options: Any) -> dict[str, Any]:
    """``RoutingApi.send`` with the route's arguments, answered as the JSON body the API returns."""
    return to_wire(await invoke(api.send, {"target_node": target_node, "message_type": message_type,
                                           "data": data, **options}))


def api_receive_log(api: Any, **options: Any) -> dict[str, Any]:
    return to_wire(invoke(api.receive_log, options))


def api_delivery_stats(api: Any) -> dict[str, Any]:
    return to_wire(api.delivery_stats())
