"""Connection-abuse figures: what idle floods, stalled TLS handshakes, hello-less and trickling
connections cost a node, and whether its legitimate peers keep their latency.

A 2-node in-process cluster (TLS 1.3 + mTLS, every service, default timeouts and firewall) runs here;
the attacker is ``tests/reliability/abuse_client.py`` in its own process, bound to 127.0.0.2 (legitimate
peers use 127.0.0.1, a different firewall source). For each scenario: node2 -> node1 Echo round trips
unloaded, then for the window in which the attack holds its connections; the attacker's view of when
the node closed each connection; the firewall's peak slot use for the source; the node's refusals.

Scenarios (``--scenario``, default all):
  idle   2,000 TCP connects that never send a byte + 50 TLS handshakes stalled after the ClientHello
  tls    300 hello-less TLS connections + 20 one-byte-per-100-ms Hello tricklers + 3 s of over-limit connects
  all    both at once

    python bench/connection_abuse.py
    python bench/connection_abuse.py --scenario idle --idle 5000 --samples 1000

Writes ``bench/results/connection_abuse.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "reliability")]

from connection_abuse import run_abuse  # noqa: E402
from harness import local_cluster  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def log(msg: str) -> None:
    print(f"[abuse] {msg}", file=sys.stderr, flush=True)


def client_args(scenario: str, a: argparse.Namespace) -> tuple[str, ...]:
    idle = scenario in ("idle", "all")
    tls = scenario in ("tls", "all")
    return ("--idle", str(a.idle if idle else 0), "--partial", str(a.partial if idle else 0),
            "--holders", str(a.holders if tls else 0), "--slow", str(a.slow if tls else 0),
            "--churn-s", str(a.churn_s if tls else 0), "--churn-rate", str(a.churn_rate))


async def scenario_run(name: str, a: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        async with local_cluster(2, Path(tmp)) as c:
            r = await run_abuse(c.node("node1"), c.node("node2"), samples=a.samples,
                                client_args=client_args(name, a))
            r["still_meshed"] = c.fully_meshed()
    un, lo = r["unloaded"]["p99_ms"], r["loaded"]["p99_ms"]
    r["p99_ratio"] = round(lo / un, 2) if un else None
    r["p99_within_2x"] = lo <= 2 * un
    return r


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenario", choices=("idle", "tls", "all"), action="append")
    ap.add_argument("--samples", type=int, default=1000, help="unloaded Echo round trips")
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--partial", type=int, default=50)
    ap.add_argument("--holders", type=int, default=300)
    ap.add_argument("--slow", type=int, default=20)
    ap.add_argument("--churn-s", type=float, default=3.0)
    ap.add_argument("--churn-rate", type=float, default=50.0)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * a.idle + 4096)), hard))
    report: dict[str, Any] = {}
    for name in a.scenario or ["idle", "tls", "all"]:
        log(f"scenario {name}")
        report[name] = asyncio.run(scenario_run(name, a))
        r = report[name]
        log(f"{name}: unloaded {r['unloaded']} loaded {r['loaded']} ratio {r['p99_ratio']} "
            f"slots {r['max_firewall_slots_used_by_source']} refusals {r['refusals']} {r['node_refusals']}")
        for fam, f in r["client"]["families"].items():
            if f["attempted"]:
                log(f"  {fam}: {f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "connection_abuse.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
