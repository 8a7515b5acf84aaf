"""Long-form wire-protocol fuzzing: the frame decoder directly, then a real node over TLS.

Two phases, both fed by ``tests/reliability/wire_corpus.Mutator`` (the same input families as the CI
test ``tests/reliability/test_wire_fuzz.py``: random, truncated, oversize, bad checksum, bad flags,
wrong payload type, valid, and valid-but-wrong-for-the-state frames):

1. decoder: ``FrameDecoder`` fed each input (sometimes in random chunks). Anything but a
   ``ProtocolError`` or a decoded frame is a defect. Reports inputs/s (raw decoder throughput).
2. live: a 2-node in-process cluster (TLS 1.3 + mTLS, every service). Worker connections, each with a
   cluster certificate, send either one hostile input before the Hello, or, after an accepted Hello,
   a batch of inputs the protocol lets a connection survive (valid and state-wrong frames) followed by
   one input of any family. The node must drop the connection exactly when the oracle
   (``wire_corpus.predict``) says so and otherwise still answer an Echo on it. Every ``--check-every``
   connections the node's connection table, per-connection tasks and firewall slots must be back to
   their baseline; at the end node2 must still get Echo answers from node1 and no ERROR record may
   have been logged.

    python bench/fuzz_wire.py                       # 5,000,000 decoder + 1,000,000 live inputs
    python bench/fuzz_wire.py --count 100000 --decoder-count 1000000
    python bench/fuzz_wire.py --seed 7 --workers 8

Writes ``bench/results/fuzz_wire.json``; exits 1 on any defect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "reliability")]

from reliability_support import (  # noqa: E402
    close_writer,
    closed_by_peer,
    connection_tasks,
    open_raw,
    read_frame,
    wait_until,
)
from wire_corpus import FUZZ_ID, KINDS, Mutator, hello_accepted, hello_frame, predict  # noqa: E402

from rustyray.protocol.control import Echo, EchoReply  # noqa: E402
from rustyray.protocol.errors import ProtocolError  # noqa: E402
from rustyray.protocol.frame import Flags, FrameDecoder, encode_frame  # noqa: E402
from rustyray.protocol.handshake import HelloAck  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SURVIVABLE = ("valid", "context")  # families a connection survives after the handshake


def log(msg: str) -> None:
    print(f"[fuzz] {msg}", file=sys.stderr, flush=True)


class ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()[:300]}")


# ---------------------------------------------------------------------------------------------- decoder
def fuzz_decoder(count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    mut = Mutator(rng)
    outcomes: Counter[str] = Counter()
    defects: list[str] = []
    start = last = time.perf_counter()
    decoding = 0.0
    for i in range(count):
        kind, data = mut.hostile()
        t0 = time.perf_counter()
        dec = FrameDecoder()
        try:
            if rng.random() < 0.2 and len(data) > 1:  # chunked delivery
                cut = rng.randrange(1, len(data))
                dec.feed(data[:cut])
                dec.frames()
                dec.feed(data[cut:])
            else:
                dec.feed(data)
            frames = dec.frames()
            outcomes["frame" if frames else "incomplete"] += 1
        except ProtocolError as exc:
            outcomes[exc.code] += 1
        except Exception as exc:  # a defect: only ProtocolError may leave the decoder
            outcomes[f"DEFECT {type(exc).__name__}"] += 1
            if len(defects) < 10:
                defects.append(f"{kind}: {type(exc).__name__}: {exc} input={data[:64].hex()}")
        now = time.perf_counter()
        decoding += now - t0
        if now - last > 5:
            last = now
            log(f"decoder {i + 1:,}/{count:,} ({(i + 1) / (now - start):,.0f} inputs/s)")
    elapsed = time.perf_counter() - start
    return {"inputs": count, "seconds": round(elapsed, 2), "inputs_per_s": round(count / elapsed),
            "decode_only_inputs_per_s": round(count / decoding), "outcomes": dict(outcomes.most_common()),
            "defects": defects}


# ---------------------------------------------------------------------------------------------- live
async def fuzz_live(count: int, seed: int, workers: int, batch: int, check_every: int) -> dict[str, Any]:
    from harness import local_cluster

    from rustyray.security.certificates import ensure_node_credentials
    from rustyray.security.tls import client_context

    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    logging.getLogger("rustyray").setLevel(logging.ERROR)  # one WARNING per refused connection otherwise
    outcomes: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    defects: list[str] = []
    sent = 0
    conns = 0
    with tempfile.TemporaryDirectory() as tmp:
        async with local_cluster(2, Path(tmp)) as c:
            node1, node2 = c.node("node1"), c.node("node2")
            ctx = client_context(ensure_node_credentials(node1.config.certs_dir, FUZZ_ID))
            firewall = node1.services["security"].firewall
            base_conns, base_slots = set(node1.connections), dict(firewall._connections)
            base_conn_tasks, base_tasks = connection_tasks(node1), len(node1._tasks)
            start = last = time.perf_counter()
            gate = asyncio.Event()
            gate.set()

            async def one(rng: random.Random) -> int:
                mut = Mutator(rng)
                post = rng.random() < 0.9
                frames: list[tuple[str, bytes]] = []
                if post:
                    for _ in range(rng.randrange(batch // 2, batch + 1)):
                        kind = rng.choice(SURVIVABLE)
                        frames.append((kind, mut.frame(kind)))
                frames.append(mut.hostile())
                data = b"".join(f for _, f in frames)
                stage = "post_hello" if post else "pre_hello"
                for kind, _ in frames:
                    kinds[kind] += 1
                reader, writer = await open_raw(node1.tcp_port, ctx)
                dec = FrameDecoder()
                try:
                    if post:
                        writer.write(hello_frame())
                        ack = await read_frame(reader, dec)
                        assert isinstance(ack.message, HelloAck) and ack.message.accepted
                    try:
                        writer.write(data)
                        await writer.drain()
                    except (ConnectionError, OSError):
                        pass
                    expected = predict(stage, data)
                    if expected == "closed":
                        if not await closed_by_peer(reader, 10):
                            raise AssertionError(f"kept a connection it had to drop ({frames[-1][0]})")
                        outcomes[f"{stage}:closed"] += 1
                    else:
                        oracle = FrameDecoder()
                        oracle.feed(data)
                        parsed = oracle.frames()
                        if (post or (parsed and hello_accepted(parsed[0].message))) and oracle.buffered == 0:
                            writer.write(encode_frame(Echo(data=b"probe"), 2**63, flags=Flags.ACK_REQUESTED))
                            reply = await read_frame(reader, dec, timeout=10,
                                                     want=lambda f: f.msg_id == 2**63 and f.is_response)
                            if reply.message != EchoReply(data=b"probe"):
                                raise AssertionError(f"probe answered with {reply.message}")
                            outcomes[f"{stage}:served"] += 1
                        else:
                            outcomes[f"{stage}:pending"] += 1
                except Exception as exc:
                    outcomes["DEFECT"] += 1
                    if len(defects) < 10:
                        defects.append(f"{stage} {[k for k, _ in frames][-3:]}: {type(exc).__name__}: {exc}"
                                       f" last={frames[-1][1][:64].hex()}")
                finally:
                    close_writer(writer)
                return len(frames)

            async def leak_check() -> None:
                ok = await wait_until(lambda: set(node1.connections) <= base_conns
                                      and dict(firewall._connections) == base_slots
                                      and connection_tasks(node1) <= base_conn_tasks, 10)
                if not ok:
                    defects.append(f"leak after {conns} connections: conns "
                                   f"{len(set(node1.connections) - base_conns)}, slots {firewall._connections}, "
                                   f"tasks {connection_tasks(node1)}")
                    outcomes["DEFECT"] += 1

            async def worker(wid: int) -> None:
                nonlocal sent, conns, last
                rng = random.Random(seed * 1000 + wid)
                while sent < count and len(defects) < 10:
                    await gate.wait()
                    n = await one(rng)  # not `sent += await ...`: that reads `sent` before the await
                    sent += n
                    conns += 1
                    if conns % check_every == 0 and gate.is_set():
                        gate.clear()  # quiesce: let the other workers finish their connection first
                        await asyncio.sleep(0.05)
                        await leak_check()
                        gate.set()
                    now = time.perf_counter()
                    if now - last > 5:
                        last = now
                        log(f"live {sent:,}/{count:,} inputs, {conns:,} connections "
                            f"({sent / (now - start):,.0f} inputs/s, {conns / (now - start):,.0f} conn/s) "
                            f"{dict(outcomes)}")

            await asyncio.gather(*(worker(i) for i in range(workers)))
            elapsed = time.perf_counter() - start
            await leak_check()
            reply = await node2.request("node1", Echo(data=b"after"), timeout=5)
            node1.remove_peer(FUZZ_ID)
            tasks_ok = await wait_until(lambda: len(node1._tasks) <= base_tasks, 15)
            healthy = reply == EchoReply(data=b"after") and c.fully_meshed() and node1.running and tasks_ok
            refusals = dict(node1.stats.refusals)
            stats = {"protocol_errors": node1.stats.protocol_errors,
                     "handshake_refusals": node1.stats.handshake_refusals}
    logging.getLogger().removeHandler(errors)
    if errors.records:
        defects.extend(f"ERROR log: {r}" for r in errors.records[:10])
    return {"inputs": sent, "connections": conns, "seconds": round(elapsed, 2),
            "inputs_per_s": round(sent / elapsed), "connections_per_s": round(conns / elapsed, 1),
            "outcomes": dict(outcomes), "inputs_by_kind": {k: kinds[k] for k in KINDS},
            "node_refusals": refusals, "node_stats": stats, "error_log_records": len(errors.records),
            "healthy_after": healthy, "defects": defects}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="live inputs sent to the node (default 1M)")
    ap.add_argument("--decoder-count", type=int, default=5_000_000, help="inputs fed to the decoder (default 5M)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=8, help="concurrent fuzz connections")
    ap.add_argument("--batch", type=int, default=200, help="max survivable inputs per connection")
    ap.add_argument("--check-every", type=int, default=500, help="leak check every N connections")
    args = ap.parse_args()
    report: dict[str, Any] = {"seed": args.seed}
    if args.decoder_count:
        log(f"decoder phase: {args.decoder_count:,} inputs")
        report["decoder"] = fuzz_decoder(args.decoder_count, args.seed)
        log(f"decoder: {json.dumps(report['decoder'])}")
    if args.count:
        log(f"live phase: {args.count:,} inputs against a real node")
        report["live"] = asyncio.run(fuzz_live(args.count, args.seed, args.workers, args.batch, args.check_every))
        log(f"live: {json.dumps(report['live'])}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "fuzz_wire.json").write_text(json.dumps(report, indent=2))
    bad = any(report[p]["defects"] for p in ("decoder", "live") if p in report)
    bad = bad or ("live" in report and not report["live"]["healthy_after"])
    print(json.dumps(report, indent=2))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
