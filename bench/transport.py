"""Transport benchmark: our TCP / TLS / QUIC against bare asyncio, bare aioquic and Ray actor calls.

One run, side by side, for each message size (100 B and 1 KiB by default):

- one-way throughput (messages/s, pipelined, counted on the receiver);
- request/response latency (p50 / p99, sequential round trips) and round trips/s;
- bulk throughput (MB/s of 64 KiB messages, 16 MiB per measurement) for QUIC and TCP.

Baselines: a bare asyncio length-prefixed echo on loopback (the floor for Python), a bare
aioquic stream echo, and Ray async actor method calls between two actors. Our nodes and
the asyncio/aioquic baselines run in this process's event loop (uvloop, like Ray's
actors); Ray's run in actor processes.

Why ``--runs``: this VM is shared and noisy, so one run's ratio says little. Each
measurement is repeated N times on the same connections, ours and its baseline back to
back (the order alternates from run to run), so a load drift hits both; the ratio is
taken per run and reported as median and min-max. Prints a table and writes
``bench/results/transport.json``.

    python bench/transport.py                      # full run
    python bench/transport.py --runs 5 --no-ray    # five interleaved runs, ratios with spread
    python bench/transport.py --quick              # smaller counts
    python bench/transport.py --profile quic       # cProfile our QUIC side, top 25 by tottime
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import ssl
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
BULK_CHUNK = 64 * 1024
"""Message size of the bulk measurement (bytes)."""
BULK_DATA = os.urandom(BULK_CHUNK)
"""Incompressible, so the negotiated LZ4 cannot shrink bulk messages (the 1 KiB ones are ``x`` repeated)."""


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def latency_summary(samples_s: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in samples_s]
    return {"p50_ms": round(pct(ms, 0.5), 4), "p99_ms": round(pct(ms, 0.99), 4),
            "mean_ms": round(statistics.fmean(ms), 4), "rtt_per_s": round(len(ms) / sum(samples_s), 1)}


def spread(values: list[float], digits: int = 3) -> dict[str, Any]:
    """Median and min-max of one figure over the runs."""
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "runs": [round(v, digits) for v in values]}


# --------------------------------------------------------------------------- bare asyncio
class _FloorServer(asyncio.Protocol):
    """Length-prefixed frames; mode 'count' counts them (and their bytes), mode 'echo' sends each back."""

    def __init__(self, state: dict[str, Any], mode: str) -> None:
        self.buf = bytearray()
        self.state = state
        self.mode = mode

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        state = self.state
        while len(buf) >= 4:
            (n,) = struct.unpack_from("!I", buf)
            if len(buf) < 4 + n:
                break
            frame = bytes(buf[: 4 + n])
            del buf[: 4 + n]
            state["n"] += 1
            if self.mode == "echo":
                self.t.write(frame)  # type: ignore[attr-defined]
        if state["n"] >= state["target"] and state.get("done") is not None and not state["done"].done():
            state["done"].set_result(None)


class _FloorClient(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 4:
            (n,) = struct.unpack_from("!I", self.buf)
            if len(self.buf) < 4 + n:
                return
            del self.buf[: 4 + n]
            if self.waiter and not self.waiter.done():
                self.waiter.set_result(None)


class BareAsyncio:
    """The floor: a length-prefixed socket echo with nothing else, one connection per mode."""

    name = "bare asyncio (floor)"

    async def start(self, size: int) -> BareAsyncio:
        loop = asyncio.get_running_loop()
        self.size = size
        self.count: dict[str, Any] = {"n": 0, "target": 0, "done": None}
        self.echo: dict[str, Any] = {"n": 0, "target": 1 << 62}
        self.servers = [await loop.create_server(lambda: _FloorServer(self.count, "count"), "127.0.0.1", 0),
                        await loop.create_server(lambda: _FloorServer(self.echo, "echo"), "127.0.0.1", 0)]
        self.ow, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1",
                                                  self.servers[0].sockets[0].getsockname()[1])
        self.et, self.client = await loop.create_connection(_FloorClient, "127.0.0.1",
                                                            self.servers[1].sockets[0].getsockname()[1])
        self.frame = struct.pack("!I", size) + b"x" * size
        await self.rtt(50)
        return self

    async def _pipeline(self, frame: bytes, n: int, every: int) -> float:
        self.count["target"] = self.count["n"] + n
        self.count["done"] = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        for i in range(n):
            self.ow.write(frame)
            if i % every == every - 1:
                await asyncio.sleep(0)
        await asyncio.wait_for(self.count["done"], 120)
        return time.perf_counter() - start

    async def oneway(self, n: int) -> float:
        return n / await self._pipeline(self.frame, n, 512)

    async def bulk(self, total: int) -> float:
        n = total // BULK_CHUNK
        return n * BULK_CHUNK / 1e6 / await self._pipeline(struct.pack("!I", BULK_CHUNK) + BULK_DATA, n, 16)

    async def rtt(self, n: int) -> list[float]:
        loop = asyncio.get_running_loop()
        samples = []
        for _ in range(n):
            self.client.waiter = loop.create_future()
            s = time.perf_counter()
            self.et.write(self.frame)
            await self.client.waiter
            samples.append(time.perf_counter() - s)
        return samples

    async def close(self) -> None:
        self.ow.close()
        self.et.close()
        for s in self.servers:
            s.close()


# --------------------------------------------------------------------------- our nodes
class OurNodes:
    """Two nodes (transport service only) and one connection from ``a`` to ``b``."""

    def __init__(self, name: str, *, tls: bool, protocol: str) -> None:
        self.name, self.tls, self.protocol = name, tls, protocol

    async def start(self, size: int) -> OurNodes:
        from rustyray.config import NodeConfig, TransportConfig
        from rustyray.node import Node
        from rustyray.protocol.control import Echo, Oneway

        state = tempfile.mkdtemp(prefix="rr-bench-")
        cfg = TransportConfig(tls=self.tls, enable_quic=self.protocol == "QUIC")
        self.a = Node(NodeConfig(node_id="bench-a", state_dir=state, transport=cfg), services=("transport",))
        self.b = Node(NodeConfig(node_id="bench-b", state_dir=state, transport=cfg), services=("transport",))
        await self.a.start()
        await self.b.start()
        if self.protocol == "QUIC":
            self.conn, _ = await self.a.dial("127.0.0.1", self.b.quic_port, protocol="QUIC", expect_node="bench-b")
        else:
            self.conn, _ = await self.a.dial("127.0.0.1", self.b.tcp_port, expect_node="bench-b")
        self.counter: dict[str, Any] = {"n": 0, "target": 0, "done": None}
        counter = self.counter

        def counted(ctx: Any, m: Any) -> None:  # the floor counts on its receiver too
            counter["n"] += 1
            if counter["n"] >= counter["target"] and counter["done"] is not None and not counter["done"].done():
                counter["done"].set_result(None)

        self.b.on(Oneway, counted)
        self.msg = Oneway(data=b"x" * size)
        self.echo = Echo(data=b"x" * size)
        await self.rtt(50)
        return self

    async def _pipeline(self, msg: Any, n: int, every: int) -> float:
        a, conn, counter = self.a, self.conn, self.counter
        counter["target"] = counter["n"] + n
        counter["done"] = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        for i in range(n):
            a.send_on(conn, msg)
            if i % every == every - 1:
                await conn.drain()
                await asyncio.sleep(0)
        await asyncio.wait_for(counter["done"], 120)
        return time.perf_counter() - start

    async def oneway(self, n: int) -> float:
        return n / await self._pipeline(self.msg, n, 512)

    async def bulk(self, total: int) -> float:
        from rustyray.protocol.control import Oneway

        n = total // BULK_CHUNK
        return n * BULK_CHUNK / 1e6 / await self._pipeline(Oneway(data=BULK_DATA), n, 16)

    async def rtt(self, n: int) -> list[float]:
        a, conn, echo = self.a, self.conn, self.echo
        samples = []
        for _ in range(n):
            s = time.perf_counter()
            await a.request_on(conn, echo)
            samples.append(time.perf_counter() - s)
        return samples

    async def close(self) -> None:
        await self.a.stop()
        await self.b.stop()


# --------------------------------------------------------------------------- bare aioquic
class BareAioquic:
    """aioquic's own asyncio protocol, one stream each way, nothing on top."""

    name = "bare aioquic"

    async def start(self, size: int) -> BareAioquic:
        from aioquic.asyncio import QuicConnectionProtocol, connect, serve
        from aioquic.quic.configuration import QuicConfiguration
        from aioquic.quic.events import StreamDataReceived

        from rustyray.security.certificates import ensure_cluster_ca, ensure_node_credentials

        certs = Path(tempfile.mkdtemp(prefix="rr-bench-quic-"))
        ensure_cluster_ca(certs)
        creds = ensure_node_credentials(certs, "quic-bench")
        sink: dict[str, Any] = {"bytes": 0, "target": 0, "done": None}
        self.sink = sink

        class Server(QuicConnectionProtocol):
            def quic_event_received(self, event: Any) -> None:
                if isinstance(event, StreamDataReceived):
                    if event.stream_id == 0:  # echo stream
                        self._quic.send_stream_data(event.stream_id, event.data)
                        self.transmit()
                    else:  # bulk stream: count
                        sink["bytes"] += len(event.data)
                        if sink["bytes"] >= sink["target"] and sink["done"] is not None and not sink["done"].done():
                            sink["done"].set_result(None)

        class Client(QuicConnectionProtocol):
            waiter: asyncio.Future[None] | None = None
            need = 0

            def quic_event_received(self, event: Any) -> None:
                if isinstance(event, StreamDataReceived):
                    self.need -= len(event.data)
                    if self.need <= 0 and self.waiter and not self.waiter.done():
                        self.waiter.set_result(None)

        scfg = QuicConfiguration(is_client=False, alpn_protocols=["bench"])
        scfg.load_cert_chain(str(creds.cert_path), str(creds.key_path))
        self.server = await serve("127.0.0.1", 0, configuration=scfg, create_protocol=Server)
        port = self.server._transport.get_extra_info("sockname")[1]
        ccfg = QuicConfiguration(is_client=True, alpn_protocols=["bench"], verify_mode=ssl.CERT_NONE)
        self._cm = connect("127.0.0.1", port, configuration=ccfg, create_protocol=Client)
        self.client = await self._cm.__aenter__()
        self.sid = self.client._quic.get_next_available_stream_id()
        self.bulk_sid = self.sid + 4  # the next client-initiated bidirectional stream (RFC 9000 section 2.1)
        self.size = size
        self.payload = b"x" * size
        await self.rtt(50)
        return self

    async def oneway(self, n: int) -> float:
        raise NotImplementedError

    async def bulk(self, total: int) -> float:
        client, sink = self.client, self.sink
        chunk = BULK_DATA
        n = total // BULK_CHUNK
        sink["target"] = sink["bytes"] + n * BULK_CHUNK
        sink["done"] = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        for i in range(n):
            client._quic.send_stream_data(self.bulk_sid, chunk)
            client.transmit()
            if i % 16 == 15:
                await asyncio.sleep(0)
        await asyncio.wait_for(sink["done"], 120)
        return n * BULK_CHUNK / 1e6 / (time.perf_counter() - start)

    async def rtt(self, n: int) -> list[float]:
        client, size, payload = self.client, self.size, self.payload
        loop = asyncio.get_running_loop()
        samples = []
        for _ in range(n):
            client.need = size
            client.waiter = loop.create_future()
            s = time.perf_counter()
            client._quic.send_stream_data(self.sid, payload)
            client.transmit()
            await client.waiter
            samples.append(time.perf_counter() - s)
        return samples

    async def close(self) -> None:
        await self._cm.__aexit__(None, None, None)
        self.server.close()


