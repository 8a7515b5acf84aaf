"""Idle cost of a node: CPU and wake-ups per node while a formed cluster does nothing, against bare asyncio.

Why: a runtime whose idle nodes burn CPU gets slower as it grows (issue 12 measured 3 % of a core per
idle node actor against 0.76 % for a bare Ray actor). This measures the node itself, without Ray: ``n``
nodes with every service (TLS, QUIC, SWIM, Raft, health, pool, routing, ...) in this process's event loop,
bootstrapped into one cluster and fully meshed, then ``--seconds`` of silence. For each ``n``:

- CPU per node: process CPU time over the window / wall time / n (one core = 100 %);
- wake-ups per node per second: event-loop iterations (``selector.select`` calls) / window / n;
- messages per node per second: frames sent by all nodes / window / n (heartbeats, SWIM, Raft).

Baseline, in the same run: ``n`` bare asyncio TLS-less TCP listeners, each with one idle task (the
floor: what an event loop with that many sockets costs when nothing happens).

    python bench/idle_cost.py                  # n = 1, 5, 10, 20; 10 s each
    python bench/idle_cost.py --nodes 5 10 --seconds 5

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


async def _window(wakes: WakeCounter, seconds: float) -> tuple[float, float, int]:
    cpu0, wall0, w0 = time.process_time(), time.perf_counter(), wakes.count
    await asyncio.sleep(seconds)
    return time.process_time() - cpu0, time.perf_counter() - wall0, wakes.count - w0


async def _meshed(nodes: list[Node], timeout: float) -> None:
    ids = {n.node_id for n in nodes}
    deadline = time.monotonic() + timeout
    while not all(ids - {n.node_id} <= {p for p, peer in n.peers.items() if peer.connected} for n in nodes):
        if time.monotonic() > deadline:
            raise TimeoutError("cluster did not mesh")
        await asyncio.sleep(0.1)


async def measure_nodes(n: int, seconds: float, wakes: WakeCounter) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state:
        nodes: list[Node] = []
        for i in range(1, n + 1):
            seeds = (nodes[0].tcp_address,) if nodes else ()
            node = Node(NodeConfig(node_id=f"node{i}", state_dir=state, transport=TransportConfig(), seeds=seeds))
            await node.start()
            nodes.append(node)
        if n > 1:
            members = {x.node_id: {"address": x.tcp_address, "quic_address": x.quic_address} for x in nodes}
            await nodes[0].call_api("membership", "bootstrap", {"cluster_name": "bench", "members": members})
            await _meshed(nodes, 60)
        await asyncio.sleep(3.0)  # let formation settle (elections, first gossip rounds)
        sent0 = sum(x.stats.messages_sent for x in nodes)
        cpu, wall, woke = await _window(wakes, seconds)
        sent = sum(x.stats.messages_sent for x in nodes) - sent0
        for node in nodes:
            await node.stop()
    return {"nodes": n, "cpu_pct_per_node": 100 * cpu / wall / n, "wakeups_per_node_s": woke / wall / n,
            "messages_per_node_s": sent / wall / n}


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
        log(f"{n} node(s): forming, then {args.seconds:g} s idle ...")
        ours = await measure_nodes(n, args.seconds, wakes)
        log(f"{n} bare asyncio listener(s): {args.seconds:g} s idle ...")
        bare = await measure_bare(n, args.seconds, wakes)
        rows.append({"nodes": n, "rustyray": ours, "bare_asyncio": bare})
    return {"bench": "idle_cost", "seconds": args.seconds, "python": platform.python_version(),
            "machine": platform.machine(), "rows": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 5, 10, 20])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--out", type=Path, default=RESULTS / "idle_cost.json")
    args = p.parse_args()
    result = asyncio.run(main_async(args))
    print(f"\n{'nodes':>5}  {'CPU %/node':>10}  {'bare %/node':>11}  {'wakeups/node/s':>14}  "
          f"{'bare wakeups':>12}  {'msgs/node/s':>11}")
    for row in result["rows"]:
        ours, bare = row["rustyray"], row["bare_asyncio"]
        print(f"{row['nodes']:>5}  {ours['cpu_pct_per_node']:>10.2f}  {bare['cpu_pct_per_node']:>11.3f}  "
              f"{ours['wakeups_per_node_s']:>14.1f}  {bare['wakeups_per_node_s']:>12.2f}  "
              f"{ours['messages_per_node_s']:>11.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
