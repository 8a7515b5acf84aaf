"""Driving ``abuse_client.py`` (a separate process) against a node while a peer measures Echo latency.

Shared by ``test_connection_abuse.py`` (CI form) and ``bench/connection_abuse.py`` (figures).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from rustyray.node import Node
from rustyray.protocol.control import Echo, EchoReply

CLIENT = Path(__file__).resolve().parent / "abuse_client.py"


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


async def echo_latencies(src: Node, dst: str, count: int, *, until: float | None = None) -> list[float]:
    """Sequential request/response round trips src -> dst, in ms (stops early at ``until``)."""
    out: list[float] = []
    for i in range(count):
        if until is not None and time.monotonic() > until:
            break
        t = time.perf_counter()
        reply = await src.request(dst, Echo(data=b"%d" % i), timeout=10)
        out.append((time.perf_counter() - t) * 1000)
        assert reply == EchoReply(data=b"%d" % i)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": round(pct(ms, 0.5), 3), "p99_ms": round(pct(ms, 0.99), 3),
            "max_ms": round(max(ms), 3) if ms else 0.0}


async def run_abuse(target: Node, peer: Node, *, samples: int = 400, client_args: tuple[str, ...] = (),
                    source: str = "127.0.0.2") -> dict[str, Any]:
    """Measure peer->target Echo latency unloaded, then while the abuse client runs; return everything."""
    unloaded = await echo_latencies(peer, target.node_id, samples)
    firewall = target.services["security"].firewall
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT), "--port", str(target.tcp_port), "--certs", str(target.config.certs_dir),
        "--source", source, *client_args, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    line = json.loads(await asyncio.wait_for(proc.stdout.readline(), 120))
    assert line["event"] == "established", line
    # While the attack holds its connections: legitimate round trips, and the firewall's view of the source.
    max_slots = 0

    async def watch() -> None:
        nonlocal max_slots
        while True:
            max_slots = max(max_slots, sum(n for ip, n in firewall._connections.items() if str(ip) == source))
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch())
    hold = min(target.config.transport.connect_timeout_s, target.config.transport.handshake_timeout_s)
    loaded = await echo_latencies(peer, target.node_id, samples * 10, until=time.monotonic() + hold - 0.5)
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    watcher.cancel()
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["event"] == "result", result
    return {"unloaded": summary(unloaded), "loaded": summary(loaded), "client": result,
            "max_firewall_slots_used_by_source": max_slots,
            "refusals": dict(target.services["security"].admission_refusals),
            "node_refusals": dict(target.stats.refusals)}
