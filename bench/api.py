"""Management API benchmark: our live GET endpoints against a bare Serve FastAPI endpoint.

Starts Ray in-process, a 3-node RustyRay cluster with its API (exactly as ``launch``
does) and, in the same Serve instance, a bare FastAPI deployment that returns a
constant JSON body of the same shape as ``/stats``. Then, for 1 and 32 concurrent
clients (httpx, keep-alive), measures requests/s and p50/p99 for:

- ``GET /bare/stats``                 bare Serve baseline (no node call);
- ``GET /api/v1/network/stats``       our API: replica -> node actor -> live counters;
- ``GET /api/v1/network/nodes``       our API: registry + every node's info.

Prints a table and writes ``bench/results/api.json``.

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

RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, concurrency: int, seconds: float) -> dict[str, Any]:
    import httpx

    samples: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        for _ in range(5):
            await client.get(url)

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                s = time.perf_counter()
                r = await client.get(url)
                if r.status_code == 200:
                    samples.append(time.perf_counter() - s)
                else:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ms = sorted(x * 1000 for x in samples)
    return {"requests_per_s": round(len(ms) / elapsed, 1), "p50_ms": round(ms[len(ms) // 2], 3),
            "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3), "errors": errors, "requests": len(ms)}


def deploy_bare(port: int) -> None:
    from fastapi import FastAPI
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

    serve.run(Bare.bind(), name="bare", route_prefix="/bare", blocking=False)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
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
        launch.start(launch.parse_args(["--nodes", "3", "--http-port", str(port), "--no-dashboard",
                                        "--state-dir", tempfile.mkdtemp(prefix="rr-bench-api-")]))
        deploy_bare(port)
        base = f"http://127.0.0.1:{port}"
        targets = [("bare Serve FastAPI", f"{base}/bare/stats"),
                   ("rustyray /stats", f"{base}/api/v1/network/stats"),
                   ("rustyray /nodes", f"{base}/api/v1/network/nodes")]
        for conc in args.concurrency:
            for name, url in targets:
                log(f"{name} at {conc} concurrent clients for {args.seconds:.0f}s ...")
                rows.append({"endpoint": name, "concurrency": conc, **asyncio.run(load(url, conc, args.seconds))})
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
        ratios[f"{conc} clients /stats vs bare"] = round(by["rustyray /stats"]["requests_per_s"]
                                                         / by["bare Serve FastAPI"]["requests_per_s"], 3)
    for k, v in ratios.items():
        print(f"  {k}: {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"params": vars(args), "rows": rows, "ratios": ratios}, indent=2))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
