"""Idle cost of a node: CPU and wake-ups per node while a formed cluster does nothing, against bare asyncio.

Why: a runtime whose idle nodes burn CPU gets slower as it grows (issue 12 measured 3 % of a core per
idle node actor against 0.76 % for a bare Ray actor). This measures the node itself, without Ray: ``n``
nodes with every service (TLS, QUIC, SWIM, Raft, health, pool, routing, ...) in this process's event loop,
bootstrapped into one cluster and fully meshed, then ``--seconds`` of silence. For each ``n``:

- CPU per node: process CPU time over the window / wall time / n (one core = 100 %);
- wake-ups per node per second: event-loop iterations (``selector.select`` calls) / window / n;
- messages per node per second: frames sent by all nodes / window / n (heartbeats, SWIM, Raft).

- heartbeats per node per second: heartbeats the nodes' health monitors recorded / window / n (all-pairs:
  N - 1; with ``[health] monitored_by_nr_of_members`` = k: min(k, N - 1)).

Baseline, in the same run: ``n`` bare asyncio TLS-less TCP listeners, each with one idle task (the
floor: what an event loop with that many sockets costs when nothing happens).

``--monitored-by`` compares heartbeat fan-outs in one run: each ``n`` is measured once per value, ``all``
meaning k = N - 1 (every node heartbeats every other, the cost before the monitoring ring) and an integer
meaning that k (the bare baseline runs once per ``n``). Without it the nodes keep the config default (9).

    python bench/idle_cost.py                  # n = 1, 5, 10, 20; 10 s each
    python bench/idle_cost.py --nodes 5 10 --seconds 5
    python bench/idle_cost.py --nodes 10 20 --monitored-by all 3 --seconds 10
    python bench/idle_cost.py --nodes 10 --profile /tmp/idle.prof   # + cProfile of the idle window

``--profile`` runs cProfile over each idle window of the nodes (not the bare baseline), prints the
top functions by own time and writes the stats for ``python -m pstats`` (issue 12's audit: which idle
work costs what). Profiling slows the nodes, so its CPU figures are not comparable with a plain run.

Prints a table and writes ``bench/results/idle_cost.json``. Loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"

from rustyray.config import NodeConfig, TransportConfig  # noqa: E402
from rustyray.node import Node  # noqa: E402


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class WakeCounter:
    """Counts event-loop iterations by wrapping the selector's ``select``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.count = 0
        selector = loop._selector  # type: ignore[attr-defined]
        original = selector.select

        def select(timeout: float | None = None) -> Any:
            self.count += 1
            return original(timeout)

        selector.select = select


async def _window(wakes: WakeCounter, seconds: float, profile: Path | None = None) -> tuple[float, float, int]:
    import cProfile

    prof = cProfile.Profile() if profile else None
    cpu0, wall0, w0 = time.process_time(), time.perf_counter(), wakes.count
    if prof:
        prof.enable()
    await asyncio.sleep(seconds)
    if prof:
        prof.disable()
    out = time.process_time() - cpu0, time.perf_counter() - wall0, wakes.count - w0
    if prof and profile:
        import io
        import pstats

        prof.dump_stats(profile)
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(35)
        print(buf.getvalue(), file=sys.stderr)
    return out


async def _meshed(nodes: list[Node], timeout: float) -> None:
    ids = {n.node_id for n in nodes}
    deadline = time.monotonic() + timeout
    while not all(ids - {n.node_id} <= {p for p, peer in n.peers.items() if peer.connected} for n in nodes):
        if time.monotonic() > deadline:
            raise TimeoutError("cluster did not mesh")
        await asyncio.sleep(0.1)


def _heartbeats(nodes: list[Node]) -> int:
    """Heartbeats recorded so far by every node's health monitor (peers it stopped watching drop out)."""
    return sum(r.heartbeats for x in nodes if "health" in x.services
               for r in x.services["health"].monitor.status(time.monotonic()))


def fan_out(spec: str, n: int) -> int | None:
    """``--monitored-by`` value -> k for an ``n``-node cluster (``all``: N - 1; ``default``: None, the config's)."""
    if spec == "default":
        return None
    if spec == "all":
        return max(n - 1, 1)
    k = int(spec)
    if k < 1:
        raise ValueError(f"--monitored-by {spec}: k must be >= 1 (or 'all')")
    return k


