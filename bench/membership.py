"""SWIM/Lifeguard benchmark in the deterministic simulator.

Scenarios, each run with Lifeguard on and off (plain SWIM):

* crash: warm up, crash ``--crashes`` nodes a few seconds apart under 1 % loss;
  time until 99 % of the surviving members declared each one Dead (p50/p99);
  in the same run ``--joins`` new nodes join through a seed: time until 99.99 %
  of the members know them; bytes sent per member per second (msgspec sizes).
* loss: a long run with 1 % loss and no faults: false suspicions / false deaths.
* stall: the same with 10 % of members stalling again and again for a random
  200-2,000 ms (``--stall-min-ms``/``--stall-max-ms``, exponential gaps of mean
  ``--stall-gap`` s) -- longer than the probe timeout, so their probes fail.
* stall mid-probe: 10 % of members freeze for 200-2,000 ms right after sending
  a probe (``--mid-probe`` of their probes): a CPU-starved process whose ack
  waits unread while its own probe timers expire -- Lifeguard's case.

"False suspicion" counts accusations raised by a member's own failed probe
against a healthy member; "false death" (FP) counts Dead declarations made by a
member's own suspicion timer against a member that was running at that instant
(a healthy one, or a staller between stalls: it answers). A staller declared
Dead while still frozen is counted apart ("dead while stalled"). The stall FP
ratio Lifeguard / plain SWIM is the Lifeguard paper's claim (target <= 1/50).

Usage: python bench/membership.py [--full] [--sizes 100,1000] [--scenarios crash_join] [--modes lifeguard]
Prints a table (and bytes per member per second split by message type) and writes
bench/results/membership.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from rustyray.membership.swim import SwimConfig
from rustyray.sim.network import SimConfig
from rustyray.sim.raft_cluster import FalsePositiveTracker, stall_mid_probe, stall_randomly
from rustyray.sim.swim_cluster import SwimCluster

RESULTS = Path(__file__).resolve().parent / "results" / "membership.json"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def crash_join_run(n: int, cfg: SwimConfig, seed: int, crashes: int, joins: int, loss: float) -> dict[str, Any]:
    c = SwimCluster(n, cfg, SimConfig(seed=seed, loss=loss), measure_bytes=True)
    warm = 3.0
    c.sim.run_until(warm)
    b0, t0 = c.sim.stats.bytes_sent, c.sim.now
    assert c.breakdown is not None
    by_type0 = c.breakdown.snapshot()
    gap = 3.0
    victims = [f"node{(i * 7919 + 13) % n}" for i in range(crashes)]
    crash_at: dict[str, float] = {}
    join_at: dict[str, float] = {}
    for i, v in enumerate(victims):
        at = warm + i * gap

        def crash(v: str = v) -> None:
            crash_at[v] = c.sim.now
            c.crash(v)

        c.sim.call_at(at, crash)
    for j in range(joins):
        at = warm + 1.5 + j * gap
        name = f"joiner{j}"
        seed_node = f"node{(j * 31 + 5) % n}"

        def join(name: str = name, seed_node: str = seed_node) -> None:
            join_at[name] = c.sim.now
            c.add_joiner(name, [seed_node])

        c.sim.call_at(at, join)
    horizon = warm + max(crashes, joins) * gap + cfg.suspicion_max_timeout_mult * cfg.suspicion_min(n) + 5.0
    horizon = min(horizon, warm + max(crashes, joins) * gap + 60.0)
    cpu0 = time.process_time()
    step = max(5.0, (horizon - warm) / 6)
    t = warm
    while t < horizon:
        t = min(horizon, t + step)
        c.sim.run_until(t)
        log(f"    t={t:6.1f}s  events={c.sim.stats.events:,}  cpu={time.process_time() - cpu0:5.1f}s")
    duration = c.sim.now - t0
    survivors = [i for i in c.ids if i not in crash_at and i not in join_at and c.sim.is_up(i)]
    detect = []
    missed = 0
    for v, at in crash_at.items():
        failed = c.observers("NodeFailed", v, at)
        times = sorted(t for o, t in failed.items() if o not in crash_at)
        need = -(-int(0.99 * len(survivors) * 100) // 100)
        if len(times) >= need:
            detect.append(times[need - 1] - at)
        else:
            missed += 1
    dissem = []
    for name, at in join_at.items():
        seen = c.observers("NodeJoined", name, at)
        times = sorted(t for o, t in seen.items() if o in set(survivors))
        need = -(-int(0.9999 * len(survivors) * 10000) // 10000)
        if len(times) >= need:
            dissem.append(times[need - 1] - at)
    healthy = set(survivors)
    by_type = {k: (v - by_type0.get(k, 0)) / n / duration for k, v in c.breakdown.snapshot().items()}
    return {
        "crash_to_99pct_dead_p50_s": pct(detect, 0.5),
        "crash_to_99pct_dead_p99_s": pct(detect, 0.99),
        "crash_samples": len(detect),
        "crashes_not_reaching_99pct": missed,
        "join_to_99_99pct_p50_s": pct(dissem, 0.5),
        "join_to_99_99pct_max_s": max(dissem) if dissem else None,
        "join_samples": len(dissem),
        "bytes_per_member_per_s": (c.sim.stats.bytes_sent - b0) / n / duration,
        # split by message type; "+SwimX" = updates of type X piggybacked on probes and gossip
        "bytes_per_member_per_s_by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
        "false_deaths": sum(v for k, v in c.declarations.items() if k in healthy),
        "cpu_s": time.process_time() - cpu0,
        "sim_s": duration,
    }


def false_positive_run(n: int, cfg: SwimConfig, seed: int, duration: float, loss: float,
                       stall_fraction: float, stall_gap: float, stall_min_s: float = 0.2,
                       stall_max_s: float = 2.0, mid_probe: float = 0.0) -> dict[str, Any]:
    c = SwimCluster(n, cfg, SimConfig(seed=seed, loss=loss))
    cpu0 = time.process_time()
    flaky = c.ids[: int(stall_fraction * n)]
    tracker = FalsePositiveTracker(c, flaky)
    stalls: list[tuple[str, float, float]] = []
    if flaky and mid_probe > 0:
        stalls = stall_mid_probe(c.sim, flaky, mid_probe, stall_min_s, stall_max_s, c.sim.derive_rng())
    elif flaky:
        stalls = stall_randomly(c.sim, flaky, stall_min_s, stall_max_s, stall_gap, duration, c.sim.derive_rng())
    step = max(5.0, duration / 6)
    t = 0.0
    while t < duration:
        t = min(duration, t + step)
        c.sim.run_until(t)
        log(f"    t={t:6.1f}s  events={c.sim.stats.events:,}  cpu={time.process_time() - cpu0:5.1f}s")
    fp = tracker.summary()
    return {
        "false_suspicions": fp["false_suspicions_of_healthy"],
        "false_deaths": fp["false_deaths"],
        **fp,
        "stalls": len(stalls),
        "stalled_fraction_of_time": (sum(b - a for _, a, b in stalls) / (len(flaky) * duration)) if flaky else 0.0,
        "members_ever_declared_dead": len([k for k, v in c.declarations.items() if v]),
        "max_awareness": max(c.node(i).awareness for i in c.ids),
        "cpu_s": time.process_time() - cpu0,
        "sim_s": duration,
    }


def fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def table(cols: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(c), *(len(fmt(r[i])) for r in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    for row in rows:
        print("  ".join(fmt(v).rjust(w) for v, w in zip(row, widths, strict=True)))


SCENARIOS = ("crash_join", "loss", "stall", "stall_mid_probe")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="also run N=10,000 (slow, several GB of RAM)")
    ap.add_argument("--sizes", default="", help="comma-separated cluster sizes (default 100,1000)")
    ap.add_argument("--crashes", type=int, default=10)
    ap.add_argument("--joins", type=int, default=5)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of the false-positive runs")
    ap.add_argument("--stall-gap", type=float, default=5.0, help="mean seconds between stalls of a member")
    ap.add_argument("--stall-min-ms", type=float, default=200.0, help="shortest stall")
    ap.add_argument("--stall-max-ms", type=float, default=2000.0, help="longest stall (uniform in between)")
    ap.add_argument("--mid-probe", type=float, default=0.1, help="fraction of probes a staller freezes after")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--suspicion-mult", type=float, default=None, help="override SwimConfig.suspicion_mult")
    ap.add_argument("--preset", choices=("lan", "memberlist"), default="lan", help="SwimConfig preset")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS),
                    help="comma-separated subset of " + ",".join(SCENARIOS) + " (bytes come from crash_join)")
    ap.add_argument("--modes", default="lifeguard,plain_swim", help="comma-separated subset of lifeguard,plain_swim")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s] or [100, 1000]
    if args.full and 10000 not in sizes:
        sizes.append(10000)
    base = SwimConfig.lan() if args.preset == "lan" else SwimConfig.memberlist()
    if args.suspicion_mult is not None:
        base = replace(base, suspicion_mult=args.suspicion_mult)
    modes = {"lifeguard": base, "plain_swim": replace(base, lifeguard=False)}
    results: dict[str, Any] = {"config": {k: getattr(base, k) for k in base.__dataclass_fields__},
                               "args": vars(args), "runs": {}}
    scenarios = [x for x in args.scenarios.split(",") if x]
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    wanted_modes = [x for x in args.modes.split(",") if x]
    modes = {k: v for k, v in modes.items() if k in wanted_modes}
    for n in sizes:
        for mode, cfg in modes.items():
            key = f"{mode}@{n}"
            r: dict[str, Any] = {}
            if "crash_join" in scenarios:
                log(f"[{key}] crash + join, 1% loss")
                r["crash_join"] = crash_join_run(n, cfg, args.seed, args.crashes, args.joins, 0.01)
            if "loss" in scenarios:
                log(f"[{key}] long run, 1% loss")
                r["loss"] = false_positive_run(n, cfg, args.seed + 1, args.duration, 0.01, 0.0, args.stall_gap)
            if "stall" in scenarios:
                log(f"[{key}] long run, 1% loss + 10% members stalling {args.stall_min_ms:.0f}-"
                    f"{args.stall_max_ms:.0f} ms")
                r["stall"] = false_positive_run(n, cfg, args.seed + 2, args.duration, 0.01, 0.1, args.stall_gap,
                                                args.stall_min_ms / 1000, args.stall_max_ms / 1000)
            if "stall_mid_probe" in scenarios:
                log(f"[{key}] long run, 1% loss + 10% members freezing after {args.mid_probe:.0%} of their "
                    "probes")
                r["stall_mid_probe"] = false_positive_run(n, cfg, args.seed + 3, args.duration, 0.01, 0.1,
                                                          args.stall_gap, args.stall_min_ms / 1000,
                                                          args.stall_max_ms / 1000, mid_probe=args.mid_probe)
            results["runs"][key] = r
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))
    # summary
    cols = ["run", "dead p50", "dead p99", "join p50", "join max", "B/member/s", "FS loss", "FD loss",
            "FS stall", "FD stall", "dead while stalled", "FS mid-probe", "FD mid-probe", "cpu s"]
    rows = []
    for key, r in results["runs"].items():
        cj, lo, st, mp = (r.get(x, {}) for x in SCENARIOS)
        rows.append([key, cj.get("crash_to_99pct_dead_p50_s"), cj.get("crash_to_99pct_dead_p99_s"),
                     cj.get("join_to_99_99pct_p50_s"), cj.get("join_to_99_99pct_max_s"),
                     cj.get("bytes_per_member_per_s"),
                     lo.get("false_suspicions"), lo.get("false_deaths"), st.get("false_suspicions"),
                     st.get("false_deaths"), st.get("deaths_while_stalled"), mp.get("false_suspicions"),
                     mp.get("false_deaths"), sum(x.get("cpu_s", 0.0) for x in (cj, lo, st, mp))])
    table(cols, rows)
    if "crash_join" in scenarios:
        # bytes per member per second by message type (crash + join run)
        kinds: list[str] = []
        for r in results["runs"].values():
            for k in r["crash_join"]["bytes_per_member_per_s_by_type"]:
                if k not in kinds:
                    kinds.append(k)
        print()
        print("B/member/s by message type (crash + join run; +SwimX = piggybacked updates of type X):")
        table(["run", *kinds, "total"],
              [[key, *(r["crash_join"]["bytes_per_member_per_s_by_type"].get(k, 0.0) for k in kinds),
                r["crash_join"]["bytes_per_member_per_s"]] for key, r in results["runs"].items()])
        spread: dict[str, Any] = {}
        for m in modes:
            vals = [results["runs"][f"{m}@{n}"]["crash_join"]["bytes_per_member_per_s"] for n in sizes]
            spread[m] = {"min": min(vals), "max": max(vals), "max_over_min": max(vals) / min(vals)}
        results["bytes_per_member_per_s_spread"] = spread
        print(f"B/member/s spread over sizes {sizes}: "
              + ", ".join(f"{m}: max/min = {v['max_over_min']:.3f}" for m, v in spread.items()))
    ratios: dict[int, Any] = {}
    fs_ratios: dict[int, Any] = {}
    stall_runs = all(x in scenarios for x in ("stall", "stall_mid_probe"))
    for n in sizes:
        lg, pl = results["runs"].get(f"lifeguard@{n}"), results["runs"].get(f"plain_swim@{n}")
        if lg and pl and stall_runs:
            # false positives: Dead declared about a running member + suspicions of healthy members,
            # over both stall models
            a, b = (sum(x[s][k] for s in ("stall", "stall_mid_probe") for k in ("false_deaths", "false_suspicions"))
                    for x in (lg, pl))
            ratios[n] = {"lifeguard": a, "plain_swim": b, "ratio": None if b == 0 else a / b}
            a, b = (sum(x[s]["false_deaths"] for s in ("stall", "stall_mid_probe")) for x in (lg, pl))
            fs_ratios[n] = {"lifeguard": a, "plain_swim": b, "ratio": None if b == 0 else a / b}
    results["stall_false_positive_ratio_lifeguard_over_plain"] = ratios
    results["stall_false_deaths_lifeguard_vs_plain"] = fs_ratios
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("FS = false suspicions of healthy members (own failed probe); FD = Dead declared about a member that")
    print("was running (false positive); dead while stalled = a staller declared Dead while frozen (after chained")
    print("stalls longer than the suspicion timeout); mid-probe = stallers freeze right after sending a probe")
    print(f"stall false positives (FS + FD, both stall models) lifeguard vs plain: {ratios} (target <= 0.02)")
    print(f"stall false deaths alone (both stall models) lifeguard vs plain: {fs_ratios}")
    print("targets: dead p99 <= 10 s at N=1000 with 1% loss; join to 99.99% of 1000 <= 2.2 s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
