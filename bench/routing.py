"""Routing on a live Ray cluster: fan-out latency and delivered messages/s, next to plain Ray actor calls.

Starts Ray in-process and, for each cluster size (3, 5, 10 node actors), a RustyRay
cluster exactly as ``python -m rustyray.launch`` does (placement group, node actors, Raft
bootstrap, the Serve API). Then:

Fan-out latency (p50 / p99, sequential, ``Heartbeat`` messages, one from node1 to every member):

- ``broadcast`` and ``scatter-gather`` (to all N nodes, node1 included) measured three ways:
  ``in node``: the time node1 itself reports (``broadcast_latency_ms`` / ``response_time_ms``: its
  fan-out over the mTLS connections until the last ack); ``actor call``: a driver actor's
  ``await node1.call.remote("routing", "broadcast", ...)`` (one Ray call + the fan-out);
  ``REST``: ``POST /api/v1/network/routing/broadcast`` (or ``/scatter-gather``) with httpx
  from this process (HTTP + Serve replica + Ray call + fan-out).
- baseline: N plain Ray actors with ``async def handle(msg)``; the same driver actor runs
  ``await asyncio.gather(*[a.handle.remote(m) for a in actors])`` (the async form of
  ``ray.get([...])``) with the same message.

Delivered messages/s: a driver actor keeps ``--concurrency`` routed sends in flight, spread over
every node sending to its successor, through the node actors (``call.remote("routing", "send",
{... "delivery": G})``), for each guarantee AtMostOnce / AtLeastOnce / ExactlyOnce, with 0 % and
with 5 % injected loss. Loss is turned on in every node with the routing service's
``fault_injection`` op (``FaultInjector``: each routed envelope *and* each ack is dropped with
probability 5 %, so about 10 % of first attempts fail) and turned off after the run. We count
sends acknowledged to the caller (distinct messages: the goodput), handler runs on the
receivers (``delivery_stats``; AtLeastOnce may run a retransmitted message twice) and
the frames the injectors dropped. Baseline: the same closed loop of ``a.handle.remote(m)`` calls
to the N plain actors (Ray has no loss injection; it runs over reliable gRPC).

The bench cluster raises ``[loadbalancer.circuit_breaker] failure_threshold`` so that the
breaker (5 consecutive failures by default) does not stop the lossy runs: this measures routing,
not the breaker. Prints tables and writes ``bench/results/routing.json``.

    flock /tmp/rustyray-ray.lock python bench/routing.py            # about 5 minutes
    flock /tmp/rustyray-ray.lock python bench/routing.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transport import latency_summary, log

from serve_apps.auth import admin_headers

RESULTS = Path(__file__).resolve().parent / "results"
GUARANTEES = ["AtMostOnce", "AtLeastOnce", "ExactlyOnce"]
BENCH_TOML = """
[loadbalancer.circuit_breaker]
failure_threshold = 1000000
"""
MESSAGE = {"seq": 1, "note": "benchmark heartbeat"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- Ray session and cluster
def ray_init(num_cpus: float = 2, address: str | None = None) -> None:
    import ray

    if address:
        ray.init(address=address, namespace="rustyray", log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, namespace="rustyray", log_to_driver=False,
                 _node_ip_address="127.0.0.1")


def launch_cluster(n: int, http_port: int, *, config_text: str = BENCH_TOML, extra: list[str] | None = None,
                   state_root: str | None = None) -> dict[str, Any]:
    """``launch.start`` in-process (as the CLI does) with a fresh state dir; returns its summary."""
    from rustyray import launch

    state = tempfile.mkdtemp(prefix=f"rr-bench-{n}n-", dir=state_root)
    cfg = Path(state) / "bench.toml"
    cfg.write_text(config_text)
    argv = ["--nodes", str(n), "--http-port", str(http_port), "--no-dashboard", "--state-dir", state,
            "--config", str(cfg), *(extra or [])]
    with contextlib.redirect_stdout(sys.stderr):  # launch's progress lines are progress: stderr
        return launch.start(launch.parse_args(argv))


def shutdown_cluster() -> None:
    from rustyray import launch

    with contextlib.redirect_stdout(sys.stderr):
        launch.shutdown(False)


def node_call(node_id: str, service: str, method: str, kwargs: dict[str, Any] | None = None) -> Any:
    import ray

    r = ray.get(ray.get_actor(node_id, namespace="rustyray").call.remote(service, method, kwargs or {}))
    if r[0] != "ok":
        raise RuntimeError(f"{node_id} {service}.{method}: {r}")
    return r[1]


def make_actors() -> tuple[Any, Any]:
    """The driver actor class and the baseline actor class (defined lazily: they need ``ray``)."""
    import ray

    @ray.remote(num_cpus=0.1)
    class PlainNode:
        """The baseline: what a node is if it is just a Ray actor."""

        def __init__(self, name: str) -> None:
            self.name = name
            self.handled = 0

        async def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
            self.handled += 1
            return {"node": self.name, "echo": msg}

        async def count(self) -> int:
            return self.handled

    @ray.remote(num_cpus=0)
    class Driver:
        """Issues the calls from inside the cluster, like an application actor would."""

        async def node_fanout(self, node_id: str, method: str, kwargs: dict[str, Any], samples: int,
                              warmup: int) -> dict[str, Any]:
            h = ray.get_actor(node_id, namespace="rustyray")
            key = "broadcast_latency_ms" if method == "broadcast" else "response_time_ms"
            e2e, inner, failed = [], [], 0
            for i in range(warmup + samples):
                s = time.perf_counter()
                r = await h.call.remote("routing", method, kwargs)
                took = time.perf_counter() - s
                if r[0] != "ok":
                    raise RuntimeError(f"{method}: {r}")
                body = r[1]
                complete = (body["successful_sends"] == body["total_nodes"] if method == "broadcast"
                            else body["responses_received"] == body["total_sent"])
                if i >= warmup:
                    e2e.append(took)
                    inner.append(body[key] / 1000)
                    failed += not complete
            return {"e2e": e2e, "inner": inner, "incomplete": failed}

        async def ray_fanout(self, actors: list[Any], samples: int, warmup: int) -> list[float]:
            out = []
            for i in range(warmup + samples):
                s = time.perf_counter()
                await asyncio.gather(*[a.handle.remote(MESSAGE) for a in actors])
                if i >= warmup:
                    out.append(time.perf_counter() - s)
            return out

        async def send_loop(self, pairs: list[tuple[str, str]], delivery: str, seconds: float,
                            concurrency: int, timeout_ms: float, tag: str) -> dict[str, Any]:
            handles = {s: ray.get_actor(s, namespace="rustyray") for s, _ in pairs}
            acked = failed = refused = dup = 0
            attempts: dict[int, int] = {}
            lat: list[float] = []
            node_lat: list[float] = []
            errors: dict[str, int] = {}
            deadline = time.perf_counter() + seconds

            async def worker(k: int) -> None:
                nonlocal acked, failed, refused, dup
                src, dst = pairs[k % len(pairs)]
                i = 0
                while time.perf_counter() < deadline:
                    kw: dict[str, Any] = {"target_node": dst, "message_type": "Heartbeat", "data": MESSAGE,
                                          "delivery": delivery, "timeout_ms": timeout_ms}
                    if delivery == "ExactlyOnce":
                        kw["idempotency_key"] = f"{tag}-{k}-{i}"
                    i += 1
                    s = time.perf_counter()
                    r = await handles[src].call.remote("routing", "send", kw)
                    took = time.perf_counter() - s
                    if r[0] != "ok":
                        refused += 1
                        errors[str(r[1])] = errors.get(str(r[1]), 0) + 1
                        continue
                    body = r[1]
                    if body["success"]:
                        acked += 1
                        dup += body["duplicate"]
                        lat.append(took)
                        node_lat.append(body["latency_ms"] / 1000)
                        attempts[body["attempts"]] = attempts.get(body["attempts"], 0) + 1
                    else:
                        failed += 1
                        err = (body.get("error") or "failed")[:60]
                        errors[err] = errors.get(err, 0) + 1

            start = time.perf_counter()
            await asyncio.gather(*(worker(k) for k in range(concurrency)))
            elapsed = time.perf_counter() - start
            return {"acked": acked, "failed": failed, "refused": refused, "duplicate_acks": dup,
                    "elapsed_s": elapsed, "latencies": lat, "node_latencies": node_lat, "attempts": attempts,
                    "errors": errors}

        async def ray_loop(self, actors: list[Any], seconds: float, concurrency: int) -> dict[str, Any]:
            done = 0
            lat: list[float] = []
            deadline = time.perf_counter() + seconds

            async def worker(k: int) -> None:
                nonlocal done
                a = actors[(k + 1) % len(actors)]
                while time.perf_counter() < deadline:
                    s = time.perf_counter()
                    await a.handle.remote(MESSAGE)
                    lat.append(time.perf_counter() - s)
                    done += 1

            start = time.perf_counter()
            await asyncio.gather(*(worker(k) for k in range(concurrency)))
            return {"acked": done, "elapsed_s": time.perf_counter() - start, "latencies": lat}

    return Driver, PlainNode


def processed(nodes: list[str]) -> int:
    """Handler runs so far, summed over the nodes (receiver side of ``delivery_stats``)."""
    return sum(node_call(n, "routing", "delivery_stats")["receiver"]["processed"] for n in nodes)


def set_loss(nodes: list[str], drop: float) -> list[dict[str, Any]]:
    return [node_call(n, "routing", "fault_injection", {"drop": drop, "seed": i + 1} if drop else {})
            for i, n in enumerate(nodes)]


# --------------------------------------------------------------------------- measurements
def rest_fanout(url: str, body: dict[str, Any], samples: int, warmup: int, headers: dict[str, str]) -> list[float]:
    import httpx

    out = []
    with httpx.Client(timeout=30, headers=headers) as client:
        for i in range(warmup + samples):
            s = time.perf_counter()
            r = client.post(url, json=body)
            took = time.perf_counter() - s
            r.raise_for_status()
            if i >= warmup:
                out.append(took)
    return out


def ms(samples: list[float]) -> dict[str, float]:
    s = latency_summary(samples)
    return {"p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "mean_ms": s["mean_ms"]}


def ours(n: int, args: argparse.Namespace, driver: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import ray

    port = free_port()
    log(f"[{n} nodes] launching the cluster ...")
    t0 = time.monotonic()
    state = launch_cluster(n, port)["state_dir"]
    log(f"[{n} nodes] up in {time.monotonic() - t0:.1f}s")
    nodes = [f"node{i}" for i in range(1, n + 1)]
    lat_rows: list[dict[str, Any]] = []
    tput_rows: list[dict[str, Any]] = []
    try:
        api = f"http://127.0.0.1:{port}/api/v1/network/routing"
        fanouts = {
            "broadcast": {"message_type": "Heartbeat", "data": MESSAGE, "timeout_ms": 5000},
            "scatter-gather": {"target_nodes": nodes, "message_type": "Heartbeat", "data": MESSAGE,
                               "timeout_ms": 5000},
        }
        for name, body in fanouts.items():
            method = name.replace("-", "_")
            log(f"[{n} nodes] {name}: {args.samples} via the node actor ...")
            r = ray.get(driver.node_fanout.remote("node1", method, body, args.samples, 20))
            lat_rows.append({"nodes": n, "op": name, "path": "in node (node-reported)", **ms(r["inner"]),
                             "incomplete": r["incomplete"]})
            lat_rows.append({"nodes": n, "op": name, "path": "driver actor -> node actor", **ms(r["e2e"]),
                             "incomplete": r["incomplete"]})
            log(f"[{n} nodes] {name}: {args.rest_samples} via REST ...")
            lat_rows.append({"nodes": n, "op": name, "path": "REST API (httpx)",
                             **ms(rest_fanout(f"{api}/{name}", body, args.rest_samples, 10, admin_headers(state)))})
        if n in args.throughput_sizes:
            pairs = [(nodes[i], nodes[(i + 1) % n]) for i in range(n)]
            for loss in (0.0, args.loss):
                if loss:
                    set_loss(nodes, loss)
                try:
                    for g in GUARANTEES:
                        log(f"[{n} nodes] {g}, {loss:.0%} loss: {args.concurrency} in flight for "
                            f"{args.seconds:.0f}s ...")
                        before = processed(nodes)
                        r = ray.get(driver.send_loop.remote(pairs, g, args.seconds, args.concurrency,
                                                            args.timeout_ms, f"{n}-{g}-{loss}"))
                        time.sleep(0.5)  # let late retransmissions land before counting handler runs
                        runs = processed(nodes) - before
                        tput_rows.append({
                            "nodes": n, "system": "rustyray routed send", "delivery": g, "loss": loss,
                            "acked_per_s": round(r["acked"] / r["elapsed_s"], 1),
                            "handler_runs_per_s": round(runs / r["elapsed_s"], 1),
                            "acked": r["acked"], "failed": r["failed"], "refused": r["refused"],
                            "handler_runs": runs, "duplicate_acks": r["duplicate_acks"],
                            "attempts": r["attempts"], "errors": r["errors"], **ms(r["latencies"]),
                            "in_node": ms(r["node_latencies"]),
                        })
                finally:
                    if loss:
                        counters = set_loss(nodes, 0.0)
                        dropped = sum((c["previous_counters"] or {}).get("dropped", 0) for c in counters)
                        passed = sum((c["previous_counters"] or {}).get("passed", 0) for c in counters)
                        for row in tput_rows:
                            if row["nodes"] == n and row["loss"] == loss:
                                row["frames_dropped_all_guarantees"] = dropped
                                row["frames_passed_all_guarantees"] = passed
    finally:
        log(f"[{n} nodes] stopping the cluster ...")
        shutdown_cluster()
    return lat_rows, tput_rows


def baseline(n: int, args: argparse.Namespace, driver: Any, plain_cls: Any) -> tuple[list[dict[str, Any]],
                                                                                      list[dict[str, Any]]]:
    import ray

    actors = [plain_cls.remote(f"plain{i}") for i in range(1, n + 1)]
    ray.get([a.count.remote() for a in actors])
    try:
        log(f"[{n} nodes] Ray baseline fan-out ...")
        lat = ray.get(driver.ray_fanout.remote(actors, args.samples, 20))
        lat_rows = [{"nodes": n, "op": "fan-out (broadcast = scatter-gather)",
                     "path": "Ray: gather(N actor calls)", **ms(lat), "incomplete": 0}]
        tput_rows = []
        if n in args.throughput_sizes:
            log(f"[{n} nodes] Ray baseline: {args.concurrency} calls in flight for {args.seconds:.0f}s ...")
            r = ray.get(driver.ray_loop.remote(actors, args.seconds, args.concurrency))
            handled = sum(ray.get([a.count.remote() for a in actors]))
            tput_rows.append({"nodes": n, "system": "Ray actor call", "delivery": "(gRPC, reliable)", "loss": 0.0,
                              "acked_per_s": round(r["acked"] / r["elapsed_s"], 1),
                              "handler_runs_per_s": None, "acked": r["acked"], "failed": 0, "refused": 0,
                              "handler_runs": handled, **ms(r["latencies"])})
        return lat_rows, tput_rows
    finally:
        for a in actors:
            ray.kill(a)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 10])
    p.add_argument("--throughput-sizes", type=int, nargs="+", default=[3, 5, 10],
                   help="cluster sizes that also run the delivered-messages/s part")
    p.add_argument("--samples", type=int, default=300, help="fan-outs per latency measurement (actor paths)")
    p.add_argument("--rest-samples", type=int, default=150, help="fan-outs per REST latency measurement")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds per delivered-messages/s run")
    p.add_argument("--concurrency", type=int, default=64, help="routed sends in flight (whole cluster)")
    p.add_argument("--timeout-ms", type=float, default=2000.0, help="timeout_ms of every routed send")
    p.add_argument("--loss", type=float, default=0.05, help="injected drop probability per routed frame")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--plot-only", action="store_true", help="redraw the plots from the JSON of an earlier run")
    p.add_argument("--out", default=str(RESULTS / "routing.json"))
    args = p.parse_args()
    if args.plot_only:
        prev = json.loads(Path(args.out).read_text())
        print_tables(prev["latency"], prev["throughput"])
        log(f"redrew {', '.join(plot(prev['latency'], prev['throughput'], Path(args.out).parent))}")
        return 0
    if args.quick:
        args.samples, args.rest_samples, args.seconds = 100, 50, 2.0
        args.throughput_sizes = [5] if 5 in args.sizes else args.sizes[:1]
    import ray

    t_start = time.monotonic()
    load_at_start = os.getloadavg()
    ray_init()
    lat_rows: list[dict[str, Any]] = []
    tput_rows: list[dict[str, Any]] = []
    try:
        driver_cls, plain_cls = make_actors()
        driver = driver_cls.remote()
        for n in args.sizes:
            lr, tr = ours(n, args, driver)
            lat_rows += lr
            tput_rows += tr
            lr, tr = baseline(n, args, driver, plain_cls)
            lat_rows += lr
            tput_rows += tr
    finally:
        ray.shutdown()
    print_tables(lat_rows, tput_rows)
    plots = plot(lat_rows, tput_rows, Path(args.out).parent)
    out = {"params": vars(args), "python": platform.python_version(), "ray": ray.__version__,
           "loadavg_at_start": load_at_start, "plots": plots,
           "wall_seconds": round(time.monotonic() - t_start, 1),
           "measured_paths": {
               "in node (node-reported)": "node1's own timing of the fan-out (routing service, mTLS connections)",
               "driver actor -> node actor": "a Ray actor awaits node1.call.remote('routing', op, kwargs)",
               "REST API (httpx)": "POST /api/v1/network/routing/<op> through Serve from the bench process",
               "Ray: gather(N actor calls)": "the same driver actor awaits gather(a.handle.remote(m) for a in actors)",
               "rustyray routed send": "driver actor -> node_i.call.remote('routing', 'send', ...) -> node_i+1",
           },
           "latency": lat_rows, "throughput": tput_rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    log(f"wrote {args.out}")
    return 0


def plot(lat_rows: list[dict[str, Any]], tput_rows: list[dict[str, Any]], outdir: Path) -> list[str]:
    """``routing_fanout.png`` (p50/p99 against N per path) and ``routing_delivery.png`` (acked/s per guarantee)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    series = [("broadcast", "in node (node-reported)"), ("broadcast", "driver actor -> node actor"),
              ("scatter-gather", "in node (node-reported)"), ("scatter-gather", "driver actor -> node actor"),
              ("fan-out (broadcast = scatter-gather)", "Ray: gather(N actor calls)")]
    for ax, q in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        for op, path in series:
            pts = [(r["nodes"], r[q]) for r in lat_rows if r["op"] == op and r["path"] == path]
            if pts:
                label = path if op.startswith("fan-out") else f"{op}: {path}"
                ax.plot(*zip(*pts, strict=True), "o--" if op.startswith("fan-out") else "o-", label=label)
        ax.set(xlabel="cluster size (nodes)", title=f"fan-out latency {q[:3]}")
        ax.set_xticks(sorted({r["nodes"] for r in lat_rows}))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("ms")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(outdir / "routing_fanout.png", dpi=110)
    plt.close(fig)
    files.append("routing_fanout.png")
    ours = [r for r in tput_rows if r["system"] == "rustyray routed send"]
    sizes = sorted({r["nodes"] for r in ours})
    if sizes:
        fig, axes = plt.subplots(1, len(sizes), figsize=(4.2 * len(sizes), 4), sharey=True, squeeze=False)
        width = 0.38
        for ax, n in zip(axes[0], sizes, strict=True):
            for k, loss in enumerate(sorted({r["loss"] for r in ours})):
                vals = [next((r["acked_per_s"] for r in ours if r["nodes"] == n and r["delivery"] == g
                              and r["loss"] == loss), 0) for g in GUARANTEES]
                ax.bar([i + k * width for i in range(len(GUARANTEES))], vals, width, label=f"{loss:.0%} loss")
            ray_row = next((r for r in tput_rows if r["system"] == "Ray actor call" and r["nodes"] == n), None)
            if ray_row:
                ax.axhline(ray_row["acked_per_s"], color="gray", linestyle="--", label="Ray actor calls")
            ax.set_xticks([i + width / 2 for i in range(len(GUARANTEES))], GUARANTEES, fontsize=8)
            ax.set(title=f"{n} nodes")
            ax.grid(alpha=0.3, axis="y")
        axes[0][0].set_ylabel("acknowledged sends / s")
        axes[0][-1].legend(fontsize=8)
        fig.suptitle("Delivered messages/s per guarantee (64 in flight through the node actors)")
        fig.tight_layout()
        fig.savefig(outdir / "routing_delivery.png", dpi=110)
        plt.close(fig)
        files.append("routing_delivery.png")
    return files


def print_tables(lat_rows: list[dict[str, Any]], tput_rows: list[dict[str, Any]]) -> None:
    head = f"{'nodes':>5}  {'op':<15} {'path':<28} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
    print(head)
    print("-" * len(head))
    for r in lat_rows:
        op = "fan-out" if r["op"].startswith("fan-out") else r["op"]
        print(f"{r['nodes']:>5}  {op:<15} {r['path']:<28} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['mean_ms']:>8.2f}")
    if not tput_rows:
        return
    print()
    head = (f"{'nodes':>5}  {'system':<21} {'delivery':<17} {'loss':>5} {'acked/s':>9} {'runs/s':>9} "
            f"{'failed':>7} {'p50 ms':>8} {'p99 ms':>8}")
    print(head)
    print("-" * len(head))
    for r in tput_rows:
        runs = "-" if r["handler_runs_per_s"] is None else f"{r['handler_runs_per_s']:,.0f}"
        print(f"{r['nodes']:>5}  {r['system']:<21} {r['delivery']:<17} {r['loss']:>5.0%} {r['acked_per_s']:>9,.0f} "
              f"{runs:>9} {r['failed'] + r['refused']:>7} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")


if __name__ == "__main__":
    sys.exit(main())