async def measure_nodes(n: int, seconds: float, wakes: WakeCounter, monitored_by: int | None = None,
                        profile: Path | None = None) -> dict[str, Any]:
    sections = {} if monitored_by is None else {"health": {"monitored_by_nr_of_members": monitored_by}}
    with tempfile.TemporaryDirectory() as state:
        nodes: list[Node] = []
        for i in range(1, n + 1):
            seeds = (nodes[0].tcp_address,) if nodes else ()
            node = Node(NodeConfig(node_id=f"node{i}", state_dir=state, transport=TransportConfig(), seeds=seeds,
                                   sections=sections))
            await node.start()
            nodes.append(node)
        if n > 1:
            members = {x.node_id: {"address": x.tcp_address, "quic_address": x.quic_address} for x in nodes}
            await nodes[0].call_api("membership", "bootstrap", {"cluster_name": "bench", "members": members})
            await _meshed(nodes, 60)
        await asyncio.sleep(3.0)  # let formation settle (elections, first gossip rounds)
        sent0, hb0 = sum(x.stats.messages_sent for x in nodes), _heartbeats(nodes)
        cpu, wall, woke = await _window(wakes, seconds, profile)
        sent, hb = sum(x.stats.messages_sent for x in nodes) - sent0, _heartbeats(nodes) - hb0
        k = nodes[0].config.cluster.health.monitored_by_nr_of_members
        for node in nodes:
            await node.stop()
    return {"nodes": n, "monitored_by": k, "cpu_pct_per_node": 100 * cpu / wall / n,
            "wakeups_per_node_s": woke / wall / n, "messages_per_node_s": sent / wall / n,
            "heartbeats_per_node_s": hb / wall / n}


async def measure_bare(n: int, seconds: float, wakes: WakeCounter) -> dict[str, Any]:
    servers, idle = [], asyncio.Event()
    tasks = [asyncio.ensure_future(idle.wait()) for _ in range(n)]
    for _ in range(n):
        servers.append(await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0))
    cpu, wall, woke = await _window(wakes, seconds)
    idle.set()
    await asyncio.gather(*tasks)
    for s in servers:
        s.close()
    return {"nodes": n, "cpu_pct_per_node": 100 * cpu / wall / n, "wakeups_per_node_s": woke / wall / n,
            "messages_per_node_s": 0.0}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    wakes = WakeCounter(asyncio.get_running_loop())
    rows = []
    for n in args.nodes:
        bare = None
        for spec in args.monitored_by:
            k = fan_out(spec, n)
            log(f"{n} node(s), monitored_by {spec} (k={k if k is not None else 'config'}): forming, then "
                f"{args.seconds:g} s idle ...")
            ours = await measure_nodes(n, args.seconds, wakes, k, args.profile)
            if bare is None:
                log(f"{n} bare asyncio listener(s): {args.seconds:g} s idle ...")
                bare = await measure_bare(n, args.seconds, wakes)
            rows.append({"nodes": n, "monitored_by": spec, "rustyray": ours, "bare_asyncio": bare})
    return {"bench": "idle_cost", "seconds": args.seconds, "python": platform.python_version(),
            "machine": platform.machine(), "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 5, 10, 20])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--monitored-by", nargs="+", default=["default"], metavar="K",
                   help="heartbeat fan-outs to compare: 'all' (k = N - 1), an integer k, or 'default' (the config's)")
    p.add_argument("--profile", type=Path, default=None, metavar="PATH",
                   help="cProfile the nodes' idle windows: print the top functions, write the stats to PATH")
    p.add_argument("--out", type=Path, default=RESULTS / "idle_cost.json")
    args = p.parse_args()
    for spec in args.monitored_by:
        try:
            fan_out(spec, 2)
        except ValueError as exc:
            p.error(str(exc))
    result = asyncio.run(main_async(args))
    print(f"\n{'nodes':>5}  {'k':>3}  {'CPU %/node':>10}  {'bare %/node':>11}  {'wakeups/node/s':>14}  "
          f"{'bare wakeups':>12}  {'msgs/node/s':>11}  {'hb/node/s':>9}")
    for row in result["rows"]:
        ours, bare = row["rustyray"], row["bare_asyncio"]
        print(f"{row['nodes']:>5}  {ours['monitored_by']:>3}  {ours['cpu_pct_per_node']:>10.2f}  "
              f"{bare['cpu_pct_per_node']:>11.3f}  {ours['wakeups_per_node_s']:>14.1f}  "
              f"{bare['wakeups_per_node_s']:>12.2f}  {ours['messages_per_node_s']:>11.1f}  "
              f"{ours['heartbeats_per_node_s']:>9.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
