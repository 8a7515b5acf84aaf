"""Security micro-benchmarks: AEAD seal/open throughput and TLS 1.3 handshake cost on loopback.

    python bench/security_crypto.py [--seconds 0.3] [--handshakes 100]

Prints a table and writes bench/results/security_crypto.json. The handshake figure is "connect + 1-byte
echo" over 127.0.0.1, because in TLS 1.3 the server verifies the client certificate after the client has
already finished its side of the handshake; the echo makes the server's verification part of the timing.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import platform
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rustyray.security.certificates import ensure_node_credentials
from rustyray.security.encryption import CipherAlgorithm, EncryptionConfig, KeyRing, MessageCipher
from rustyray.security.tls import client_context, server_context

SIZES = (100, 1024, 64 * 1024)
RESULTS = Path(__file__).parent / "results" / "security_crypto.json"


def _rate(fn, seconds: float) -> tuple[int, float]:
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(32):
            fn()
        n += 32
        now = time.perf_counter()
        if now >= deadline:
            return n, now - start


def bench_aead(seconds: float) -> list[dict[str, object]]:
    rows = []
    for alg in CipherAlgorithm:
        cipher = MessageCipher(KeyRing.generate(0.0), EncryptionConfig(algorithm=alg))
        for size in SIZES:
            payload = bytes(size)
            aad = b"\x00" * 16  # a frame header
            sealed = cipher.seal(payload, aad)
            ops = (
                ("seal", functools.partial(cipher.seal, payload, aad)),
                ("open", functools.partial(cipher.open, sealed, aad)),
            )
            for op, fn in ops:
                n, elapsed = _rate(fn, seconds)
                rows.append(
                    {
                        "algorithm": alg.value,
                        "op": op,
                        "size_bytes": size,
                        "ops_per_s": n / elapsed,
                        "us_per_op": elapsed / n * 1e6,
                        "mib_per_s": n * size / elapsed / 2**20,
                    }
                )
    return rows


async def _handshakes(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, count: int) -> list[float]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(1)
        writer.write(data)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    times = []
    try:
        for _ in range(count):
            t0 = time.perf_counter()
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            writer.write(b"x")
            await writer.drain()
            assert await reader.read(1) == b"x"
            times.append(time.perf_counter() - t0)
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()
    return times


def bench_tls(count: int) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        a = ensure_node_credentials(Path(tmp), "bench-server")
        b = ensure_node_credentials(Path(tmp), "bench-client")
        mutual = (server_context(a), client_context(b))
        server_only = server_context(a)
        server_only.verify_mode = ssl.CERT_NONE
        anon_client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        anon_client.minimum_version = ssl.TLSVersion.TLSv1_3
        anon_client.check_hostname = False
        anon_client.load_verify_locations(cafile=str(a.ca_path))
        rows = []
        for name, (sctx, cctx) in (("mutual_tls", mutual), ("server_cert_only", (server_only, anon_client))):
            asyncio.run(_handshakes(sctx, cctx, 5))  # warm-up
            times = sorted(asyncio.run(_handshakes(sctx, cctx, count)))
            rows.append(
                {
                    "mode": name,
                    "handshakes": count,
                    "mean_ms": statistics.fmean(times) * 1e3,
                    "p50_ms": times[len(times) // 2] * 1e3,
                    "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1e3,
                }
            )
        return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0.3, help="time per AEAD measurement")
    ap.add_argument("--handshakes", type=int, default=100, help="TLS handshakes per mode")
    args = ap.parse_args()
    aead = bench_aead(args.seconds)
    tls = bench_tls(args.handshakes)
    print(f"{'algorithm':18} {'op':5} {'size':>7} {'ops/s':>12} {'us/op':>9} {'MiB/s':>9}")
    for r in aead:
        print(
            f"{r['algorithm']:18} {r['op']:5} {r['size_bytes']:>7} {r['ops_per_s']:>12,.0f} "
            f"{r['us_per_op']:>9.2f} {r['mib_per_s']:>9.1f}"
        )
    print()
    print(f"{'TLS 1.3 mode':18} {'n':>5} {'mean ms':>9} {'p50 ms':>9} {'p99 ms':>9}")
    for r in tls:
        print(f"{r['mode']:18} {r['handshakes']:>5} {r['mean_ms']:>9.3f} {r['p50_ms']:>9.3f} {r['p99_ms']:>9.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "python": sys.version.split()[0],
                "openssl": ssl.OPENSSL_VERSION,
                "machine": platform.machine(),
                "aead": aead,
                "tls_handshake": tls,
            },
            indent=2,
        )
    )
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
