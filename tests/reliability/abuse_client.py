"""Connection abuse against one node listener, run in its own process (so that the attacker's CPU,
above all its TLS handshakes, is not billed to the node being measured).

Every socket is bound to ``--source`` (default 127.0.0.2: loopback, routable on Linux, and a different
firewall source than the legitimate peers on 127.0.0.1) and connects to 127.0.0.1:``--port``.

Families, all started together and held until the node drops them:

* ``idle``: TCP connects that never send a byte (a TLS handshake that never starts);
* ``partial``: a TLS ClientHello, then silence (a handshake that never finishes);
* ``holders``: complete TLS (cluster certificate ``--cert-id``) and never send the Hello frame. Up to
  the per-source connection limit are admitted and held until the hello timeout; the rest are refused;
* ``slow``: complete TLS, then trickle a valid Hello frame one byte every ``--trickle-ms``;
* ``churn``: for ``--churn-s`` seconds, keep opening TLS connections beyond the limit (each refused).

Prints one JSON object: per family, how many connected, how many the node closed, and after how long
(p50 / max seconds since the connection was established).

    python tests/reliability/abuse_client.py --port 4242 --certs DIR
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import socket
import ssl
import sys
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rustyray.protocol.frame import encode_frame  # noqa: E402
from rustyray.protocol.handshake import Hello  # noqa: E402
from rustyray.security.certificates import ensure_node_credentials  # noqa: E402
from rustyray.security.tls import client_context  # noqa: E402

T = TypeVar("T")


def raise_fd_limit(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        soft = min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3) if s else 0.0


class Family:
    def __init__(self, name: str) -> None:
        self.name = name
        self.attempted = 0
        self.connected = 0
        self.failed: dict[str, int] = {}
        self.closed_after: list[float] = []  # seconds from connection established to the node's close
        self.still_open = 0
        self.bytes_sent: list[int] = []

    def fail(self, exc: BaseException) -> None:
        key = type(exc).__name__
        self.failed[key] = self.failed.get(key, 0) + 1

    def report(self) -> dict[str, Any]:
        return {"attempted": self.attempted, "connected": self.connected, "connect_failed": self.failed,
                "closed_by_node": len(self.closed_after), "still_open": self.still_open,
                "closed_within_1s": sum(1 for t in self.closed_after if t < 1.0),
                "closed_after_p50_s": _pct(self.closed_after, 0.5),
                "closed_after_max_s": _pct(self.closed_after, 1.0),
                **({"bytes_sent_max": max(self.bytes_sent)} if self.bytes_sent else {})}


async def _raw_socket(source: str, port: int) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        sock.bind((source, 0))
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 10)
    except BaseException:
        sock.close()
        raise
    return sock


async def _wait_close_raw(sock: socket.socket, fam: Family, t0: float, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(0.01, deadline - time.monotonic()))
            if not data:
                break
    except TimeoutError:
        fam.still_open += 1
        return
    except OSError:
        pass
    fam.closed_after.append(time.monotonic() - t0)


async def _counted(fam: Family, opening: Awaitable[T]) -> T | None:
    """Open one connection of a family, counting the attempt and its outcome (None when it failed)."""
    fam.attempted += 1
    try:
        conn = await opening
    except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
        fam.fail(exc)
        return None
    fam.connected += 1
    return conn


async def idle(source: str, port: int, fam: Family, deadline: float) -> None:
    sock = await _counted(fam, _raw_socket(source, port))
    if sock is None:
        return
    try:
        await _wait_close_raw(sock, fam, time.monotonic(), deadline)
    finally:
        sock.close()


async def partial(source: str, port: int, ctx: ssl.SSLContext, fam: Family, deadline: float) -> None:
    """Send a real ClientHello (from an SSLObject over memory BIOs), then never answer the server."""
    sock = await _counted(fam, _raw_socket(source, port))
    if sock is None:
        return
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, outgoing.read())
        await _wait_close_raw(sock, fam, time.monotonic(), deadline)
    except OSError:
        fam.closed_after.append(0.0)
    finally:
        sock.close()


async def _tls(source: str, port: int, ctx: ssl.SSLContext) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="",
                                                          local_addr=(source, 0)), 15)


async def _wait_close_stream(reader: asyncio.StreamReader, fam: Family, t0: float, deadline: float) -> None:
    try:
        async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
            while await reader.read(65536):
                pass
    except TimeoutError:
        fam.still_open += 1
        return
    except (OSError, ssl.SSLError):
        pass
    fam.closed_after.append(time.monotonic() - t0)


async def holder(source: str, port: int, ctx: ssl.SSLContext, fam: Family, deadline: float) -> None:
    streams = await _counted(fam, _tls(source, port, ctx))
    if streams is None:
        return
    reader, writer = streams
    try:
        await _wait_close_stream(reader, fam, time.monotonic(), deadline)
    finally:
        writer.transport.abort()


async def slow(source: str, port: int, ctx: ssl.SSLContext, fam: Family, deadline: float, trickle_s: float,
               cert_id: str) -> None:
    streams = await _counted(fam, _tls(source, port, ctx))
    if streams is None:
        return
    reader, writer = streams
    t0 = time.monotonic()
    frame = encode_frame(Hello(node_id=cert_id, versions=[1], meta={"pad": "x" * 400}), 1)
    closer = asyncio.ensure_future(_wait_close_stream(reader, fam, t0, deadline))
    sent = 0
    try:
        for i in range(len(frame)):
            if closer.done():
                break
            writer.write(frame[i:i + 1])
            sent += 1
            await writer.drain()
            await asyncio.sleep(trickle_s)
    except (OSError, ssl.SSLError):
        pass
    fam.bytes_sent.append(sent)
    await closer
    writer.transport.abort()


async def churn(source: str, port: int, ctx: ssl.SSLContext, fam: Family, until: float, deadline: float,
                rate: float) -> None:
    tasks = []
    while time.monotonic() < until:
        tasks.append(asyncio.ensure_future(holder(source, port, ctx, fam, deadline)))
        await asyncio.sleep(1 / rate)
    await asyncio.gather(*tasks)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    creds = ensure_node_credentials(Path(args.certs), args.cert_id)
    ctx = client_context(creds)
    fams = {n: Family(n) for n in ("idle", "partial", "holders", "slow", "churn")}
    start = time.monotonic()
    deadline = start + args.hold_s
    jobs: list[Any] = []
    # Slow senders and holders first (they take firewall slots), then the idle flood, then churn.
    jobs += [slow(args.source, args.port, ctx, fams["slow"], deadline, args.trickle_ms / 1000, args.cert_id)
             for _ in range(args.slow)]
    for _ in range(args.holders):
        jobs.append(holder(args.source, args.port, ctx, fams["holders"], deadline))
    tasks = [asyncio.ensure_future(j) for j in jobs]
    await asyncio.sleep(0.5)
    for i in range(args.idle):
        tasks.append(asyncio.ensure_future(idle(args.source, args.port, fams["idle"], deadline)))
        if i % 200 == 199:
            await asyncio.sleep(0.02)  # stay under the listen backlog
    tasks += [asyncio.ensure_future(partial(args.source, args.port, ctx, fams["partial"], deadline))
              for _ in range(args.partial)]
    if args.churn_s > 0:
        tasks.append(asyncio.ensure_future(churn(args.source, args.port, ctx, fams["churn"],
                                                 time.monotonic() + args.churn_s, deadline, args.churn_rate)))
    established = time.monotonic() - start
    print(json.dumps({"event": "established", "after_s": round(established, 2)}), flush=True)
    await asyncio.gather(*tasks)
    return {"source": args.source, "fd_limit": raise_fd_limit(0),
            "families": {n: f.report() for n, f in fams.items()}, "seconds": round(time.monotonic() - start, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--certs", required=True, help="the cluster's certs dir (for a cluster certificate)")
    ap.add_argument("--cert-id", default="abuser")
    ap.add_argument("--source", default="127.0.0.2")
    ap.add_argument("--idle", type=int, default=2000)
    ap.add_argument("--partial", type=int, default=50)
    ap.add_argument("--holders", type=int, default=300)
    ap.add_argument("--slow", type=int, default=20)
    ap.add_argument("--trickle-ms", type=float, default=100.0)
    ap.add_argument("--churn-s", type=float, default=3.0)
    ap.add_argument("--churn-rate", type=float, default=50.0, help="over-limit TLS connects per second")
    ap.add_argument("--hold-s", type=float, default=30.0, help="give up waiting for the node after this")
    args = ap.parse_args()
    raise_fd_limit(args.idle + args.partial + args.holders + args.slow + 2000)
    print(json.dumps({"event": "result", **asyncio.run(run(args))}), flush=True)


if __name__ == "__main__":
    main()
