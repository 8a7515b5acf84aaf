"""PySyncObj baseline for ``bench/raft_commits.py``: a replicated counter on 3 local processes.

Three ``SyncObj`` processes (spawned, not forked) on 127.0.0.1 ports, default ``SyncObjConf``
(batched AppendEntries, 50 ms auto-tick), optionally with ``journalFile`` (PySyncObj's mmap
journal; it writes the log through mmap and never calls fsync/msync while running, so a
journaled commit is not on disk when acknowledged). Once the three agree on a leader, the
leader's process runs the client: ``incr(callback=...)`` with ``depth`` calls in flight (a
semaphore released by the callback), for ``seconds``; a commit is a callback with
``FAIL_REASON.SUCCESS`` (the leader applied it after a majority stored it).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import socket
import tempfile
import threading
import time
from typing import Any


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _run_depth(obj: Any, depth: int, seconds: float) -> dict[str, Any]:
    from pysyncobj import FAIL_REASON

    sem = threading.Semaphore(depth)
    samples: list[float] = []
    failed = [0]

    def done(_res: Any, err: Any, t0: float) -> None:
        if err == FAIL_REASON.SUCCESS:
            samples.append(time.perf_counter() - t0)
        else:
            failed[0] += 1
        sem.release()

    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        sem.acquire()
        t0 = time.perf_counter()
        obj.incr(callback=lambda r, e, t0=t0: done(r, e, t0))
    for _ in range(depth):  # drain what is still in flight
        if not sem.acquire(timeout=30):
            break
    elapsed = time.perf_counter() - start
    return {"concurrency": depth, "commits": len(samples), "failed": failed[0],
            "commits_per_s": round(len(samples) / elapsed, 1), "latencies": samples}


def _node(i: int, ports: list[int], journal_dir: str | None, cmds: Any, results: Any) -> None:
    from pysyncobj import SyncObj, SyncObjConf, replicated

    class Counter(SyncObj):
        def __init__(self, me: str, partners: list[str], conf: SyncObjConf) -> None:
            super().__init__(me, partners, conf=conf)
            self.value = 0

        @replicated
        def incr(self) -> int:
            self.value += 1
            return self.value

    addrs = [f"127.0.0.1:{p}" for p in ports]
    journal = os.path.join(journal_dir, f"journal{i}") if journal_dir else None
    obj = Counter(addrs[i], [a for j, a in enumerate(addrs) if j != i], SyncObjConf(journalFile=journal))
    try:
        while True:
            try:
                cmd = cmds.get(timeout=0.05)
            except queue.Empty:
                leader = obj._getLeader()
                results.put(("status", i, addrs[i], None if leader is None else str(leader), obj.isReady()))
                continue
            if cmd[0] == "stop":
                return
            _, depths, seconds = cmd
            results.put(("result", i, [_run_depth(obj, d, seconds) for d in depths]))
    finally:
        obj.destroy()


def measure(depths: list[int], seconds: float, journal: bool) -> list[dict[str, Any]]:
    """Commit throughput of a 3-process PySyncObj counter at each in-flight depth."""
    ctx = mp.get_context("spawn")
    ports = _free_ports(3)
    jdir = tempfile.mkdtemp(prefix="rr-bench-pysyncobj-") if journal else None
    cmds = [ctx.Queue() for _ in range(3)]
    results = ctx.Queue()
    procs = [ctx.Process(target=_node, args=(i, ports, jdir, cmds[i], results), daemon=True) for i in range(3)]
    for p in procs:
        p.start()
    try:
        leader_idx = _wait_leader(results, time.monotonic() + 60)
        cmds[leader_idx].put(("run", depths, seconds))
        deadline = time.monotonic() + len(depths) * (seconds + 40) + 10
        while True:
            msg = results.get(timeout=max(1.0, deadline - time.monotonic()))
            if msg[0] == "result":
                return msg[2]
    finally:
        for q in cmds:
            q.put(("stop",))
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()


def _wait_leader(results: Any, deadline: float) -> int:
    seen: dict[int, tuple[str, str | None, bool]] = {}
    while time.monotonic() < deadline:
        msg = results.get(timeout=max(0.1, deadline - time.monotonic()))
        if msg[0] != "status":
            continue
        _, i, me, leader, ready = msg
        seen[i] = (me, leader, ready)
        leaders = {v[1] for v in seen.values()}
        if len(seen) == 3 and len(leaders) == 1 and None not in leaders and all(v[2] for v in seen.values()):
            (leader,) = leaders
            return next(k for k, v in seen.items() if v[0] == leader)
    raise TimeoutError("PySyncObj: no agreed leader within 60 s")
