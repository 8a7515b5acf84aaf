"""Load-balancer benchmark: selection throughput, key spread, keys moved on a join.

Run: ``python bench/loadbalancer.py`` (about a minute on 2 cores; ``--quick`` for ~10 s).
Prints progress to stderr, a table to stdout, and writes ``bench/results/loadbalancer.json``.

Targets are reported, not asserted:
- ConsistentHash max/mean key load <= 1.25 with bounded loads (epsilon = 0.25);
- fraction of keys moved when an (N+1)-th node joins within 10% of the ideal 1/(N+1).

Pooled vs unpooled request latency is measured between two in-process nodes on loopback and, with
``--ray``, between two node actors of a cluster started by ``rustyray.launch`` on a local Ray.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from rustyray.loadbalancer import (
    Adaptive,
    ConsistentHash,
    ConsistentHashConfig,
    LeastConnections,
    NodeLoad,
    RoundRobin,
    Strategy,
)
from rustyray.loadbalancer.strategies import HashRing, stable_hash64

RESULTS = pathlib.Path(__file__).parent / "results" / "loadbalancer.json"
VNODES = 100


def progress(msg: str) -> None:
    print(f"[loadbalancer] {msg}", file=sys.stderr, flush=True)


def bench_throughput(selections: int) -> list[dict[str, Any]]:
    """Selections per second per strategy on 10 nodes with a fixed load snapshot."""
    rng = random.Random(1)
    nodes = tuple(f"node-{i}" for i in range(10))
    stats = {
        n: NodeLoad(active_connections=rng.randint(0, 50), in_flight=rng.randint(0, 20),
                    latency_ewma_ms=rng.uniform(1, 100), error_rate=rng.random() * 0.1,
                    cpu_load=rng.random(), mem_load=rng.random())
        for n in nodes
    }
    keys = [f"user-{i}" for i in range(selections)]
    cases: list[tuple[str, Callable[[], Strategy], bool]] = [
        ("RoundRobin", RoundRobin, False),
        ("LeastConnections", LeastConnections, False),
        ("ConsistentHash", lambda: ConsistentHash(ConsistentHashConfig(bounded_loads=False)), False),
        ("ConsistentHash+bounded", ConsistentHash, True),
        ("Adaptive", lambda: Adaptive(random.Random(2)), False),
    ]
    rows = []
    for name, make, release in cases:
        strategy = make()
        start = time.perf_counter()
        for key in keys:
            sel = strategy.select(nodes, key, stats)
            if release:
                strategy.on_complete(sel.selected_node)
        elapsed = time.perf_counter() - start
        rows.append({"strategy": name, "selections": selections, "per_sec": round(selections / elapsed)})
        progress(f"throughput {name}: {selections / elapsed:,.0f}/s")
    return rows


def bench_spread(n_nodes: int, keys: list[str], bounded: bool) -> dict[str, Any]:
    """Assign every key (add-only, no releases) and report max / mean keys per node."""
    nodes = tuple(f"node-{i}" for i in range(n_nodes))
    strategy = ConsistentHash(ConsistentHashConfig(virtual_nodes=VNODES, bounded_loads=bounded))
    counts: Counter[str] = Counter()
    start = time.perf_counter()
    for key in keys:
        counts[strategy.select(nodes, key, {}).selected_node] += 1
    elapsed = time.perf_counter() - start
    mean = len(keys) / n_nodes
    loads = [counts.get(n, 0) for n in nodes]
    row = {
        "nodes": n_nodes, "vnodes": VNODES, "keys": len(keys), "bounded_loads": bounded,
        "max_over_mean": round(max(loads) / mean, 4), "min_over_mean": round(min(loads) / mean, 4),
        "stdev_over_mean": round(statistics.pstdev(loads) / mean, 4), "seconds": round(elapsed, 2),
    }
    progress(f"spread nodes={n_nodes} bounded={bounded}: max/mean={row['max_over_mean']}")
    return row


def _arc_share(ring: HashRing, node: str) -> float:
    total = 0
    for i, point in enumerate(ring.points):
        if ring.owners[i] == node:
            prev = ring.points[i - 1] if i else ring.points[-1] - 2**64
            total += point - prev
    return total / 2**64


def bench_join(n_nodes: int, hashes: list[int], sample_joiners: int) -> dict[str, Any]:
    """Keys moved when node N+1 joins (measured on the key set), and the spread over other joiners."""
    nodes = [f"node-{i}" for i in range(n_nodes)]
    before = HashRing(nodes, VNODES)
    joiner = f"node-{n_nodes}"
    after = HashRing([*nodes, joiner], VNODES)
    moved = 0
    wrong = 0
    for h in hashes:
        old, new = before.owner(h), after.owner(h)
        if old != new:
            moved += 1
            wrong += new != joiner
    ideal = 1 / (n_nodes + 1)
    fraction = moved / len(hashes)
    # The joiner's share of the ring decides the moved fraction; over many joiner names it
    # varies by about 1/sqrt(vnodes) relative, so report its distribution too.
    shares = [
        _arc_share(HashRing([*nodes, f"joiner-{j}"], VNODES), f"joiner-{j}") / ideal for j in range(sample_joiners)
    ]
    row = {
        "nodes_before": n_nodes, "vnodes": VNODES, "keys": len(hashes), "joiner": joiner,
        "fraction_moved": round(fraction, 5), "ideal": round(ideal, 5),
        "relative_error": round(fraction / ideal - 1, 4), "moved_between_old_nodes": wrong,
        "joiners_sampled": sample_joiners,
        "joiner_share_over_ideal_mean": round(statistics.fmean(shares), 4),
        "joiner_share_over_ideal_min": round(min(shares), 4),
        "joiner_share_over_ideal_max": round(max(shares), 4),
        "joiners_within_10pct": round(sum(abs(s - 1) <= 0.10 for s in shares) / len(shares), 3),
    }
    progress(f"join {n_nodes}->{n_nodes + 1}: moved {fraction:.4f} vs ideal {ideal:.4f}")
    return row


def bench_pooled_vs_unpooled(args: argparse.Namespace) -> dict[str, Any] | None:
    """Pooled vs unpooled Echo latency, in-process on loopback and (``--ray``) between node actors.

    Both runs use ``rustyray.pool.latency_probe_adapter`` (pooled: lease from ``PoolService``; unpooled:
    dial TCP + TLS 1.3 mTLS + hello per request). The in-process run is the baseline with no Ray in
    the path; the Ray run asks node1's actor, on a cluster started by ``rustyray.launch``, to probe
    node2, so the numbers are the real node-to-node path of a launched cluster.
    """
    import asyncio

    out: dict[str, Any] = {"in_process": asyncio.run(_pooled_vs_unpooled(args.pool_requests))}
    progress(f"in-process: pooled p50 {out['in_process']['pooled']['p50_ms']} ms, "
             f"unpooled p50 {out['in_process']['unpooled']['p50_ms']} ms")
    if args.ray:
        out["ray_cluster"] = _pooled_vs_unpooled_on_ray(args.pool_requests)
    return out


async def _pooled_vs_unpooled(requests: int) -> dict[str, Any]:
    import tempfile

    from rustyray.config import NodeConfig, TransportConfig
    from rustyray.node import Node
    from rustyray.pool.latency_probe_adapter import pooled_vs_unpooled

    with tempfile.TemporaryDirectory() as state:
        nodes = [Node(NodeConfig(node_id=f"bench{i}", state_dir=state,
                                 transport=TransportConfig(host="127.0.0.1", enable_quic=False)),
                      services=("pool",)) for i in (1, 2)]
        for node in nodes:
            await node.start()
        a, b = nodes
        try:
            a.learn_peer(b.node_id, b.tcp_address)
            result = await pooled_vs_unpooled(a, a.services["pool"], b.node_id, requests)
        finally:
            for node in nodes:
                await node.stop()
    result["where"] = "two in-process nodes, TCP + TLS 1.3 (mTLS), loopback"
    return result


def _pooled_vs_unpooled_on_ray(requests: int) -> dict[str, Any]:
    import ray

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    from routing import free_port, launch_cluster, node_call, ray_init, shutdown_cluster

    progress("starting a 2-node cluster on Ray (rustyray.launch) ...")
    started = not ray.is_initialized()
    if started:
        ray_init()
    try:
        launch_cluster(2, free_port())
        result = node_call("node1", "pool", "latency_probe", {"target_node": "node2", "requests": requests})
    finally:
        shutdown_cluster()
        if started:
            ray.shutdown()
    result["where"] = "node1 -> node2 actors of a rustyray.launch cluster on Ray, TCP + TLS 1.3 (mTLS)"
    progress(f"ray: pooled p50 {result['pooled']['p50_ms']} ms, unpooled p50 {result['unpooled']['p50_ms']} ms")
    return result


def print_table(result: dict[str, Any]) -> None:
    print("\nSelection throughput (10 nodes)")
    print(f"  {'strategy':<26}{'selections/s':>14}")
    for row in result["throughput"]:
        print(f"  {row['strategy']:<26}{row['per_sec']:>14,}")
    print(f"\nConsistentHash key spread ({VNODES} vnodes/node; target max/mean <= 1.25 with bounded loads)")
    print(f"  {'nodes':>6}{'bounded':>9}{'keys':>10}{'max/mean':>10}{'min/mean':>10}{'stdev/mean':>12}{'target':>8}")
    for row in result["spread"]:
        target = ("ok" if row["max_over_mean"] <= 1.25 else "MISS") if row["bounded_loads"] else "-"
        print(f"  {row['nodes']:>6}{row['bounded_loads']!s:>9}{row['keys']:>10,}{row['max_over_mean']:>10.3f}"
              f"{row['min_over_mean']:>10.3f}{row['stdev_over_mean']:>12.3f}{target:>8}")
    print("\nKeys moved on join (target: within 10% of ideal 1/(N+1))")
    print(f"  {'N->N+1':>9}{'moved':>9}{'ideal':>9}{'rel err':>9}{'target':>8}{'misrouted':>10}"
          f"  joiner share/ideal over {result['join'][0]['joiners_sampled']} names (min/mean/max, %within10%)")
    for row in result["join"]:
        target = "ok" if abs(row["relative_error"]) <= 0.10 else "MISS"
        span = (f"{row['joiner_share_over_ideal_min']:.3f}/{row['joiner_share_over_ideal_mean']:.3f}/"
                f"{row['joiner_share_over_ideal_max']:.3f}, {row['joiners_within_10pct']:.0%}")
        print(f"  {row['nodes_before']:>4}->{row['nodes_before'] + 1:<4}{row['fraction_moved']:>9.4f}"
              f"{row['ideal']:>9.4f}{row['relative_error']:>+9.3f}{target:>8}{row['moved_between_old_nodes']:>10}"
              f"  {span}")
    print("\nPooled vs unpooled Echo latency (64 B; unpooled = dial + TLS 1.3 mTLS + hello per request)")
    print(f"  {'where':<14}{'requests':>9}{'pooled p50':>12}{'p99':>9}{'unpooled p50':>14}{'p99':>9}{'p50 x':>7}")
    for where, row in result["pooled_vs_unpooled"].items():
        print(f"  {where:<14}{row['requests']:>9}{row['pooled']['p50_ms']:>12.3f}{row['pooled']['p99_ms']:>9.3f}"
              f"{row['unpooled']['p50_ms']:>14.3f}{row['unpooled']['p99_ms']:>9.3f}{row['p50_speedup']:>7.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1_000_000, help="keys for the spread and join runs")
    parser.add_argument("--selections", type=int, default=200_000, help="selections per strategy")
    parser.add_argument("--joiners", type=int, default=50, help="joiner names sampled for the share spread")
    parser.add_argument("--pool-requests", type=int, default=500, help="requests per pooled/unpooled run")
    parser.add_argument("--quick", action="store_true", help="100k keys, 50k selections")
    parser.add_argument("--ray", action="store_true",
                        help="also measure pooled vs unpooled between node actors of a launched Ray cluster")
    parser.add_argument("--out", type=pathlib.Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.keys, args.selections, args.joiners = 100_000, 50_000, 20
        args.pool_requests = 100
    started = time.perf_counter()
    progress(f"keys={args.keys:,} selections={args.selections:,}")
    keys = [f"key-{i}" for i in range(args.keys)]
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "params": {"keys": args.keys, "selections": args.selections, "vnodes": VNODES, "epsilon": 0.25},
        "throughput": bench_throughput(args.selections),
        "spread": [bench_spread(n, keys, bounded) for n in (10, 100) for bounded in (False, True)],
    }
    progress("hashing keys for the join runs")
    hashes = [stable_hash64(k) for k in keys]
    result["join"] = [bench_join(n, hashes, args.joiners) for n in (10, 100)]
    result["pooled_vs_unpooled"] = bench_pooled_vs_unpooled(args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print_table(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    progress(f"wrote {args.out} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
