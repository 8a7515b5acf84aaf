"""Management API benchmark: our live GET endpoints against a bare Serve FastAPI endpoint.

Starts Ray in-process, a 3-node RustyRay cluster with its API (exactly as ``launch``
does) and, in the same Serve instance, a bare FastAPI deployment that returns a
constant JSON body of the same shape as ``/stats``. Then, for 1 and 32 concurrent
clients (httpx, keep-alive), measures requests/s and p50/p99 for:

- ``GET /bare/stats``                 bare Serve baseline (no node call);
- ``GET /api/v1/network/stats``       our API: replica -> node (mTLS API channel) -> live counters;
- ``GET /api/v1/network/nodes``       our API: registry + every node's info;
- ``.../raygw/api/v1/network/...``   the same three routes through ``RayGateway`` (Ray actor calls only),
                                      deployed next to ours as the side-by-side before;
- ``POST /bare/send``                 bare Serve baseline for a POST with a JSON body (constant answer);
- ``POST /api/v1/network/routing/send`` our API: a routed send node1 -> node2 (admin token).

Targets run round robin in ``--slices`` short slices (default 5 of 1 s) so that every target sees the same
drift of the host's load. Each rustyray row is compared with the bare row of the same method at the same
concurrency (ratio of requests/s). Prints a table and writes ``bench/results/api.json``.

    python bench/api.py [--seconds 5] [--concurrency 1 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

RESULTS = Path(__file__).resolve().parent / "results"
BARE_GET = "bare Serve GET"
BARE_POST = "bare Serve POST"


class Send(BaseModel):
    """The bare POST's body: parsed like the real route's (module level: FastAPI resolves it by name)."""

    target_node: str
    message_type: str
    data: dict[str, Any] = {}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, concurrency: int, seconds: float, body: dict[str, Any] | None = None,
               headers: dict[str, str] | None = None) -> dict[str, Any]:
    import httpx

    samples: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers or {}) as client:

        async def one() -> httpx.Response:
            return await (client.get(url) if body is None else client.post(url, json=body))

        for _ in range(5):
            await one()

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                s = time.perf_counter()
                r = await one()
                if r.status_code == 200:
                    samples.append(time.perf_counter() - s)
                else:
                    if not errors:
                        log(f"first error from {url}: {r.status_code} {r.text[:300]}")
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {"samples": samples, "elapsed": elapsed, "errors": errors}


def summarise(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """One row from a target's time slices: total requests over total time, latency over all samples."""
    samples = [x for s in slices for x in s["samples"]]
    elapsed = sum(s["elapsed"] for s in slices)
    ms = sorted(x * 1000 for x in samples) or [float("nan")]
    return {"requests_per_s": round(len(samples) / elapsed, 1), "p50_ms": round(ms[len(ms) // 2], 3),
            "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3),
            "errors": sum(s["errors"] for s in slices), "requests": len(samples)}


def deploy_bare(port: int) -> None:
    from fastapi import Body, FastAPI
    from ray import serve

    app = FastAPI()
    body = {"node": "node1", "messages_sent": 15243, "messages_received": 14987, "bytes_sent": 52948372,
            "bytes_received": 51283745, "active_connections": 12, "connection_errors": 5, "avg_latency_ms": 18.7}

    @serve.deployment(name="BareAPI", max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.1})
    @serve.ingress(app)
    class Bare:
        @app.get("/stats")
        async def stats(self) -> dict[str, Any]:
            return body

        @app.post("/send")
        async def send(self, payload=Body(...)):  # unannotated: Serve re-reads string annotations in the replica
            request = Send.model_validate(payload)
            return {"message_id": "m-1", "target_node": request.target_node, "status": "Delivered",
                    "attempts": 1, "path": ["node1", request.target_node]}

    serve.run(Bare.bind(), name="bare", route_prefix="/bare", blocking=False)


async def hop_costs(n: int = 300) -> dict[str, dict[str, float]]:
    """The replica-to-node hop alone, from this driver: a Ray actor call against one API-channel frame.

    Both run ``manager.stats`` on node1 ``n`` times in a row (sequential: latency, not throughput).
    """
    import ray

    from rustyray.ray_edge.enrolment import enrol_api_client
    from rustyray.security.tls import client_context
    from rustyray.transport.api_channel_adapter import ApiChannelClient

    actor = ray.get_actor("node1", namespace="rustyray")
    where = await actor.api_channel.remote()
    creds = await enrol_api_client("bench")
    assert creds is not None and where is not None
    channel = ApiChannelClient(where["host"], where["port"], client_context(creds))
    await channel.connect()

    async def ray_call() -> None:
        assert (await actor.call.remote("manager", "stats", {}))[0] == "ok"

    async def wire_call() -> None:
        assert (await channel.request("call", "manager", "stats", {}))[0] == "ok"

    out = {}
    for name, fn in (("ray actor call", ray_call), ("API channel frame", wire_call)):
        for _ in range(20):
            await fn()
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            await fn()
            samples.append((time.perf_counter() - t) * 1000)
        samples.sort()
        out[name] = {"p50_ms": round(samples[n // 2], 3), "p99_ms": round(samples[int(0.99 * n)], 3)}
    channel.close()
    return out


def deploy_ray_gateway(state_dir: str) -> None:
    """The same API with node calls as Ray actor calls only (``RayGateway``): the before, side by side."""
    from pathlib import Path

    from ray import serve

    from serve_apps.app import deployment
    from serve_apps.auth import ApiAuth, ensure_tokens

    admin, read = ensure_tokens(Path(state_dir))
    serve.run(deployment(gateway="ray", name="NetworkAPIRay").bind(ApiAuth.from_tokens(admin, read, read_open=True)),
              name="rustyray-raygw", route_prefix="/raygw", blocking=False)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    p.add_argument("--slices", type=int, default=5, help="round-robin slices per target (each seconds/slices)")
    p.add_argument("--out", default=str(RESULTS / "api.json"))
    args = p.parse_args()

    import ray

    from rustyray import launch

    ray.init(num_cpus=2, include_dashboard=False, namespace="rustyray", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    port = free_port()
    rows = []
    try:
        log("starting a 3-node cluster and the API ...")
        state_dir = tempfile.mkdtemp(prefix="rr-bench-api-")
        launch.start(launch.parse_args(["--nodes", "3", "--http-port", str(port), "--no-dashboard",
                                        "--state-dir", state_dir]))
        deploy_bare(port)
        deploy_ray_gateway(state_dir)
        from serve_apps.auth import admin_headers

        admin = admin_headers(state_dir)
        send = {"target_node": "node2", "message_type": "Heartbeat", "data": {"n": 1}}
        base = f"http://127.0.0.1:{port}"
        log("timing the replica-to-node hop alone (Ray actor call vs API channel frame) ...")
        hops = asyncio.run(hop_costs())
        api, ray_api = f"{base}/api/v1/network", f"{base}/raygw/api/v1/network"
        targets = [(BARE_GET, f"{base}/bare/stats", None, None),
                   ("rustyray /stats", f"{api}/stats", None, None),
                   ("ray-gw /stats", f"{ray_api}/stats", None, None),
                   ("rustyray /nodes", f"{api}/nodes", None, None),
                   ("ray-gw /nodes", f"{ray_api}/nodes", None, None),
                   (BARE_POST, f"{base}/bare/send", send, None),
                   ("rustyray POST send", f"{api}/routing/send", send, admin),
                   ("ray-gw POST send", f"{ray_api}/routing/send", send, admin)]
        for conc in args.concurrency:
            # round robin in short slices: the others' load on a shared host drifts, and every target
            # should see the same drift (one long run per target would compare different moments)
            log(f"{len(targets)} targets at {conc} concurrent clients, {args.seconds:.0f}s each in "
                f"{args.slices} slices ...")
            got: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in targets}
            for _ in range(args.slices):
                for name, url, body, headers in targets:
                    got[name].append(asyncio.run(load(url, conc, args.seconds / args.slices, body, headers)))
            rows += [{"endpoint": name, "concurrency": conc, **summarise(got[name])} for name, *_ in targets]
        from ray import serve

        handles = {app: serve.get_deployment_handle(name, app_name=app)
                   for app, name in (("rustyray", "NetworkAPI"), ("rustyray-raygw", "NetworkAPIRay"))}
        paths = {app: h.gateway_stats.remote().result() for app, h in handles.items()}
        log("timing the stages inside each replica (node hop, whole app without the proxy) ...")
        stages = {app: h.probe_stages.remote(200).result() for app, h in handles.items()}
    finally:
        launch.shutdown(False)
        ray.shutdown()
    print(f"{'endpoint':<22} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for r in rows:
        print(f"{r['endpoint']:<22} {r['concurrency']:>7} {r['requests_per_s']:>9,.1f} {r['p50_ms']:>8.2f} "
              f"{r['p99_ms']:>8.2f} {r['errors']:>6}")
    ratios = {}
    for conc in args.concurrency:
        by = {r["endpoint"]: r for r in rows if r["concurrency"] == conc}
        for name, bare in (("rustyray /stats", BARE_GET), ("rustyray /nodes", BARE_GET),
                           ("rustyray POST send", BARE_POST), ("ray-gw /stats", BARE_GET),
                           ("ray-gw /nodes", BARE_GET), ("ray-gw POST send", BARE_POST)):
            ratios[f"{conc} clients {name} vs {bare}"] = round(by[name]["requests_per_s"]
                                                               / by[bare]["requests_per_s"], 3)
    for k, v in ratios.items():
        print(f"  {k}: {v}")
    for app, v in stages.items():
        print(f"  inside the {app} replica, p50 ms: {v}")
    for k, v in hops.items():
        print(f"  hop alone, {k}: p50 {v['p50_ms']} ms, p99 {v['p99_ms']} ms")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    import os

    load_avg = [round(x, 2) for x in os.getloadavg()]
    print(f"  load average at the end: {load_avg}; node calls by path: {paths}")
    Path(args.out).write_text(json.dumps({"params": vars(args), "load_average": load_avg,
                                          "gateway_paths": paths, "hop_ms": hops,
                                          "replica_stages_p50_ms": stages, "rows": rows,
                                          "ratios": ratios}, indent=2))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
