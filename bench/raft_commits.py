"""Raft commits on real nodes against PySyncObj: throughput by in-flight depth, and leader failover.

Three in-process ``Node``s with the full service list (``rustyray.node.SERVICE_NAMES``), TLS 1.3
mTLS between them, bootstrapped like ``launch`` does; Raft persists through
``FileStorage`` with fsync (log append and hard state) on this machine's disk.
``MembershipService.raft`` (a ``RaftDriver``) is driven directly on the leader: for each
depth N in ``--concurrency`` (1, 16, 128, 1,000, 2,000), N proposers call ``propose(data)``
back to back for ``--seconds``, each waiting until its entry is applied on the leader (so
N proposals are in flight; the driver group-commits whatever is pending: one fsync and one
append stream per follower per Ready). Commit latency is the time of one ``propose`` call
(append + fsync on the leader and a majority, commit, apply on the leader).

Baseline, in the same run: PySyncObj 0.3.17 (``bench/pysyncobj_counter.py``), a replicated
counter on 3 local processes, the client in the leader's process keeping N ``incr`` calls in
flight through its callback API; without and with its journal file (which PySyncObj never
fsyncs). The table's last column is ours / PySyncObj's best figure at any depth.

Failover: stop the leader node (``Node.stop(graceful=False)``: no Goodbye; its Raft stops
ticking and its connections close) and measure until one of the two survivors is leader of
a higher term (elected) and has committed a fresh proposal (usable again); then restart the
stopped node from its state directory and wait until it has caught up before the next trial.
Run with the default Raft timing (``lan``: 50 ms ticks, 500-1000 ms election timeouts) and
with ``[raft] preset = "fast"`` (15 ms ticks, 150-300 ms: the timing ``bench/raft_failover.py``
simulates with 5 nodes), next to the simulated figures read from
``bench/results/raft_failover.json``.

Our three nodes run in this process's event loop (uvloop), all on the same cores; PySyncObj
gets three processes.

    python bench/raft_commits.py            # about two minutes
    python bench/raft_commits.py --quick
    python bench/raft_commits.py --trials 0 --profile /tmp/raft.pstats   # throughput only, profiled
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


def pysyncobj_sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    """PySyncObj 0.3.17 on 3 processes, without and with its journal, at the same depths."""
    from pysyncobj_counter import measure

    rows = []
    for journal in (False, True):
        log(f"pysyncobj (journal={journal}): depths {args.concurrency}, {args.seconds:.0f}s each ...")
        for r in measure(args.concurrency, args.seconds, journal):
            rows.append({"journal": journal, "concurrency": r["concurrency"], "commits": r["commits"],
                         "failed": r["failed"], "commits_per_s": r["commits_per_s"], **_lat(r["latencies"])})
    return rows


def _profiler(path: str | None) -> Any:
    if path is None:
        return None
    import cProfile

    prof = cProfile.Profile()
    prof.enable()
    return prof


def _profile_report(prof: Any, path: str | None) -> None:
    if prof is None or path is None:
        return
    import pstats

    prof.disable()
    prof.dump_stats(path)
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


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
        for c in args.concurrency:
            log(f"rustyray: {c} in flight for {args.seconds:.0f}s ...")
            prof = _profiler(args.profile if c == max(args.concurrency) else None)
            row = await pipelined(leader, c, args.seconds)
            _profile_report(prof, args.profile)
            out["throughput"].append({"mode": "pipelined", **row})
    finally:
        await stop_all(nodes)
    for preset in (args.presets if args.trials else []):
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
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 128, 1000, 2000],
                   help="in-flight depths (concurrent proposers), for both systems")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds per depth")
    p.add_argument("--no-pysyncobj", action="store_true", help="skip the PySyncObj baseline")
    p.add_argument("--profile", metavar="FILE", help="cProfile ours at the highest depth into FILE (.pstats)")
    p.add_argument("--trials", type=int, default=10, help="failover trials per Raft preset")
    p.add_argument("--presets", nargs="+", default=["lan", "fast"], choices=["lan", "fast"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "raft_commits.json"))
    args = p.parse_args()
    if args.quick:
        args.seconds, args.trials = 2.0, 3
    import uvloop

    load = os.getloadavg()

    t0 = time.monotonic()
    baseline = [] if args.no_pysyncobj else pysyncobj_sweep(args)
    results = uvloop.run(run(args))
    results["pysyncobj"] = baseline
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
    ours = {r["concurrency"]: r for r in results["throughput"]}
    theirs: dict[bool, dict[int, Any]] = {False: {}, True: {}}
    for r in results.get("pysyncobj", []):
        theirs[r["journal"]][r["concurrency"]] = r
    best = max((r["commits_per_s"] for r in results.get("pysyncobj", [])), default=None)
    print("commits/s with N in flight (ours: 3 nodes, TLS, fsync; PySyncObj: 3 processes, no fsync)")
    head = (f"{'in flight':>9} {'ours':>9} {'p50 ms':>7} {'p99 ms':>7} {'pso':>9} {'p50 ms':>7} "
            f"{'pso+jrnl':>9} {'p50 ms':>7} {'ours/pso-best':>13}")
    print(head)
    print("-" * len(head))
    for c, r in ours.items():
        cells = []
        for j in (False, True):
            t = theirs[j].get(c)
            cells.append(f"{t['commits_per_s']:>9,.0f} {t['p50_ms']:>7.1f}" if t else f"{'-':>9} {'-':>7}")
        ratio = f"{r['commits_per_s'] / best:>13.2f}" if best else f"{'-':>13}"
        print(f"{c:>9} {r['commits_per_s']:>9,.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
              f"{cells[0]} {cells[1]} {ratio}")
    if best:
        print(f"PySyncObj best: {best:,.0f}/s; ours best: {max(r['commits_per_s'] for r in ours.values()):,.0f}/s")
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
