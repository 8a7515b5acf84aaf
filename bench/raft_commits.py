"""Raft commits on real nodes: throughput, commit latency and leader failover.

Three in-process ``Node``s with the full service list (``rustyray.node.SERVICE_NAMES``), TLS 1.3
mTLS between them, bootstrapped like ``launch`` does; Raft persists through
``FileStorage`` with fsync (log append and hard state) on this machine's disk.
``MembershipService.raft`` (a ``RaftDriver``) is driven directly on the leader:

- sequential: ``propose(data)`` and wait until it is applied on the leader, one at a time;
- pipelined: ``--concurrency`` proposers at once (the driver batches whatever is pending
  into one Ready: one fsync, one AppendEntries per follower).

Commit latency is the time of one ``propose`` call (append + fsync on the leader and a
majority, commit, apply on the leader).

Failover: stop the leader node (``Node.stop(graceful=False)``: no Goodbye; its Raft stops
ticking and its connections close) and measure until one of the two survivors is leader of
a higher term (elected) and has committed a fresh proposal (usable again); then restart the
stopped node from its state directory and wait until it has caught up before the next trial.
Run with the default Raft timing (``lan``: 50 ms ticks, 500-1000 ms election timeouts) and
with ``[raft] preset = "fast"`` (15 ms ticks, 150-300 ms: the timing ``bench/raft_failover.py``
simulates with 5 nodes), next to the simulated figures read from
``bench/results/raft_failover.json``.

Everything runs in this process's event loop (uvloop), all three nodes on the same cores.

    python bench/raft_commits.py            # about a minute
    python bench/raft_commits.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transport import latency_summary, log, pct

RESULTS = Path(__file__).resolve().parent / "results"
IDS = ["node1", "node2", "node3"]


def make_node(node_id: str, state: str, preset: str) -> Any:
    from rustyray.config import NodeConfig, TransportConfig
    from rustyray.node import Node

    sections = {"raft": {"preset": preset}}
    return Node(NodeConfig(node_id=node_id, state_dir=state, transport=TransportConfig(tls=True),
                           sections=sections))


def raft(node: Any) -> Any:
    return node.services["membership"].raft


async def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def leader_of(nodes: dict[str, Any], min_term: int = 0) -> Any | None:
    for n in nodes.values():
        if n.running and raft(n).is_leader and raft(n).status()["term"] >= min_term:
            return n
    return None


async def start_cluster(state: str, preset: str) -> dict[str, Any]:
    nodes = {i: make_node(i, state, preset) for i in IDS}
    for n in nodes.values():
        await n.start()
    members = {k: {"address": v.tcp_address, "quic_address": v.quic_address} for k, v in nodes.items()}
    await nodes["node1"].call_api("membership", "bootstrap", {"cluster_name": "bench", "members": members})
    await wait_until(lambda: leader_of(nodes) is not None, 20, "a leader")
    await caught_up(nodes)
    return nodes


async def caught_up(nodes: dict[str, Any], timeout: float = 30) -> None:
    """Every running node has applied the leader's commit index and knows the leader."""

    def ok() -> bool:
        lead = leader_of(nodes)
        if lead is None:
            return False
        commit = raft(lead).status()["commit_index"]
        return all(raft(n).status()["applied_index"] >= commit and raft(n).leader == lead.node_id
                   for n in nodes.values() if n.running)

    await wait_until(ok, timeout, "followers to catch up", 0.01)


async def stop_all(nodes: dict[str, Any]) -> None:
    for n in nodes.values():
        with contextlib.suppress(Exception):
            await n.stop()


# --------------------------------------------------------------------------- throughput
async def sequential(leader: Any, count: int) -> dict[str, Any]:
    r = raft(leader)
    samples = []
    start = time.perf_counter()
    for i in range(count):
        s = time.perf_counter()
        await r.propose(b"seq-%d" % i, timeout=10)
        samples.append(time.perf_counter() - s)
    elapsed = time.perf_counter() - start
    return {"commits": count, "commits_per_s": round(count / elapsed, 1), **_lat(samples)}