# --------------------------------------------------------------------------- interleaved runs
Harness = Any


async def run_group(size: int, harnesses: list[Harness], args: argparse.Namespace,
                    oneway_n: dict[str, int], bulk: set[str]) -> list[dict[str, Any]]:
    """Start every harness once, then repeat each measurement ``args.runs`` times, harness after harness.

    The order of the harnesses alternates from run to run (baseline first, then ours first).
    """
    started = []
    try:
        for h in harnesses:
            started.append(await h.start(size))
        per: dict[str, dict[str, list[Any]]] = {h.name: {"oneway": [], "bulk": [], "rtt": []} for h in harnesses}
        for run in range(args.runs):
            order = started if run % 2 == 0 else started[::-1]
            log(f"{size} B: run {run + 1}/{args.runs}: {', '.join(h.name for h in order)}")
            for h in order:
                if oneway_n.get(h.name):
                    per[h.name]["oneway"].append(await h.oneway(oneway_n[h.name]))
            for h in order:
                per[h.name]["rtt"].append(latency_summary(await h.rtt(args.rtt)))
            for h in order:
                if h.name in bulk:
                    per[h.name]["bulk"].append(await h.bulk(args.bulk_mib * 1024 * 1024))
    finally:
        for h in started:
            await h.close()
    rows = []
    for h in harnesses:
        m = per[h.name]
        row: dict[str, Any] = {"size": size, "name": h.name}
        if m["oneway"]:
            row["oneway_msgs_per_s"] = round(statistics.median(m["oneway"]), 1)
            row["oneway_runs"] = [round(x, 1) for x in m["oneway"]]
        if m["bulk"]:
            row["bulk_mb_per_s"] = round(statistics.median(m["bulk"]), 1)
            row["bulk_runs"] = [round(x, 1) for x in m["bulk"]]
        rtts = m["rtt"]
        best = sorted(rtts, key=lambda r: r["rtt_per_s"])[len(rtts) // 2]  # the median run's latency figures
        row.update(best)
        row["rtt_runs"] = [r["rtt_per_s"] for r in rtts]
        rows.append(row)
    return rows


async def all_groups(size: int, args: argparse.Namespace, *, bulk: bool) -> list[dict[str, Any]]:
    """TCP (floor, ours, ours over TLS) then QUIC (bare aioquic, ours); bulk only when ``bulk``."""
    ow = args.oneway
    rows = await run_group(size, [BareAsyncio(), OurNodes("rustyray TCP", tls=False, protocol="TCP"),
                                  OurNodes("rustyray TCP+TLS1.3 mTLS", tls=True, protocol="TCP")], args,
                           {"bare asyncio (floor)": ow, "rustyray TCP": ow, "rustyray TCP+TLS1.3 mTLS": ow},
                           {"bare asyncio (floor)", "rustyray TCP"} if bulk else set())
    rows += await run_group(size, [BareAioquic(), OurNodes("rustyray QUIC", tls=True, protocol="QUIC")], args,
                            {"rustyray QUIC": ow // 4}, {"bare aioquic", "rustyray QUIC"} if bulk else set())
    return rows


# --------------------------------------------------------------------------- profiling
def _package(filename: str) -> str:
    for key in ("aioquic", "rustyray", "msgspec", "cryptography", "uvloop", "asyncio", "bench"):
        if f"/{key}/" in filename or filename.endswith(f"/{key}.py") or (key == "bench" and "transport.py" in filename
                                                                          and "/bench/" in filename):
            return key
    return "builtins/C" if filename.startswith("~") else "other"


async def profile_side(kind: str, size: int, args: argparse.Namespace) -> None:
    """cProfile the measurements of our side and of its baseline, separately; print where the time goes.

    The breakdown by package shows what our layer adds beyond the library underneath
    (aioquic for QUIC, the event loop for TCP); the top 25 by tottime show which of our
    functions to make cheaper.
    """
    pairs = ([BareAioquic(), OurNodes("rustyray QUIC", tls=True, protocol="QUIC")] if kind == "quic"
             else [BareAsyncio(), OurNodes("rustyray TCP", tls=False, protocol="TCP")])
    for h in pairs:
        await h.start(size)
    steps: list[tuple[str, Callable[[Harness], Awaitable[Any]]]] = [
        ("rtt", lambda h: h.rtt(args.rtt)),
        ("bulk", lambda h: h.bulk(args.bulk_mib * 1024 * 1024)) if kind == "quic"
        else ("one-way", lambda h: h.oneway(args.oneway)),
    ]
    try:
        for step, run in steps:
            for h in pairs:
                prof = cProfile.Profile()
                t0 = time.perf_counter()
                prof.enable()
                await run(h)
                prof.disable()
                wall = time.perf_counter() - t0
                _print_profile(prof, f"{h.name}: {kind} {step} {size} B, wall {wall:.3f} s (under cProfile)",
                               args.profile_top)
    finally:
        for h in pairs:
            await h.close()


def _print_profile(prof: cProfile.Profile, title: str, top: int) -> None:
    st = pstats.Stats(prof)
    by_pkg: dict[str, float] = {}
    for (filename, _, _), (_, _, tt, _, _) in st.stats.items():  # type: ignore[attr-defined]
        by_pkg[_package(filename)] = by_pkg.get(_package(filename), 0.0) + tt
    total = sum(by_pkg.values())
    print(f"\n=== {title}, profiled {total:.3f} s ===")
    for pkg, tt in sorted(by_pkg.items(), key=lambda kv: -kv[1]):
        print(f"  {pkg:<14} {tt:8.3f} s  {tt / total:6.1%}")
    st.sort_stats("tottime").print_stats(top)


# --------------------------------------------------------------------------- Ray actors
def ray_actors(size: int, oneway_n: int, rtt_n: int) -> dict[str, Any]:
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
        started = True

    @ray.remote(num_cpus=0.1)
    class Sink:
        def __init__(self) -> None:
            self.n = 0

        async def put(self, data: bytes) -> None:
            self.n += 1

        async def echo(self, data: bytes) -> bytes:
            return data

        async def count(self) -> int:
            return self.n

    @ray.remote(num_cpus=0.1)
    class Driver:
        async def run(self, sink: Any, size: int, oneway_n: int, rtt_n: int) -> dict[str, Any]:
            payload = b"x" * size
            for _ in range(50):
                await sink.echo.remote(payload)
            start = time.perf_counter()
            refs = [sink.put.remote(payload) for _ in range(oneway_n)]
            await asyncio.gather(*refs)
            oneway = oneway_n / (time.perf_counter() - start)
            samples = []
            for _ in range(rtt_n):
                s = time.perf_counter()
                await sink.echo.remote(payload)
                samples.append(time.perf_counter() - s)
            return {"oneway": oneway, "samples": samples}

    sink = Sink.remote()
    driver = Driver.remote()
    out = ray.get(driver.run.remote(sink, size, oneway_n, rtt_n))
    ray.kill(sink)
    ray.kill(driver)
    if started:
        ray.shutdown()
    return {"oneway_msgs_per_s": round(out["oneway"], 1), **latency_summary(out["samples"])}


# --------------------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1024])
    p.add_argument("--oneway", type=int, default=100_000, help="messages per one-way run")
    p.add_argument("--rtt", type=int, default=3000, help="round trips per latency run")
    p.add_argument("--bulk-mib", type=int, default=16, help="MiB per bulk run (64 KiB messages)")
    p.add_argument("--runs", type=int, default=1, help="interleaved repetitions of every measurement")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--profile", choices=["quic", "tcp"],
                   help="cProfile our side and its baseline at the largest size; print, write nothing")
    p.add_argument("--profile-top", type=int, default=25, help="functions to list per profile")
    p.add_argument("--out", default=str(RESULTS / "transport.json"))
    args = p.parse_args()
    if args.quick:
        args.oneway, args.rtt = 20_000, 500
    import uvloop

    if args.profile:
        uvloop.run(profile_side(args.profile, max(args.sizes), args))
        return 0
    results: dict[str, Any] = {"params": vars(args), "python": platform.python_version(),
                               "load_average": list(os.getloadavg()), "rows": []}
    for size in args.sizes:
        rows = uvloop.run(all_groups(size, args, bulk=size == max(args.sizes)))
        results["rows"].extend(rows)
        if not args.no_ray:
            log(f"{size} B: Ray actor calls ...")
            row = ray_actors(size, max(2000, args.oneway // 10), args.rtt)
            results["rows"].append({"size": size, "name": "Ray actor calls", **row})
    results["load_average_after"] = list(os.getloadavg())
    print_table(results["rows"])
    results["ratios"] = ratios(results["rows"])
    print(f"ratios over {args.runs} run(s): median [min - max]")
    for k, v in results["ratios"].items():
        print(f"  {k}: {v['median']} [{v['min']} - {v['max']}]" if isinstance(v, dict) else f"  {k}: {v}")
    print(f"load average before/after: {results['load_average']} / {results['load_average_after']}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    log(f"wrote {args.out}")
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'size':>6}  {'transport':<26} {'one-way msg/s':>14} {'bulk MB/s':>10} {'rtt/s':>9} "
            f"{'p50 ms':>8} {'p99 ms':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ow = f"{r['oneway_msgs_per_s']:>14,.0f}" if "oneway_msgs_per_s" in r else f"{'-':>14}"
        bulk = f"{r['bulk_mb_per_s']:>10,.1f}" if "bulk_mb_per_s" in r else f"{'-':>10}"
        print(f"{r['size']:>6}  {r['name']:<26} {ow} {bulk} {r['rtt_per_s']:>9,.0f} {r['p50_ms']:>8.3f} "
              f"{r['p99_ms']:>8.3f}")


def _per_run(ours: dict[str, Any] | None, base: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The ratio ours/base run by run (both measured back to back in the same run), with its spread."""
    if not ours or not base or key not in ours or key not in base:
        return None
    return spread([o / b for o, b in zip(ours[key], base[key], strict=True)])


def ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sorted({r["size"] for r in rows}):
        by = {r["name"]: r for r in rows if r["size"] == size}
        tcp, floor = by.get("rustyray TCP"), by.get("bare asyncio (floor)")
        quic, bq = by.get("rustyray QUIC"), by.get("bare aioquic")
        for label, value in (
            (f"{size}B our TCP one-way / bare asyncio", _per_run(tcp, floor, "oneway_runs")),
            (f"{size}B our TCP rtt/s / bare asyncio", _per_run(tcp, floor, "rtt_runs")),
            (f"{size}B our QUIC rtt/s / bare aioquic", _per_run(quic, bq, "rtt_runs")),
            (f"our TCP bulk MB/s / bare asyncio ({BULK_CHUNK // 1024} KiB messages)",
             _per_run(tcp, floor, "bulk_runs")),
            (f"our QUIC bulk MB/s / bare aioquic ({BULK_CHUNK // 1024} KiB messages)",
             _per_run(quic, bq, "bulk_runs")),
        ):
            if value is not None:
                out[label] = value
        ray_row = by.get("Ray actor calls")
        if tcp and ray_row:
            out[f"{size}B our TCP one-way / Ray calls"] = round(
                tcp["oneway_msgs_per_s"] / ray_row["oneway_msgs_per_s"], 1)
            out[f"{size}B our TCP p99 / Ray p99"] = round(tcp["p99_ms"] / ray_row["p99_ms"], 3)
    return out


if __name__ == "__main__":
    sys.exit(main())
