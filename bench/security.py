"""Security overhead benchmark: plain TCP, TLS 1.3 with mTLS, and TLS plus payload encryption.

One run, side by side, between two real in-process nodes (transport + security services,
the same service list in every mode so only the security setting differs):

- ``plain TCP``            ``[transport] tls = false``;
- ``TLS 1.3 mTLS``         the default: TLS 1.3, both sides present cluster certificates;
- ``TLS + payload AEAD``   ``[security] encrypt_payloads = true``: every frame payload is also
                           sealed with the cluster key ring (AES-256-GCM, header as associated data).

For 100 B and 1 KiB payloads: one-way pipelined throughput (messages/s counted on the
receiver) and request/response latency (p50 / p99, sequential ``Echo`` round trips). The
bare asyncio floor from ``bench/transport.py`` runs alongside for reference.

Connection set-up: time of ``Node.dial`` (TCP connect, TLS handshake when on, Hello/HelloAck)
to a fresh connection, closed after each sample, for plain TCP and TLS 1.3 mTLS; next to the
floors of a bare asyncio TCP connect and a bare TLS 1.3 mTLS handshake with the same
certificates (no hello).

Prints two tables and writes ``bench/results/security.json``.

    python bench/security.py            # full run: 3 interleaved rounds, medians (about a minute)
    python bench/security.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transport import bare_asyncio, latency_summary, log, measure_pair

RESULTS = Path(__file__).resolve().parent / "results"
SERVICES = ("transport", "security")
MODES = {
    "plain TCP": {"tls": False, "encrypt": False},
    "TLS 1.3 mTLS": {"tls": True, "encrypt": False},
    "TLS + payload AEAD": {"tls": True, "encrypt": True},
}


async def node_pair(state: str, *, tls: bool, encrypt: bool) -> tuple[Any, Any]:
    """Two started nodes sharing one state dir (so one CA and one key ring), QUIC off."""
    from rustyray.config import NodeConfig, TransportConfig
    from rustyray.node import Node

    cfg = TransportConfig(tls=tls, enable_quic=False)
    sections = {"security": {"encrypt_payloads": encrypt}}
    a = Node(NodeConfig(node_id="sec-a", state_dir=state, transport=cfg, sections=sections), services=SERVICES)
    b = Node(NodeConfig(node_id="sec-b", state_dir=state, transport=cfg, sections=sections), services=SERVICES)
    await a.start()
    await b.start()
    return a, b


async def data_path(mode: str, size: int, oneway_n: int, rtt_n: int) -> dict[str, Any]:
    """One-way pipelined throughput and sequential Echo round trips on one connection."""

    m = MODES[mode]
    a, b = await node_pair(tempfile.mkdtemp(prefix="rr-bench-sec-"), **m)
    try:
        conn, _ = await a.dial("127.0.0.1", b.tcp_port, expect_node="sec-b")
        assert conn.payload_encrypted == m["encrypt"], "payload encryption not negotiated as configured"
        assert (conn.tls_version is not None) == m["tls"]
        row = await measure_pair(a, b, conn, size, oneway_n, rtt_n)
        return {**row, "tls_version": conn.tls_version, "payload_encrypted": conn.payload_encrypted}
    finally:
        await a.stop()
        await b.stop()


async def setup_time(mode: str, n: int) -> dict[str, Any]:
    """``Node.dial`` to a fresh connection: TCP connect (+ TLS 1.3 mTLS) + Hello/HelloAck."""
    a, b = await node_pair(tempfile.mkdtemp(prefix="rr-bench-sec-"), **MODES[mode])
    try:
        samples = []
        for i in range(n + 10):
            s = time.perf_counter()
            conn, _ = await a.dial("127.0.0.1", b.tcp_port, expect_node="sec-b")
            took = time.perf_counter() - s
            conn.close("bench")
            await asyncio.sleep(0)
            if i >= 10:
                samples.append(took)
        return latency_summary(samples)
    finally:
        await a.stop()
        await b.stop()


async def bare_setup(n: int, *, tls: bool) -> dict[str, Any]:
    """Floors: asyncio TCP connect, or TCP connect + TLS 1.3 mTLS handshake with the nodes' contexts."""
    from rustyray.security.certificates import ensure_cluster_ca, ensure_node_credentials
    from rustyray.security.tls import client_context, server_context

    server_ctx = client_ctx = None
    if tls:
        certs = Path(tempfile.mkdtemp(prefix="rr-bench-sec-")) / "certs"
        ensure_cluster_ca(certs)
        server_ctx = server_context(ensure_node_credentials(certs, "bare-server"))
        client_ctx = client_context(ensure_node_credentials(certs, "bare-client"))

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    samples = []
    for i in range(n + 10):
        s = time.perf_counter()
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx,
                                                  server_hostname="bare-server" if tls else None)
        took = time.perf_counter() - s
        writer.close()
        if i >= 10:
            samples.append(took)
    server.close()
    return latency_summary(samples)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1024])
    p.add_argument("--oneway", type=int, default=40_000, help="messages per one-way run")
    p.add_argument("--rtt", type=int, default=1500, help="round trips per latency run")
    p.add_argument("--setups", type=int, default=150, help="connections per set-up run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; figures are medians over rounds")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "security.json"))
    args = p.parse_args()
    if args.quick:
        args.oneway, args.rtt, args.setups, args.rounds = 20_000, 500, 100, 1
    import uvloop

    load = os.getloadavg()

    # Rounds interleave every mode, and each figure is the median over rounds, so a burst of load from
    # other processes hits one round of every mode instead of all of one mode.
    rounds: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for size in args.sizes:
            log(f"round {rnd + 1}/{args.rounds}, {size} B: bare asyncio (floor) ...")
            rounds.append({"round": rnd, "size": size, "name": "bare asyncio (floor)",
                           **uvloop.run(bare_asyncio(size, args.oneway, args.rtt))})
            for mode in MODES:
                log(f"round {rnd + 1}/{args.rounds}, {size} B: {mode} ...")
                rounds.append({"round": rnd, "size": size, "name": mode,
                               **uvloop.run(data_path(mode, size, args.oneway, args.rtt))})
        for name, factory in [
            ("bare TCP connect (floor)", lambda: bare_setup(args.setups, tls=False)),
            ("bare TCP + TLS 1.3 mTLS (floor)", lambda: bare_setup(args.setups, tls=True)),
            ("node dial, plain TCP + hello", lambda: setup_time("plain TCP", args.setups)),
            ("node dial, TLS 1.3 mTLS + hello", lambda: setup_time("TLS 1.3 mTLS", args.setups)),
            ("node dial, TLS + AEAD + hello", lambda: setup_time("TLS + payload AEAD", args.setups)),
        ]:
            log(f"round {rnd + 1}/{args.rounds}, connection set-up: {name} ...")
            rounds.append({"round": rnd, "size": None, "name": name, **uvloop.run(factory())})
    rows = medians([r for r in rounds if r["size"] is not None])
    setups = medians([r for r in rounds if r["size"] is None])
    print_tables(rows, setups)
    ratios = compute_ratios(rows, setups)
    for k, v in ratios.items():
        print(f"  {k}: {v}")
    out = {"params": vars(args), "python": platform.python_version(), "loadavg_at_start": load,
           "rows": rows, "setup": setups, "ratios": ratios, "rounds": rounds}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    log(f"wrote {args.out}")
    return 0