async def pipelined(leader: Any, concurrency: int, seconds: float) -> dict[str, Any]:
    r = raft(leader)
    samples: list[float] = []
    deadline = time.perf_counter() + seconds

    async def proposer(k: int) -> None:
        i = 0
        while time.perf_counter() < deadline:
            s = time.perf_counter()
            await r.propose(b"pipe-%d-%d" % (k, i), timeout=10)
            samples.append(time.perf_counter() - s)
            i += 1

    start = time.perf_counter()
    await asyncio.gather(*(proposer(k) for k in range(concurrency)))
    elapsed = time.perf_counter() - start
    return {"concurrency": concurrency, "commits": len(samples),
            "commits_per_s": round(len(samples) / elapsed, 1), **_lat(samples)}


def _lat(samples: list[float]) -> dict[str, float]:
    s = latency_summary(samples)
    return {"p50_ms": s["p50_ms"], "p99_ms": s["p99_ms"], "mean_ms": s["mean_ms"]}


# --------------------------------------------------------------------------- failover
async def failover_trial(nodes: dict[str, Any], state: str, preset: str) -> dict[str, float]:
    from rustyray.membership.raft import NotLeader, ProposalDropped

    old = leader_of(nodes)
    assert old is not None
    term = raft(old).status()["term"]
    survivors = {k: v for k, v in nodes.items() if k != old.node_id}
    t0 = time.perf_counter()
    stopping = asyncio.ensure_future(old.stop(graceful=False))
    elected = committed = None
    while committed is None:
        lead = leader_of(survivors, term + 1)
        if lead is None:
            await asyncio.sleep(0.002)
            if time.perf_counter() - t0 > 30:
                raise TimeoutError("no new leader within 30 s")
            continue
        if elected is None:
            elected = time.perf_counter() - t0
        try:
            await raft(lead).propose(b"failover-probe", timeout=5)
            committed = time.perf_counter() - t0
        except (NotLeader, ProposalDropped, TimeoutError):
            await asyncio.sleep(0.002)
    await stopping
    stop_s = time.perf_counter() - t0
    # bring the old leader back from its state dir and let it catch up
    back = make_node(old.node_id, state, preset)
    await back.start()
    nodes[old.node_id] = back
    await caught_up(nodes)
    await asyncio.sleep(0.3)
    return {"elected_ms": elected * 1000, "committed_ms": committed * 1000, "old_leader_stop_ms": stop_s * 1000}


def _dist(values: list[float]) -> dict[str, float]:
    return {"p50": round(pct(values, 0.5), 1), "p90": round(pct(values, 0.9), 1),
            "max": round(max(values), 1), "min": round(min(values), 1),
            "mean": round(sum(values) / len(values), 1)}


