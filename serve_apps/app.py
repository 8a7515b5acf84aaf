"""The management API as a Ray Serve application (FastAPI ingress).

Routes live in ``serve_apps/routes``; each router is mounted under
``/api/v1/network``. The FastAPI app is built inside the replica
(``__serve_build_asgi_app__``) rather than at import time: Serve pickles a
module-level app, which loses the annotations strawberry's GraphQL router needs
(ray-project/ray#50677).
"""

from __future__ import annotations

import importlib
from typing import Any

from fastapi import FastAPI

from serve_apps.auth import ApiAuth, AuthMiddleware
from serve_apps.body_limit import MAX_BODY_BYTES, BodyLimitMiddleware
from serve_apps.common import PREFIX, install_error_handlers

ROUTERS = [
    "serve_apps.routes.core",
    "serve_apps.routes.discovery",
    "serve_apps.routes.membership",
    "serve_apps.routes.routing", "serve_apps.routes.health",
    "serve_apps.routes.loadbalancer", "serve_apps.routes.pool",
    "serve_apps.routes.security",
    "serve_apps.routes.autodiscovery",
    "serve_apps.routes.metrics", "serve_apps.graphql_schema",  # GET /metrics; GraphQL via mount()
]


def build_app(gateway: Any, auth: ApiAuth) -> FastAPI:
    """The FastAPI app over a gateway (``RayGateway`` in Serve, ``LocalGateway`` in tests), behind ``auth``."""
    app = FastAPI(title="RustyRay management API", version="1", docs_url="/docs", openapi_url="/openapi.json")
    app.state.gateway = gateway
    app.state.auth = auth
    graphql = (PREFIX + "/graphql", PREFIX + "/graphql/ws")
    app.add_middleware(AuthMiddleware, auth=auth, graphql_paths=graphql)  # inside the body limit: bodies are capped
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    install_error_handlers(app)
    for name in ROUTERS:
        module = importlib.import_module(name)
        app.include_router(module.router, prefix=PREFIX)
        extra = getattr(module, "mount", None)
        if extra is not None:
            extra(app)

    @app.get("/healthz")
    @app.get("/health")
    async def healthz() -> dict[str, str]:
        """Liveness of the API itself (what an HTTP health check of a node's API port hits)."""
        return {"status": "ok"}

    return app


def deployment(max_ongoing_requests: int = 256, gateway: str = "wire", name: str = "NetworkAPI") -> Any:
    """The Serve deployment class bound to its options (imports ray lazily).

    ``gateway``: ``"wire"`` (default) reaches nodes on their mTLS API channel and falls back to Ray actor
    calls (``serve_apps.wire_gateway``); ``"ray"`` uses actor calls only (the benchmark's baseline).
    ``max_ongoing_requests`` stays 256 per replica: every request awaits I/O (a node round trip), so the
    replica's event loop, not this cap, is the limit well past 32 concurrent clients; one replica, because
    a second one on a 2-core host competes with the proxy and the nodes for the same cores.
    """
    from ray import serve

    from serve_apps.gateway import RayGateway
    from serve_apps.wire_gateway import WireGateway

    if gateway not in ("wire", "ray"):
        raise ValueError(f"gateway: 'wire' or 'ray', got {gateway!r}")
    factory = WireGateway if gateway == "wire" else RayGateway

    @serve.deployment(name=name, num_replicas=1, max_ongoing_requests=max_ongoing_requests,
                      ray_actor_options={"num_cpus": 0.1})
    @serve.ingress()
    class NetworkAPI:
        def __init__(self, auth: ApiAuth) -> None:
            self.gateway = factory()
            self.auth = auth  # token digests only (see serve_apps.auth)

        def __serve_build_asgi_app__(self) -> FastAPI:
            return build_app(self.gateway, self.auth)

        def gateway_stats(self) -> dict[str, int]:
            """Which path answered node calls (``WireGateway.stats``; empty for the Ray gateway)."""
            return dict(getattr(self.gateway, "stats", {}))

        async def probe_stages(self, n: int = 200) -> dict[str, float]:
            """p50 ms, inside this replica, of one node hop and of the whole app (ASGI, no proxy) for
            ``GET /stats``: the stage timing ``bench/api.py`` subtracts from what a client sees. Ray handle only."""
            import statistics
            import time

            import httpx

            gw = self.gateway
            front = await gw.fronted(None)
            client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_app(gw, self.auth)),
                                       base_url="http://replica")

            async def hop() -> None:
                await gw.call(front, "manager", "stats")

            async def app() -> None:
                assert (await client.get(PREFIX + "/stats")).status_code == 200

            out = {}
            saved = getattr(gw, "read_max_age_s", None)
            if saved is not None:
                gw.read_max_age_s = 0  # time the hop itself, not the read snapshot
            for name, fn in (("node hop", hop), ("app incl. hop", app)):
                samples = []
                for _ in range(n):
                    t = time.perf_counter()
                    await fn()
                    samples.append((time.perf_counter() - t) * 1000)
                out[name] = round(statistics.median(samples), 3)
            if saved is not None:
                gw.read_max_age_s = saved
            await client.aclose()
            return out

    return NetworkAPI