def medians(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (size, name): the median of every numeric figure over the rounds."""
    groups: dict[tuple[Any, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["size"], r["name"]), []).append(r)
    out = []
    for (size, name), rs in groups.items():
        row: dict[str, Any] = {"size": size, "name": name, "rounds": len(rs)}
        for k, v in rs[0].items():
            if k in row or k == "round":
                continue
            row[k] = statistics.median(x[k] for x in rs) if isinstance(v, int | float) and not isinstance(v, bool) \
                else v
        out.append(row)
    return out


def print_tables(rows: list[dict[str, Any]], setups: list[dict[str, Any]]) -> None:
    head = f"{'size':>6}  {'mode':<22} {'one-way msg/s':>14} {'rtt/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['size']:>6}  {r['name']:<22} {r['oneway_msgs_per_s']:>14,.0f} {r['rtt_per_s']:>9,.0f} "
              f"{r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}")
    print()
    head = f"{'connection set-up':<34} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'per s':>8}"
    print(head)
    print("-" * len(head))
    for s in setups:
        print(f"{s['name']:<34} {s['p50_ms']:>8.3f} {s['p99_ms']:>8.3f} {s['mean_ms']:>8.3f} {s['rtt_per_s']:>8,.0f}")


def compute_ratios(rows: list[dict[str, Any]], setups: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for size in sorted({r["size"] for r in rows}):
        by = {r["name"]: r for r in rows if r["size"] == size}
        plain, tls, enc = by["plain TCP"], by["TLS 1.3 mTLS"], by["TLS + payload AEAD"]
        out[f"{size}B one-way TLS / plain"] = round(tls["oneway_msgs_per_s"] / plain["oneway_msgs_per_s"], 3)
        out[f"{size}B one-way TLS+AEAD / TLS"] = round(enc["oneway_msgs_per_s"] / tls["oneway_msgs_per_s"], 3)
        out[f"{size}B p99 TLS+AEAD / plain"] = round(enc["p99_ms"] / plain["p99_ms"], 3)
    by = {s["name"]: s for s in setups}
    out["setup p50 TLS / plain"] = round(by["node dial, TLS 1.3 mTLS + hello"]["p50_ms"]
                                         / by["node dial, plain TCP + hello"]["p50_ms"], 2)
    return out


if __name__ == "__main__":
    sys.exit(main())