def fsync_cost(directory: str, n: int = 100) -> dict[str, float]:
    """p50/p99 of appending 100 bytes and fsyncing, in the directory the Raft logs live in (context for
    the sequential figure: every Ready fsyncs the log, and the hard state file plus its directory)."""
    path = Path(directory) / "fsync-probe"
    samples = []
    with open(path, "ab") as f:
        for _ in range(n):
            s = time.perf_counter()
            f.write(b"x" * 100)
            f.flush()
            os.fsync(f.fileno())
            samples.append(time.perf_counter() - s)
    path.unlink()
    return _lat(samples)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"throughput": [], "failover": {}}
    state = tempfile.mkdtemp(prefix="rr-bench-raft-")
    out["fsync_100_bytes"] = fsync_cost(state)
    log(f"fsync of a 100-byte append here: p50 {out['fsync_100_bytes']['p50_ms']:.2f} ms")
    log(f"starting 3 nodes (full services, TLS, FileStorage+fsync) in {state} ...")
    nodes = await start_cluster(state, "lan")
    try:
        leader = leader_of(nodes)
        log(f"leader {leader.node_id}: sequential propose-and-wait x{args.sequential} ...")
        out["throughput"].append({"mode": "sequential", "concurrency": 1, **await sequential(leader, args.sequential)})
        for c in args.concurrency:
            log(f"pipelined, {c} concurrent proposers for {args.seconds:.0f}s ...")
            out["throughput"].append({"mode": "pipelined", **await pipelined(leader, c, args.seconds)})
    finally:
        await stop_all(nodes)
    for preset in args.presets:
        state = tempfile.mkdtemp(prefix=f"rr-bench-raft-{preset}-")
        nodes = await start_cluster(state, preset)
        trials = []
        try:
            for t in range(args.trials):
                r = await failover_trial(nodes, state, preset)
                log(f"failover [{preset}] trial {t + 1}/{args.trials}: elected {r['elected_ms']:.0f} ms, "
                    f"committed {r['committed_ms']:.0f} ms")
                trials.append(r)
        finally:
            await stop_all(nodes)
        cfg = raft(nodes["node1"]).config
        out["failover"][preset] = {
            "election_timeout_ms": [round(cfg.election_tick * cfg.tick_interval * 1000),
                                    round(2 * cfg.election_tick * cfg.tick_interval * 1000)],
            "heartbeat_ms": round(cfg.heartbeat_tick * cfg.tick_interval * 1000, 1),
            "trials": len(trials),
            "time_to_new_leader_elected_ms": _dist([r["elected_ms"] for r in trials]),
            "time_to_new_leader_commit_ms": _dist([r["committed_ms"] for r in trials]),
            "samples": [{k: round(v, 1) for k, v in r.items()} for r in trials],
        }
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequential", type=int, default=1000, help="sequential proposals")
    p.add_argument("--concurrency", type=int, nargs="+", default=[16, 128], help="pipelined proposers")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per pipelined run")
    p.add_argument("--trials", type=int, default=10, help="failover trials per Raft preset")
    p.add_argument("--presets", nargs="+", default=["lan", "fast"], choices=["lan", "fast"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "raft_commits.json"))
    args = p.parse_args()
    if args.quick:
        args.sequential, args.seconds, args.trials = 200, 3.0, 3
    import uvloop

    load = os.getloadavg()

    t0 = time.monotonic()
    results = uvloop.run(run(args))
    sim_path = RESULTS / "raft_failover.json"
    sim = json.loads(sim_path.read_text()) if sim_path.exists() else None
    print_tables(results, sim)
    out = {"params": vars(args), "python": platform.python_version(), "loadavg_at_start": load,
           "wall_seconds": round(time.monotonic() - t0, 1),
           **results, "simulated": None if sim is None else {
               "source": "bench/results/raft_failover.json", "model": sim.get("model"), "trials": sim.get("trials"),
               "time_to_new_leader_elected_ms": sim.get("time_to_new_leader_elected_ms"),
               "time_to_new_leader_commit_ms": sim.get("time_to_new_leader_commit_ms")}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    log(f"wrote {args.out}")
    return 0


def print_tables(results: dict[str, Any], sim: dict[str, Any] | None) -> None:
    f = results["fsync_100_bytes"]
    print(f"fsync of a 100-byte append on this disk: p50 {f['p50_ms']:.2f} ms, p99 {f['p99_ms']:.2f} ms")
    head = f"{'mode':<11} {'proposers':>9} {'commits':>8} {'commits/s':>10} {'p50 ms':>8} {'p99 ms':>8}"
    print(head)
    print("-" * len(head))
    for r in results["throughput"]:
        print(f"{r['mode']:<11} {r['concurrency']:>9} {r['commits']:>8} {r['commits_per_s']:>10,.1f} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
    print()
    head = (f"{'failover':<34} {'timeouts ms':>11} {'n':>5} {'elect p50':>9} {'elect max':>9} "
            f"{'commit p50':>10} {'commit p90':>10} {'commit max':>10}")
    print(head)
    print("-" * len(head))
    rows = []
    for preset, f in results["failover"].items():
        rows.append((f"real, 3 nodes, {preset}", "-".join(map(str, f["election_timeout_ms"])), f["trials"],
                     f["time_to_new_leader_elected_ms"], f["time_to_new_leader_commit_ms"]))
    if sim is not None:
        m = sim["model"]
        rows.append((f"simulated, {m['nodes']} nodes (raft_failover)", "-".join(map(str, m["election_timeout_ms"])),
                     sim["trials"], sim["time_to_new_leader_elected_ms"], sim["time_to_new_leader_commit_ms"]))
    for name, to, n, e, c in rows:
        print(f"{name:<34} {to:>11} {n:>5} {e['p50']:>9.0f} {e['max']:>9.0f} {c['p50']:>10.0f} "
              f"{c['p90']:>10.0f} {c['max']:>10.0f}")


if __name__ == "__main__":
    sys.exit(main())
