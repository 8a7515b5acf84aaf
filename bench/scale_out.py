"""Scale-out: cluster formation, aggregate throughput and broadcast p99 against the number of nodes.

Real part (Ray): for 2, 5, 10 and 20 node actors (``--sizes``), one cluster after the other, each
started exactly as ``python -m rustyray.launch`` does (in-process ``launch.start``):

- formation time: from the start of ``launch.start`` until every node actor answers, every
  node's SWIM view lists all N members ``Alive`` and all N agree on one Raft leader (polled
  every 100 ms from a thread while launch runs). ``launch total`` is launch's whole start-up,
  which also deploys the Serve API after the cluster has formed.
- aggregate throughput, generated inside the nodes (the headline): every node runs the routing
  service's ``load_run`` to its successor, all N started at once through one actor call each:
  ``--per-node`` AtLeastOnce sends kept outstanding from the node's own event loop for
  ``--seconds`` (envelope out over the mTLS connection, handler on the successor, ack back). We sum
  the nodes' acknowledged sends/s, report the per-node rate, the worst node's send p99, the
  nodes' summed ``messages_received``/s (all frames: envelopes, acks, SWIM, Raft, heartbeats) and the
  ratio largest/2-node (issue 12's target: >= 0.8x at 20 nodes, formation <= 30 s).
- bare-Ray baseline, same run, same sizes: N plain async Ray actors, each keeping ``--per-node``
  calls to its successor's ``handle`` method outstanding for ``--seconds``; aggregate calls/s. Run
  after the RustyRay cluster of that size has stopped, so the two never share the cores.
- driver-driven throughput (the old measure, ``--no-driver-loop`` skips it): a driver actor keeps
  ``--per-node * N`` routed sends in flight through ``call.remote("routing", "send", ...)``: one
  Ray actor call per send, so it measures Ray calls more than routing.
- broadcast p99: sequential ``broadcast`` from node1 to all N (node-reported and through a
  driver actor's call).
- idle CPU, side by side (issue 12: per node actor <= 1.5x a bare idle async Ray actor, flat +-25 %
  from 5 to 20 nodes): once the cluster has formed and settled (``--idle-settle``), N bare async Ray
  actors, each running one periodic asyncio task (``--bare-tick`` s, the minimum a real actor has),
  are started on the same Ray cluster; then both groups idle for ``--idle-seconds`` in the same
  window. CPU per actor = utime + stime from ``/proc/<pid>/stat`` (every thread of the worker
  process; pids from the actors themselves) over the window; one core = 100 %. Skipped with
  ``--address`` (the pids are not local).

Simulator part: the deterministic SWIM simulator (``rustyray.sim``) through
``bench/membership.py``'s ``crash_join_run`` with Lifeguard, 1 % loss: time until 99 % of
the survivors declared a crashed member Dead, and time until 99.99 % know a joiner, for
100 / 1,000 / 10,000 members (fewer crashes and joins at the larger sizes, see ``--sim-events``).

Writes ``bench/results/scale_out.json`` and six plots ``bench/results/scale_out_*.png`` (when matplotlib
is installed; ``--plot-only`` redraws them from the JSON).

    flock /tmp/rustyray-ray.lock python bench/scale_out.py --ray-only --sizes 2 5 10 20 --seconds 5
    flock /tmp/rustyray-ray.lock python bench/scale_out.py              # Ray part + simulator
    flock /tmp/rustyray-ray.lock python bench/scale_out.py --quick
    python bench/scale_out.py --address auto --launch-args="--host auto"   # on a `ray up` cluster
    python bench/scale_out.py --sim-only                                 # simulator part only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from routing import BENCH_TOML, free_port, launch_cluster, make_actors, ms, node_call, ray_init, shutdown_cluster
from transport import log

RESULTS = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------- Ray part
class FormationWatch(threading.Thread):
    """Polls the node actors until all N are Alive in every view and agree on one Raft leader."""

    def __init__(self, n: int, t0: float, timeout: float = 300.0) -> None:
        super().__init__(daemon=True, name="formation-watch")
        self.ids = [f"node{i}" for i in range(1, n + 1)]
        self.t0 = t0
        self.timeout = timeout
        self.formed_s: float | None = None
        self.leader: str | None = None
        self.stop = threading.Event()

    def formed(self) -> bool:
        import ray

        try:
            handles = [ray.get_actor(i, namespace="rustyray") for i in self.ids]
        except ValueError:
            return False
        try:
            members = ray.get([h.call.remote("membership", "members", {}) for h in handles], timeout=5)
            rafts = ray.get([h.call.remote("membership", "raft_status", {}) for h in handles], timeout=5)
        except Exception:
            return False
        want = set(self.ids)
        for m in members:
            if m[0] != "ok" or {x["node"] for x in m[1]["members"] if x["state"] == "Alive"} != want:
                return False
        leaders = {r[1]["leader"] for r in rafts if r[0] == "ok"}
        if len(leaders) != 1 or None in leaders or len(rafts) != len(self.ids):
            return False
        self.leader = leaders.pop()
        return True

    def run(self) -> None:
        while not self.stop.is_set() and time.monotonic() - self.t0 < self.timeout:
            if self.formed():
                self.formed_s = time.monotonic() - self.t0
                return
            time.sleep(0.1)


def stats_received(ids: list[str]) -> int:
    return sum(node_call(i, "manager", "stats")["messages_received"] for i in ids)


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of process ``pid`` (all its threads) in seconds, from /proc; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is fields[0], utime [11], stime [12]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_idle_actor() -> Any:
    """The idle baseline: a bare async Ray actor with one periodic asyncio task (nothing else)."""
    import asyncio

    import ray

    @ray.remote(num_cpus=0)
    class BareIdle:
        def __init__(self) -> None:
            self.ticks = 0
            self._task: Any = None

        async def start(self, period_s: float) -> int:
            async def tick() -> None:
                while True:
                    await asyncio.sleep(period_s)
                    self.ticks += 1

            self._task = asyncio.get_running_loop().create_task(tick())
            return os.getpid()

        async def ticked(self) -> int:
            return self.ticks

    return BareIdle


def idle_phase(ids: list[str], args: argparse.Namespace, idle_cls: Any) -> dict[str, Any] | None:
    """N node actors and N bare idle async actors idle in the same window; CPU % per actor of each group."""
    import ray

    n = len(ids)
    bare = [idle_cls.options(name=f"idle{i}-{n}", namespace="rustyray-bench").remote() for i in range(1, n + 1)]
    try:
        bare_pids = ray.get([a.start.remote(args.bare_tick) for a in bare], timeout=120)
        node_pids = [_pid(i) for i in ids]
        time.sleep(args.idle_settle)
        pids = node_pids + bare_pids
        before, t0 = [proc_cpu_s(p) for p in pids], time.monotonic()
        time.sleep(args.idle_seconds)
        after, wall = [proc_cpu_s(p) for p in pids], time.monotonic() - t0
        ticks = sum(ray.get([a.ticked.remote() for a in bare], timeout=30))
    finally:
        for a in bare:
            ray.kill(a)
    if None in before or None in after:
        return None
    used = [100 * (a - b) / wall for a, b in zip(after, before, strict=True)]
    node, base = used[:n], used[n:]
    node_mean, bare_mean = sum(node) / n, sum(base) / n
    return {"seconds": round(wall, 2), "settle_s": args.idle_settle, "bare_tick_s": args.bare_tick,
            "node_actor_cpu_percent": round(node_mean, 3), "bare_actor_cpu_percent": round(bare_mean, 3),
            "node_actors_total_cpu_percent": round(sum(node), 2), "bare_actors_total_cpu_percent": round(sum(base), 2),
            "ratio": round(node_mean / bare_mean, 2) if bare_mean > 0 else None,
            "node_actor_cpu_percent_max": round(max(node), 3), "bare_actor_cpu_percent_max": round(max(base), 3),
            "bare_ticks": ticks, "clock_tick_s": round(1 / os.sysconf("SC_CLK_TCK"), 4)}


def _pid(node_id: str) -> int:
    import ray

    return ray.get(ray.get_actor(node_id, namespace="rustyray").info.remote())["pid"]


def node_load(ids: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """Every node runs ``routing.load_run`` to its successor, all started at once; the results summed.

    The load is generated inside the nodes (``in_flight`` sends outstanding from each node's event loop),
    so the driver only starts the runs and collects N reports: one Ray call per node, not per send."""
    import ray

    n = len(ids)
    handles = [ray.get_actor(i, namespace="rustyray") for i in ids]
    kw = {"seconds": args.seconds, "in_flight": args.per_node, "delivery": "AtLeastOnce",
          "message_type": "Heartbeat", "payload_bytes": args.payload_bytes, "timeout_ms": 5000}
    before = stats_received(ids)
    refs = [h.call.remote("routing", "load_run", {**kw, "target_node": ids[(k + 1) % n]})
            for k, h in enumerate(handles)]
    answers = ray.get(refs, timeout=args.seconds + 120)
    bad = [a for a in answers if a[0] != "ok"]
    if bad:
        raise RuntimeError(f"load_run failed: {bad[:3]}")
    reports = [a[1] for a in answers]
    frames = stats_received(ids) - before
    starts = [r["started_at"] for r in reports]
    rates = [r["acked_per_s"] for r in reports]
    # the window the runs covered together: first start to last end (a slow start shows here, not hidden)
    span = max(r["started_at"] + r["elapsed_s"] for r in reports) - min(starts)
    p50s = sorted(r["latency_p50_ms"] for r in reports if r["latency_p50_ms"] is not None)
    return {
        "acked_per_s": round(sum(rates), 1),
        "acked_per_s_over_span": round(sum(r["acknowledged"] for r in reports) / span, 1),
        "per_node_acked_per_s": round(sum(rates) / n, 1),
        "per_node_min_acked_per_s": min(rates), "per_node_max_acked_per_s": max(rates),
        "sent": sum(r["sent"] for r in reports), "acknowledged": sum(r["acknowledged"] for r in reports),
        "failed": sum(r["failed"] for r in reports),
        "latency_p50_ms_median_node": p50s[len(p50s) // 2] if p50s else None,
        "latency_p99_ms_worst_node": max((r["latency_p99_ms"] or 0.0) for r in reports),
        "start_skew_s": round(max(starts) - min(starts), 3), "span_s": round(span, 3),
        "frames_received_per_s": round(frames / span, 1),
        "per_node": [{k: r[k] for k in ("node", "target_node", "sent", "acknowledged", "failed", "acked_per_s",
                                        "latency_p50_ms", "latency_p99_ms", "elapsed_s", "errors")}
                     for r in reports],
    }


def driver_load(ids: list[str], args: argparse.Namespace, driver: Any) -> dict[str, Any]:
    """The old measure: a driver actor keeps ``per_node * N`` sends in flight through actor calls (Ray-bound)."""
    import ray

    n = len(ids)
    pairs = [(ids[i], ids[(i + 1) % n]) for i in range(n)]
    r = ray.get(driver.send_loop.remote(pairs, "AtLeastOnce", args.seconds, args.per_node * n, 5000.0,
                                        f"scale-{n}-{time.time_ns()}"))
    return {"acked_per_s": round(r["acked"] / r["elapsed_s"], 1), "failed": r["failed"] + r["refused"],
            "in_flight": args.per_node * n, "send": ms(r["latencies"])}


def make_bare_node() -> Any:
    """The baseline node: a plain async Ray actor that calls its successor's method in a loop."""
    import asyncio

    import ray

    @ray.remote(num_cpus=0)
    class BareNode:
        def __init__(self, name: str) -> None:
            self.name = name
            self.handled = 0
            self.successor: Any = None

        def set_successor(self, handle: Any) -> bool:
            self.successor = handle
            return True

        async def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
            self.handled += 1
            return {"node": self.name, "echo": msg}

        async def count(self) -> int:
            return self.handled

        async def run(self, seconds: float, in_flight: int, msg: dict[str, Any]) -> dict[str, Any]:
            """``in_flight`` calls to the successor outstanding for ``seconds`` (a new one as each returns)."""
            lat: list[float] = []
            started_at = time.time()
            start = time.perf_counter()
            deadline = start + seconds

            async def worker() -> None:
                while time.perf_counter() < deadline:
                    s = time.perf_counter()
                    await self.successor.handle.remote(msg)
                    lat.append(time.perf_counter() - s)

            await asyncio.gather(*(worker() for _ in range(in_flight)))
            elapsed = time.perf_counter() - start
            lat.sort()
            return {"calls": len(lat), "elapsed_s": elapsed, "started_at": started_at,
                    "calls_per_s": len(lat) / elapsed, "p50_ms": 1000 * lat[len(lat) // 2] if lat else 0.0,
                    "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else 0.0}

    return BareNode


def bare_ray(n: int, args: argparse.Namespace, bare_cls: Any) -> dict[str, Any]:
    """N plain async Ray actors, each calling its successor with the same in-flight window and message."""
    import ray

    actors = [bare_cls.options(name=f"bare{i}-{n}", namespace="rustyray-bench").remote(f"bare{i}")
              for i in range(1, n + 1)]
    try:
        ray.get([a.set_successor.remote(actors[(k + 1) % n]) for k, a in enumerate(actors)], timeout=120)
        msg = {"pad": "x" * args.payload_bytes}
        reports = ray.get([a.run.remote(args.seconds, args.per_node, msg) for a in actors],
                          timeout=args.seconds + 120)
        handled = sum(ray.get([a.count.remote() for a in actors]))
    finally:
        for a in actors:
            ray.kill(a)
    starts = [r["started_at"] for r in reports]
    span = max(r["started_at"] + r["elapsed_s"] for r in reports) - min(starts)
    rate = sum(r["calls_per_s"] for r in reports)
    return {"calls_per_s": round(rate, 1), "calls_per_s_over_span": round(sum(r["calls"] for r in reports) / span, 1),
            "per_node_calls_per_s": round(rate / n, 1), "calls": sum(r["calls"] for r in reports),
            "handled": handled, "start_skew_s": round(max(starts) - min(starts), 3),
            "call_p50_ms_median_node": sorted(r["p50_ms"] for r in reports)[len(reports) // 2],
            "call_p99_ms_worst_node": max(r["p99_ms"] for r in reports)}


def one_size(n: int, args: argparse.Namespace, driver: Any, idle_cls: Any) -> dict[str, Any]:
    import ray

    ids = [f"node{i}" for i in range(1, n + 1)]
    t0 = time.monotonic()
    watch = FormationWatch(n, t0)
    watch.start()
    log(f"[{n} nodes] launching ...")
    extra = shlex.split(args.launch_args) if args.launch_args else []
    summary = launch_cluster(n, free_port(), config_text=BENCH_TOML + args.extra_toml, extra=extra,
                             state_root=args.state_root)
    launch_s = time.monotonic() - t0
    try:
        watch.join(timeout=max(1.0, 300 - launch_s))
        watch.stop.set()
        if watch.formed_s is None:
            raise TimeoutError(f"{n} nodes did not form a cluster")
        log(f"[{n} nodes] formed after {watch.formed_s:.1f}s (launch total {launch_s:.1f}s)")
        idle = None
        if not args.address and args.idle_seconds > 0:
            log(f"[{n} nodes] idle CPU: {n} node actors beside {n} bare idle async actors "
                f"for {args.idle_seconds:.0f}s ...")
            idle = idle_phase(ids, args, idle_cls)
        cpu = idle["node_actors_total_cpu_percent"] if idle else None
        if idle:
            log(f"[{n} nodes] idle: {idle['node_actor_cpu_percent']:.2f}% per node actor, "
                f"{idle['bare_actor_cpu_percent']:.2f}% per bare actor ({idle['ratio']}x)")
        log(f"[{n} nodes] node-side load for {args.seconds:.0f}s ...")
        load = node_load(ids, args)
        log(f"[{n} nodes] node-side: {load['acked_per_s']:,.0f} acked/s ({load['per_node_acked_per_s']:,.0f} per node, "
            f"{load['failed']} failed, start skew {load['start_skew_s']:.2f}s)")
        drv = None
        if args.driver_loop:
            log(f"[{n} nodes] driver-driven sends for {args.seconds:.0f}s ...")
            drv = driver_load(ids, args, driver)
            log(f"[{n} nodes] driver-driven: {drv['acked_per_s']:,.0f} acked/s")
        log(f"[{n} nodes] broadcast x{args.samples} ...")
        b = ray.get(driver.node_fanout.remote("node1", "broadcast",
                                              {"message_type": "Heartbeat", "data": {"seq": 1}, "timeout_ms": 5000},
                                              args.samples, 10))
        row = {
            "nodes": n, "formation_s": round(watch.formed_s, 2), "launch_total_s": round(launch_s, 2),
            "launch_reported_startup_s": summary["startup_seconds"], "raft_leader": watch.leader,
            "idle_cpu_percent_all_node_actors": cpu, "idle": idle, "in_flight_per_node": args.per_node,
            "node_load": load, "driver_load": drv,
            "broadcast_in_node": ms(b["inner"]), "broadcast_actor_call": ms(b["e2e"]),
            "broadcast_incomplete": b["incomplete"],
        }
    finally:
        watch.stop.set()
        log(f"[{n} nodes] stopping ...")
        shutdown_cluster()
    return row


def ray_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    import ray

    ray_init(num_cpus=args.num_cpus, address=args.address)
    rows = []
    try:
        driver_cls, _ = make_actors()
        driver = driver_cls.remote()
        bare_cls = make_bare_node()
        idle_cls = make_idle_actor()
        for n in args.sizes:
            row = one_size(n, args, driver, idle_cls)
            time.sleep(2)  # let the stopped actors' processes exit before the baseline
            log(f"[{n} nodes] bare-Ray baseline: {n} plain async actors for {args.seconds:.0f}s ...")
            row["bare_ray"] = bare_ray(n, args, bare_cls)
            log(f"[{n} nodes] bare Ray: {row['bare_ray']['calls_per_s']:,.0f} calls/s "
                f"({row['bare_ray']['per_node_calls_per_s']:,.0f} per actor)")
            rows.append(row)
            time.sleep(2)
    finally:
        ray.shutdown()
    return rows


def targets(real: list[dict[str, Any]]) -> dict[str, Any]:
    """Issue 12's targets: the largest cluster formed in <= 30 s; its aggregate acked sends/s >= 0.8x the
    2-node figure (or the smallest size measured), with the same ratio for bare Ray beside it; idle CPU per
    node actor <= 1.5x a bare idle async actor's at every size, and flat (every size from 5 nodes up within
    +-25 % of the 5-node figure, or of the smallest size >= 5 measured)."""
    if not real:
        return {}
    small = next((r for r in real if r["nodes"] == 2), real[0])
    big = max(real, key=lambda r: r["nodes"])
    base = small["node_load"]["acked_per_s"]
    ratio = big["node_load"]["acked_per_s"] / base if base else None
    bare = (big["bare_ray"]["calls_per_s"] / small["bare_ray"]["calls_per_s"]
            if "bare_ray" in big and small.get("bare_ray", {}).get("calls_per_s") else None)
    out = {"largest": big["nodes"], "baseline_size": small["nodes"],
           "formation_s": big["formation_s"], "formation_target_s": 30.0,
           "formation_met": big["formation_s"] <= 30.0,
           "throughput_ratio": None if ratio is None else round(ratio, 3), "throughput_ratio_target": 0.8,
           "throughput_met": ratio is not None and ratio >= 0.8,
           "bare_ray_ratio": None if bare is None else round(bare, 3)}
    idle = [r for r in real if r.get("idle")]
    if idle:
        ratios = {r["nodes"]: r["idle"]["ratio"] for r in idle}
        flat = [r for r in idle if r["nodes"] >= 5]
        spread = None
        if len(flat) >= 2:
            ref = flat[0]["idle"]["node_actor_cpu_percent"]
            spread = {r["nodes"]: round(r["idle"]["node_actor_cpu_percent"] / ref - 1, 3) for r in flat}
        out.update(idle_ratio_by_size=ratios, idle_ratio_target=1.5,
                   idle_ratio_met=all(x is not None and x <= 1.5 for x in ratios.values()),
                   idle_flatness_vs_smallest=spread, idle_flatness_target=0.25,
                   idle_flat_met=None if spread is None else all(abs(v) <= 0.25 for v in spread.values()))
    return out


# --------------------------------------------------------------------------- simulator part
def sim_run(n: int, crashes: int, joins: int, seed: int, cap_s: float = 60.0) -> dict[str, Any]:
    """``membership.crash_join_run``'s scenario (same victims, joiners, 3 s gaps, 1 % loss, Lifeguard), but
    the simulation stops as soon as every crash reached 99 % of the survivors and every join 99.99 %
    (fewer probe periods than the fixed horizon there, which matters at 10,000 members).
    Bytes are counted (msgspec sizes) up to 1,000 members only: it doubles the CPU cost."""
    from membership import pct

    from rustyray.membership.swim import SwimConfig
    from rustyray.sim.network import SimConfig
    from rustyray.sim.swim_cluster import SwimCluster

    c = SwimCluster(n, SwimConfig.lan(), SimConfig(seed=seed, loss=0.01), measure_bytes=n <= 1000)
    warm, gap = 3.0, 3.0
    c.sim.run_until(warm)
    b0, t0 = c.sim.stats.bytes_sent, c.sim.now
    victims = [f"node{(i * 7919 + 13) % n}" for i in range(crashes)]
    crash_at: dict[str, float] = {}
    join_at: dict[str, float] = {}
    for i, v in enumerate(victims):
        c.sim.call_at(warm + i * gap, lambda v=v: (crash_at.__setitem__(v, c.sim.now), c.crash(v)))
    for j in range(joins):
        name, seed_node = f"joiner{j}", f"node{(j * 31 + 5) % n}"
        c.sim.call_at(warm + 1.5 + j * gap,
                      lambda name=name, s=seed_node: (join_at.__setitem__(name, c.sim.now), c.add_joiner(name, [s])))
    survivors = set(c.ids) - set(victims)
    need_dead = -(-int(0.99 * len(survivors) * 100) // 100)
    need_join = -(-int(0.9999 * len(survivors) * 10000) // 10000)

    def detect_times() -> list[float | None]:
        out: list[float | None] = []
        for v in victims:
            if v not in crash_at:
                out.append(None)
                continue
            times = sorted(t for o, t in c.observers("NodeFailed", v, crash_at[v]).items() if o in survivors)
            out.append(times[need_dead - 1] - crash_at[v] if len(times) >= need_dead else None)
        return out

    def join_times() -> list[float | None]:
        out: list[float | None] = []
        for j in range(joins):
            name = f"joiner{j}"
            if name not in join_at:
                out.append(None)
                continue
            times = sorted(t for o, t in c.observers("NodeJoined", name, join_at[name]).items() if o in survivors)
            out.append(times[need_join - 1] - join_at[name] if len(times) >= need_join else None)
        return out

    cpu0 = time.process_time()
    end = warm + max(crashes, joins) * gap + cap_s
    t = warm
    while t < end:
        t = min(end, t + 1.0)
        c.sim.run_until(t)
        if int(t) % 5 == 0:
            log(f"    t={t:5.1f}s  events={c.sim.stats.events:,}  cpu={time.process_time() - cpu0:5.1f}s")
        if None not in detect_times() and None not in join_times():
            break
    detect = [x for x in detect_times() if x is not None]
    dissem = [x for x in join_times() if x is not None]
    return {"members": n, "crashes": crashes, "joins": joins,
            "detect_99pct_p50_s": pct(detect, 0.5), "detect_99pct_max_s": max(detect) if detect else None,
            "crashes_not_detected": crashes - len(detect),
            "join_99_99pct_p50_s": pct(dissem, 0.5), "join_99_99pct_max_s": max(dissem) if dissem else None,
            "bytes_per_member_per_s": ((c.sim.stats.bytes_sent - b0) / n / (c.sim.now - t0)) if n <= 1000 else None,
            "false_deaths": sum(v for k, v in c.declarations.items() if k in survivors),
            "sim_s": round(c.sim.now, 1), "cpu_s": round(time.process_time() - cpu0, 1)}


def sim_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for n in args.sim_sizes:
        crashes, joins = args.sim_events.get(n, (1, 1))
        log(f"[sim {n}] {crashes} crashes, {joins} joins, 1% loss, Lifeguard ...")
        rows.append(sim_run(n, crashes, joins, args.seed))
    return rows


def swim_config() -> dict[str, Any]:
    from dataclasses import asdict

    from rustyray.membership.swim import SwimConfig

    return {k: v for k, v in asdict(SwimConfig.lan()).items() if isinstance(v, int | float | bool | str | None)}


# --------------------------------------------------------------------------- output
def plot(real: list[dict[str, Any]], sim: list[dict[str, Any]], outdir: Path) -> list[str]:
    """The PNGs next to the JSON (none, with a note, when matplotlib is not installed: ``--plot-only`` later)."""
    try:
        import matplotlib
    except ImportError:
        log("matplotlib is not installed: no plots (pip install matplotlib, then run with --plot-only)")
        return []

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []

    def line_plot(name: str, xs: list[Any], series: list[tuple[list[float], str, str]], *, xlabel: str,
                  ylabel: str, title: str, log_x: bool = False) -> None:
        """One PNG: each series is (values, matplotlib format, label) over ``xs``."""
        fig, ax = plt.subplots(figsize=(6, 4))
        for ys, fmt, label in series:
            ax.plot(xs, ys, fmt, label=label)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
        if log_x:
            ax.set_xscale("log")
        else:
            ax.set_xticks(xs)
        ax.legend()
        ax.grid(alpha=0.3, which="both" if log_x else "major")
        fig.tight_layout()
        fig.savefig(outdir / name, dpi=110)
        plt.close(fig)
        files.append(name)

    if real:
        ns = [r["nodes"] for r in real]
        line_plot("scale_out_formation.png", ns, [
            ([r["formation_s"] for r in real], "o-", "formed (all Alive + Raft leader)"),
            ([r["launch_total_s"] for r in real], "s--", "launch total (incl. Serve API)"),
            ([30.0 for _ in real], "k:", "target: 30 s"),
        ], xlabel="node actors", ylabel="seconds", title="Cluster formation time (local Ray, 2 cores)")
        series = [
            ([r["node_load"]["acked_per_s"] for r in real], "o-", "RustyRay: acked sends/s, load in the nodes"),
            ([r["bare_ray"]["calls_per_s"] for r in real], "s-", "bare Ray: actor calls/s, load in the actors"),
        ]
        if all(r.get("driver_load") for r in real):
            series.append(([r["driver_load"]["acked_per_s"] for r in real], "^--",
                           "RustyRay: acked sends/s, driven by actor calls"))
        line_plot("scale_out_throughput.png", ns, series, xlabel="node actors", ylabel="per second (all nodes)",
                  title="Aggregate throughput, each node -> successor (AtLeastOnce)")
        line_plot("scale_out_per_node.png", ns, [
            ([r["node_load"]["per_node_acked_per_s"] for r in real], "o-", "RustyRay acked sends/s per node"),
            ([r["bare_ray"]["per_node_calls_per_s"] for r in real], "s-", "bare Ray calls/s per actor"),
        ], xlabel="node actors", ylabel="per second per node", title="Per-node throughput (2 cores shared)")
        idle = [r for r in real if r.get("idle")]
        if idle:
            xs = [r["nodes"] for r in idle]
            line_plot("scale_out_idle_cpu.png", xs, [
                ([r["idle"]["node_actor_cpu_percent"] for r in idle], "o-", "RustyRay node actor (idle cluster)"),
                ([r["idle"]["bare_actor_cpu_percent"] for r in idle], "s-", "bare async Ray actor, one periodic task"),
                ([1.5 * r["idle"]["bare_actor_cpu_percent"] for r in idle], "k:", "target: 1.5x bare"),
            ], xlabel="actors (of each kind, same cluster, same window)", ylabel="% of one core per actor",
                title="Idle CPU per actor, measured side by side")
        line_plot("scale_out_broadcast_p99.png", ns, [
            ([r["broadcast_in_node"]["p99_ms"] for r in real], "o-", "p99 in node"),
            ([r["broadcast_actor_call"]["p99_ms"] for r in real], "s--", "p99 via actor call"),
            ([r["broadcast_in_node"]["p50_ms"] for r in real], "o:", "p50 in node"),
        ], xlabel="node actors", ylabel="ms", title="Broadcast latency from node1 to all N")

    if sim:
        line_plot("scale_out_sim.png", [r["members"] for r in sim], [
            ([r["detect_99pct_p50_s"] for r in sim], "o-", "crash -> 99% declare Dead (p50)"),
            ([r["join_99_99pct_p50_s"] for r in sim], "s-", "join -> 99.99% know it (p50)"),
        ], xlabel="members (simulated, 1% loss, Lifeguard)", ylabel="seconds",
            title="SWIM failure detection and dissemination", log_x=True)
    return files


def print_tables(real: list[dict[str, Any]], sim: list[dict[str, Any]], goal: dict[str, Any]) -> None:
    if real:
        head = (f"{'nodes':>5} {'formed s':>9} {'launch s':>9} {'idle/node%':>10} {'idle/bare%':>10} {'ratio':>6} "
                f"{'acked/s':>9} {'per node':>9} "
                f"{'p99 ms':>8} {'bare/s':>9} {'bare/node':>9} {'driver/s':>9} {'frames/s':>9} {'bcast p99':>9}")
        print(head)
        print("-" * len(head))
        for r in real:
            nl, br, drv = r["node_load"], r["bare_ray"], r.get("driver_load")
            idle = r.get("idle") or {}
            node_s = "-" if not idle else f"{idle['node_actor_cpu_percent']:.2f}"
            bare_s = "-" if not idle else f"{idle['bare_actor_cpu_percent']:.2f}"
            ratio_s = "-" if not idle or idle["ratio"] is None else f"{idle['ratio']:.2f}"
            drv_s = "-" if not drv else f"{drv['acked_per_s']:,.0f}"
            print(f"{r['nodes']:>5} {r['formation_s']:>9.2f} {r['launch_total_s']:>9.2f} {node_s:>10} {bare_s:>10} "
                  f"{ratio_s:>6} "
                  f"{nl['acked_per_s']:>9,.0f} {nl['per_node_acked_per_s']:>9,.0f} "
                  f"{nl['latency_p99_ms_worst_node']:>8.1f} {br['calls_per_s']:>9,.0f} "
                  f"{br['per_node_calls_per_s']:>9,.0f} {drv_s:>9} "
                  f"{nl['frames_received_per_s']:>9,.0f} {r['broadcast_in_node']['p99_ms']:>9.2f}")
        print(f"  acked/s: AtLeastOnce routed sends acknowledged, {real[0]['in_flight_per_node']} in flight per node, "
              "load generated inside every node (routing.load_run to its successor), summed over the nodes;")
        print("  bare/s: N plain async Ray actors, each calling its successor with the same window; driver/s: the old "
              "driver-actor-driven sends; p99 ms: worst node's send p99; bcast p99: node-reported, ms")
        print("  idle/node%, idle/bare%: CPU per actor (% of one core, /proc utime+stime) of the N idle node actors "
              "and of N bare idle async Ray actors (one periodic task) in the same window; ratio = node / bare")
    if goal:
        formed = "met" if goal["formation_met"] else "NOT met"
        through = "met" if goal["throughput_met"] else "NOT met"
        print(f"  targets: {goal['largest']} nodes formed in {goal['formation_s']:.1f}s (target <= 30 s: {formed}); "
              f"acked/s {goal['largest']}/{goal['baseline_size']} nodes = {goal['throughput_ratio']}x "
              f"(target >= 0.8x: {through}); bare Ray {goal['bare_ray_ratio']}x")
        if "idle_ratio_by_size" in goal:
            ratio_ok = "met" if goal["idle_ratio_met"] else "NOT met"
            flat_ok = {True: "met", False: "NOT met", None: "n/a"}[goal["idle_flat_met"]]
            print(f"  idle: node/bare per actor {goal['idle_ratio_by_size']} (target <= 1.5x: {ratio_ok}); "
                  f"change vs smallest size >= 5: {goal['idle_flatness_vs_smallest']} (target +-25 %: {flat_ok})")
    if sim:
        print()
        head = (f"{'members':>8} {'crashes':>7} {'joins':>5} {'detect p50 s':>12} {'detect max s':>12} "
                f"{'join p50 s':>10} {'join max s':>10} {'B/member/s':>10} {'cpu s':>7}")
        print(head)
        print("-" * len(head))

        def f(v: float | None) -> str:
            return "-" if v is None else f"{v:.2f}"

        def f0(v: float | None) -> str:
            return "-" if v is None else f"{v:,.0f}"

        for r in sim:
            print(f"{r['members']:>8} {r['crashes']:>7} {r['joins']:>5} {f(r['detect_99pct_p50_s']):>12} "
                  f"{f(r['detect_99pct_max_s']):>12} {f(r['join_99_99pct_p50_s']):>10} "
                  f"{f(r['join_99_99pct_max_s']):>10} {f0(r['bytes_per_member_per_s']):>10} {r['cpu_s']:>7.1f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2, 5, 10, 20], help="node actors per cluster")
    p.add_argument("--seconds", type=float, default=5.0, help="seconds of the throughput run")
    p.add_argument("--per-node", type=int, default=8,
                   help="routed sends in flight per node (and calls in flight per bare-Ray actor)")
    p.add_argument("--payload-bytes", type=int, default=32, help="padding in each message's data")
    p.add_argument("--no-driver-loop", dest="driver_loop", action="store_false",
                   help="skip the old driver-driven throughput column (saves --seconds per size)")
    p.add_argument("--samples", type=int, default=200, help="broadcasts per size")
    p.add_argument("--idle-seconds", type=float, default=10.0,
                   help="seconds of the side-by-side idle-CPU window per size (0 skips the phase)")
    p.add_argument("--idle-settle", type=float, default=3.0,
                   help="seconds to wait after the bare idle actors started, before the idle window")
    p.add_argument("--bare-tick", type=float, default=1.0,
                   help="period (s) of the one asyncio task each bare idle actor runs")
    p.add_argument("--address", default=None, help="join this Ray cluster ('auto' for a `ray up` cluster)")
    p.add_argument("--extra-toml", default="",
                   help='TOML appended to the bench config, for A/B runs (e.g. "[raft]\\ntick_interval = 0.1")')
    p.add_argument("--launch-args", default="", help='extra launch options, e.g. "--host auto" on many machines')
    p.add_argument("--state-root", default=None,
                   help="directory for the clusters' state dirs (default: the system temp dir)")
    p.add_argument("--num-cpus", type=float, default=3.0,
                   help="logical CPUs of the local Ray (20 nodes x 0.1 + the API replica 0.1 > 2; "
                        "logical CPUs only gate placement, the machine has what it has)")
    p.add_argument("--sim-sizes", type=int, nargs="+", default=[100, 1000, 10000])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sim-only", action="store_true")
    p.add_argument("--ray-only", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--plot-only", action="store_true", help="redraw the plots and the tables from --out's JSON")
    p.add_argument("--out", default=str(RESULTS / "scale_out.json"))
    args = p.parse_args()
    if args.quick:
        args.seconds, args.samples, args.sim_sizes = 2.0, 50, [100, 1000]
        if args.sizes == p.get_default("sizes"):
            args.sizes = [2, 5]
    # crashes, joins per simulated size (each crash/join adds 3 s of simulated time)
    args.sim_events = {100: (10, 5), 1000: (5, 3), 10000: (3, 2)}
    out_path = Path(args.out)
    previous = json.loads(out_path.read_text()) if out_path.exists() else {}
    if args.plot_only:
        print_tables(previous.get("real", []), previous.get("simulated", []), previous.get("targets", {}))
        files = plot(previous.get("real", []), previous.get("simulated", []), out_path.parent)
        if files:
            out_path.write_text(json.dumps({**previous, "plots": files}, indent=2))
        log(f"plots: {', '.join(files) or 'none'}")
        return 0
    t0 = time.monotonic()
    load_at_start = os.getloadavg()
    real = previous.get("real", []) if args.sim_only else ray_part(args)
    sim = previous.get("simulated", []) if args.ray_only else sim_part(args)
    goal = targets(real)
    print_tables(real, sim, goal)
    files = plot(real, sim, out_path.parent)
    params = {k: v for k, v in vars(args).items() if k != "sim_events"}
    params["sim_events"] = {str(k): v for k, v in args.sim_events.items()}
    out = {"params": params, "python": platform.python_version(), "wall_seconds": round(time.monotonic() - t0, 1),
           "machine": "2 cores, one Ray node" if not args.address else f"Ray at {args.address}",
           "loadavg_at_start": load_at_start, "swim_config": swim_config(), "targets": goal, "real": real,
           "simulated": sim, "plots": files}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2))
    log(f"wrote {out_path} and {', '.join(files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
