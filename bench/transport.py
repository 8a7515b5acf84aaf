"""Transport benchmark: our TCP / TLS / QUIC against bare asyncio, bare aioquic and Ray actor calls.

One run, side by side, for each message size (100 B and 1 KiB by default):

- one-way throughput (messages/s, pipelined, counted on the receiver);
- request/response latency (p50 / p99, sequential round trips) and round trips/s.

Baselines: a bare asyncio length-prefixed echo on loopback (the floor for Python), a bare
aioquic stream echo, and Ray async actor method calls between two actors. Our nodes and
the asyncio/aioquic baselines run in this process's event loop (uvloop, like Ray's
actors); Ray's run in actor processes. Prints a table and writes
``bench/results/transport.json``.

    python bench/transport.py                # full run
    python bench/transport.py --quick        # smaller counts
    python bench/transport.py --no-ray       # skip the Ray baseline
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import ssl
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))] if s else 0.0


def latency_summary(samples_s: list[float]) -> dict[str, float]:
    ms = [x * 1000 for x in samples_s]
    return {"p50_ms": round(pct(ms, 0.5), 4), "p99_ms": round(pct(ms, 0.99), 4),
            "mean_ms": round(statistics.fmean(ms), 4), "rtt_per_s": round(len(ms) / sum(samples_s), 1)}


# --------------------------------------------------------------------------- bare asyncio
class _EchoServer(asyncio.Protocol):
    """Length-prefixed frames; mode 'count' counts them, mode 'echo' sends each back."""

    def __init__(self, counter: dict[str, int], mode: str) -> None:
        self.buf = bytearray()
        self.counter = counter
        self.mode = mode

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= 4:
            (n,) = struct.unpack_from("!I", buf)
            if len(buf) < 4 + n:
                break
            frame = bytes(buf[: 4 + n])
            del buf[: 4 + n]
            self.counter["n"] += 1
            if self.mode == "echo":
                self.t.write(frame)  # type: ignore[attr-defined]
        if self.counter["n"] >= self.counter["target"] and "done" in self.counter:
            fut = self.counter.pop("done")
            if not fut.done():
                fut.set_result(None)


class _EchoClient(asyncio.Protocol):
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


async def bare_asyncio(size: int, oneway_n: int, rtt_n: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    payload = b"x" * size
    frame = struct.pack("!I", len(payload)) + payload
    counter: dict[str, Any] = {"n": 0, "target": oneway_n, "done": loop.create_future()}
    server = await loop.create_server(lambda: _EchoServer(counter, "count"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
    start = time.perf_counter()
    for i in range(oneway_n):
        t.write(frame)
        if i % 512 == 511:
            await asyncio.sleep(0)
    await counter["done"]
    oneway = oneway_n / (time.perf_counter() - start)
    t.close()
    server.close()
    echo_counter: dict[str, Any] = {"n": 0, "target": 1 << 62}
    server = await loop.create_server(lambda: _EchoServer(echo_counter, "echo"), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    t, client = await loop.create_connection(_EchoClient, "127.0.0.1", port)
    samples = []
    for _ in range(rtt_n):
        client.waiter = loop.create_future()
        s = time.perf_counter()
        t.write(frame)
        await client.waiter
        samples.append(time.perf_counter() - s)
    t.close()
    server.close()
    return {"oneway_msgs_per_s": round(oneway, 1), **latency_summary(samples)}


# --------------------------------------------------------------------------- our nodes
async def measure_pair(a: Any, b: Any, conn: Any, size: int, oneway_n: int, rtt_n: int) -> dict[str, Any]:
    """Pipelined one-way throughput (counted on ``b``) and sequential round trips over ``conn``."""
    from rustyray.protocol.control import Echo, Oneway

    msg = Oneway(data=b"x" * size)
    target = b.stats.messages_received + oneway_n
    start = time.perf_counter()
    for i in range(oneway_n):
        a.send_on(conn, msg)
        if i % 512 == 511:
            await conn.drain()
            await asyncio.sleep(0)
    while b.stats.messages_received < target:
        await asyncio.sleep(0.0005)
    oneway = oneway_n / (time.perf_counter() - start)
    echo = Echo(data=b"x" * size)
    for _ in range(50):
        await a.request_on(conn, echo)
    samples = []
    for _ in range(rtt_n):
        s = time.perf_counter()
        await a.request_on(conn, echo)
        samples.append(time.perf_counter() - s)
    return {"oneway_msgs_per_s": round(oneway, 1), **latency_summary(samples)}


async def our_nodes(size: int, oneway_n: int, rtt_n: int, *, tls: bool, protocol: str) -> dict[str, Any]:
    from rustyray.config import NodeConfig, TransportConfig
    from rustyray.node import Node

    services = ("transport",)
    state = tempfile.mkdtemp(prefix="rr-bench-")
    cfg = TransportConfig(tls=tls, enable_quic=protocol == "QUIC")
    a = Node(NodeConfig(node_id="bench-a", state_dir=state, transport=cfg), services=services)
    b = Node(NodeConfig(node_id="bench-b", state_dir=state, transport=cfg), services=services)
    await a.start()
    await b.start()
    try:
        if protocol == "QUIC":
            conn, _ = await a.dial("127.0.0.1", b.quic_port, protocol="QUIC", expect_node="bench-b")
        else:
            conn, _ = await a.dial("127.0.0.1", b.tcp_port, expect_node="bench-b")
        return await measure_pair(a, b, conn, size, oneway_n, rtt_n)
    finally:
        await a.stop()
        await b.stop()


# --------------------------------------------------------------------------- bare aioquic
async def bare_aioquic(size: int, rtt_n: int) -> dict[str, Any]:
    from aioquic.asyncio import QuicConnectionProtocol, connect, serve
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import StreamDataReceived

    from rustyray.security.certificates import ensure_cluster_ca, ensure_node_credentials

    certs = Path(tempfile.mkdtemp(prefix="rr-bench-quic-"))
    ensure_cluster_ca(certs)
    creds = ensure_node_credentials(certs, "quic-bench")

    class Server(QuicConnectionProtocol):
        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, StreamDataReceived):
                self._quic.send_stream_data(event.stream_id, event.data)
                self.transmit()

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
    server = await serve("127.0.0.1", 0, configuration=scfg, create_protocol=Server)
    port = server._transport.get_extra_info("sockname")[1]
    ccfg = QuicConfiguration(is_client=True, alpn_protocols=["bench"], verify_mode=ssl.CERT_NONE)
    payload = b"x" * size
    samples = []
    async with connect("127.0.0.1", port, configuration=ccfg, create_protocol=Client) as client:
        sid = client._quic.get_next_available_stream_id()
        loop = asyncio.get_running_loop()
        for i in range(rtt_n + 50):
            client.need = size
            client.waiter = loop.create_future()
            s = time.perf_counter()
            client._quic.send_stream_data(sid, payload)
            client.transmit()
            await client.waiter
            if i >= 50:
                samples.append(time.perf_counter() - s)
    server.close()
    return latency_summary(samples)


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
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1024])
    p.add_argument("--oneway", type=int, default=100_000, help="messages per one-way run")
    p.add_argument("--rtt", type=int, default=3000, help="round trips per latency run")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--out", default=str(RESULTS / "transport.json"))
    args = p.parse_args()
    if args.quick:
        args.oneway, args.rtt = 20_000, 500
    import uvloop

    results: dict[str, Any] = {"params": vars(args), "python": platform.python_version(), "rows": []}
    for size in args.sizes:
        runs: list[tuple[str, Any]] = [
            ("bare asyncio (floor)", lambda s=size: bare_asyncio(s, args.oneway, args.rtt)),
            ("rustyray TCP", lambda s=size: our_nodes(s, args.oneway, args.rtt, tls=False, protocol="TCP")),
            ("rustyray TCP+TLS1.3 mTLS", lambda s=size: our_nodes(s, args.oneway, args.rtt, tls=True,
                                                                   protocol="TCP")),
            ("bare aioquic", lambda s=size: bare_aioquic(s, args.rtt)),
            ("rustyray QUIC", lambda s=size: our_nodes(s, args.oneway // 4, args.rtt, tls=True, protocol="QUIC")),
        ]
        for name, factory in runs:
            log(f"{size} B: {name} ...")
            row = uvloop.run(factory())
            results["rows"].append({"size": size, "name": name, **row})
        if not args.no_ray:
            log(f"{size} B: Ray actor calls ...")
            row = ray_actors(size, max(2000, args.oneway // 10), args.rtt)
            results["rows"].append({"size": size, "name": "Ray actor calls", **row})
    print_table(results["rows"])
    results["ratios"] = ratios(results["rows"])
    for k, v in results["ratios"].items():
        print(f"  {k}: {v}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    log(f"wrote {args.out}")
    return 0


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'size':>6}  {'transport':<26} {'one-way msg/s':>14} {'rtt/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        ow = f"{r['oneway_msgs_per_s']:>14,.0f}" if "oneway_msgs_per_s" in r else f"{'-':>14}"
        print(f"{r['size']:>6}  {r['name']:<26} {ow} {r['rtt_per_s']:>9,.0f} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f}")


def ratios(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sorted({r["size"] for r in rows}):
        by = {r["name"]: r for r in rows if r["size"] == size}
        tcp, floor = by.get("rustyray TCP"), by.get("bare asyncio (floor)")
        if tcp and floor:
            out[f"{size}B our TCP one-way / bare asyncio"] = round(
                tcp["oneway_msgs_per_s"] / floor["oneway_msgs_per_s"], 3)
        ray_row = by.get("Ray actor calls")
        if tcp and ray_row:
            out[f"{size}B our TCP one-way / Ray calls"] = round(
                tcp["oneway_msgs_per_s"] / ray_row["oneway_msgs_per_s"], 1)
            out[f"{size}B our TCP p99 / Ray p99"] = round(tcp["p99_ms"] / ray_row["p99_ms"], 3)
        quic, bq = by.get("rustyray QUIC"), by.get("bare aioquic")
        if quic and bq:
            out[f"{size}B our QUIC rtt/s / bare aioquic"] = round(quic["rtt_per_s"] / bq["rtt_per_s"], 3)
    return out


if __name__ == "__main__":
    sys.exit(main())
