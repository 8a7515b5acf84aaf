"""Chaos soak on a live Ray cluster: kill node actors under steady load and check nothing acknowledged is lost.

What runs (all at once, for ``--minutes``):

* load: workers send ``ChaosRecord`` messages (a sequence number in ``data.seq``) from a random node to a
  random node through POST /routing/send, half AtLeastOnce, half ExactlyOnce (idempotency key
  ``<run>-<seq>``; an ExactlyOnce send that is not acknowledged is retried by the client with the *same*
  key, up to ``eo_client_retries`` times, as a real client would); a broadcast every
  ``broadcast_interval_s`` (alternating AtLeastOnce / ExactlyOnce); and API reads (/nodes,
  /health/aggregate, /routing/delivery/stats, /membership/swim/status) every ``read_interval_s``.
* chaos: every ``kill_interval_s`` a random healthy node actor is killed: ``ray.kill(actor,
  no_restart=False)`` or SIGKILL to its pid (Ray restarts it in both cases); every ``replace_every``-th
  kill is for good (``ray.kill(actor, no_restart=True)``), followed by POST /membership/join of a fresh
  node (``c<k>``) and POST /membership/leave of the dead one.
* watchers: after each kill, the time until the node (or its replacement) is Healthy again: its actor
  answers with a new pid, GET /health/liveness/{node} (asked of another node) says Alive and Ready, and
  that node's SWIM view shows it Alive. RSS of every node actor (psutil on the pid from the actor's
  info) is sampled every ``rss_interval_s``.

Why the processed record is durable. A restarted actor loses everything in memory, including the
receive log, so the ``ChaosRecord`` handler appends ``{seq, source}`` to ``node_dir/records.jsonl`` (one
``write(2)`` on an O_APPEND descriptor) *before* its result is acknowledged; the line survives the
process being killed. The soak pages through it with GET /routing/receive-log?after=&limit= while the
node lives and reads the file directly for nodes that were killed for good. Then:

* acknowledged lost = (target, seq) whose send answered ``acknowledged: true`` (broadcast: ``success``)
  but that is not in the target's record (must be 0);
* ExactlyOnce duplicates = (target, seq) of an ExactlyOnce send recorded more than once (must be 0);
  AtLeastOnce duplicates are allowed and only reported.

Run: ``flock /tmp/rustyray-ray.lock python bench/chaos.py [--minutes 10]``. Writes
``bench/results/chaos.json`` and prints a table. ``tests/chaos/test_chaos_soak.py`` runs a short form.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from serve_apps.auth import admin_headers

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

NAMESPACE = "rustyray"
RECORD_TYPE = "ChaosRecord"


@dataclass(frozen=True)
class SoakConfig:
    """Knobs of one soak run (times in seconds unless named otherwise)."""

    duration_s: float = 600.0
    """Length of the chaos phase (load and kills)."""
    kill_interval_s: float = 10.0
    """Seconds between two kills."""
    replace_every: int = 4
    """Every n-th kill is for good (no restart), followed by a join of a fresh node and a leave of the dead one."""
    senders: int = 4
    """Concurrent sending workers."""
    send_rate: float = 12.0
    """Target routed sends per second over all workers."""
    exactly_once_share: float = 0.5
    """Fraction of sends with ExactlyOnce (the rest AtLeastOnce)."""
    eo_client_retries: int = 3
    """Client-side retries (same idempotency key) of an ExactlyOnce send that was not acknowledged."""
    send_timeout_ms: float = 8000.0
    """timeout_ms of each routed send (covers an actor restart of a few seconds)."""
    broadcast_interval_s: float = 2.0
    """Seconds between broadcasts."""
    read_interval_s: float = 0.5
    """Seconds between API reads."""
    records_poll_s: float = 5.0
    """Seconds between pages through every node's durable record."""
    rss_interval_s: float = 2.0
    """Seconds between RSS samples of every node actor."""
    health_timeout_s: float = 90.0
    """A killed node not Healthy again within this is reported unrecovered."""
    settle_s: float = 20.0
    """After the chaos phase: time for in-flight sends and restarts to finish before the final check."""
    rss_bound_mb: float = 400.0
    """No node actor may exceed this RSS at any sample (a node is about 125 MB on Ray 2.60 / Python 3.11)."""
    rss_growth_bound_mb: float = 64.0
    """Peak RSS of a node in the second half of the soak may exceed its first-half peak by at most this."""
    seed: int = 1
    """Seeds victim choice and load (the timing of a live cluster is not reproducible anyway)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 3)


_NODE_RE = re.compile(r"\b(node|c)\d+\b")


def _kind(method: str, path: str, status: int | str, message: str) -> str:
    """A failure kind: endpoint, status and the message with node ids and numbers blurred."""
    msg = _NODE_RE.sub("<node>", message)
    msg = re.sub(r"\d+(\.\d+)?", "N", msg)[:90]
    return f"{method} {path} {status}: {msg}"


@dataclass
class Recovery:
    node: str
    kind: str  # "ray_kill" | "sigkill" | "replace"
    at_s: float
    back_s: float | None = None  # actor answering again (new pid) / replacement joined
    healthy_s: float | None = None  # Alive + Ready + SWIM Alive
    replacement: str | None = None
    join_s: float | None = None
    leave_s: float | None = None
    error: str | None = None


@dataclass
class Ledger:
    """What the load generator sent and what was acknowledged."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    sends: int = 0
    send_attempts: int = 0
    acked: int = 0
    unacked: int = 0
    broadcasts: int = 0
    by_delivery: Counter[str] = field(default_factory=Counter)


class Soak:
    def __init__(self, api: str, state_dir: Path, nodes: list[str], cfg: SoakConfig) -> None:
        self.api = api
        self.state_dir = state_dir
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.run_id = f"r{int(time.time())}-{cfg.seed}"
        self.members: list[str] = list(nodes)
        self.down: set[str] = set()
        self.departed: list[str] = []
        self.seq = 0
        self.ledger = Ledger()
        self.recoveries: list[Recovery] = []
        self.api_requests = 0
        self.api_failures: Counter[str] = Counter()
        self.records: dict[str, dict[int, int]] = defaultdict(dict)  # node -> index -> seq
        self.cursors: dict[str, int] = defaultdict(lambda: -1)
        self.rss: dict[str, list[tuple[float, int, int]]] = defaultdict(list)  # node -> (t, pid, rss)
        self.pids: dict[str, int] = {}
        self.t0 = 0.0
        self.stop = asyncio.Event()
        self.client: httpx.AsyncClient | None = None
        self.replacements = 0
        self.log_lines: list[str] = []

    # ------------------------------------------------------------------ helpers
    def now(self) -> float:
        return time.monotonic() - self.t0

    def say(self, msg: str) -> None:
        line = f"[chaos {self.now():7.1f}s] {msg}"
        self.log_lines.append(line)
        print(line, flush=True)

    async def http(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                   body: dict[str, Any] | None = None, timeout: float = 30.0,
                   count: bool = True) -> tuple[int, Any]:
        """One API request; failures (non-2xx or transport errors) are counted by kind when ``count``."""
        assert self.client is not None
        if count:
            self.api_requests += 1
        try:
            r = await self.client.request(method, path, params=params, json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            if count:
                self.api_failures[_kind(method, path, "transport", type(exc).__name__)] += 1
            return 0, None
        try:
            data = r.json()
        except ValueError:
            data = None
        if r.status_code >= 400 and count:
            msg = data.get("error", "") if isinstance(data, dict) else r.text[:80]
            self.api_failures[_kind(method, path, r.status_code, str(msg))] += 1
        return r.status_code, data

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def pick(self, exclude: str | None = None) -> str:
        choices = [n for n in self.members if n != exclude] or self.members
        return self.rng.choice(choices)

    async def actor_info(self, node: str, timeout: float = 3.0) -> dict[str, Any] | None:
        import ray

        try:
            handle = await asyncio.to_thread(ray.get_actor, node, namespace=NAMESPACE)
            ref = handle.info.remote()
            return await asyncio.wait_for(asyncio.wrap_future(ref.future()), timeout)
        except Exception:
            return None

    # ------------------------------------------------------------------ load
    async def sender(self, worker: int) -> None:
        gap = self.cfg.senders / self.cfg.send_rate
        rng = random.Random(self.cfg.seed * 1000 + worker)
        while not self.stop.is_set():
            t = time.monotonic()
            eo = rng.random() < self.cfg.exactly_once_share
            await self.send_one("ExactlyOnce" if eo else "AtLeastOnce", rng)
            await asyncio.sleep(max(0.0, gap - (time.monotonic() - t)))

    async def send_one(self, delivery: str, rng: random.Random) -> None:
        seq = self.next_seq()
        target = rng.choice(self.members)
        source = rng.choice(self.members)
        key = f"{self.run_id}-{seq}" if delivery == "ExactlyOnce" else None
        entry = {"seq": seq, "kind": "send", "delivery": delivery, "target": target, "acked": False,
                 "attempts": 0, "t": round(self.now(), 3)}
        self.ledger.entries.append(entry)
        self.ledger.sends += 1
        self.ledger.by_delivery[delivery] += 1
        tries = 1 + (self.cfg.eo_client_retries if key else 0)
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(1.0)
                if source in self.down or source not in self.members:
                    source = rng.choice(self.members)
            if target not in self.members:
                break  # the target left for good: nothing more to deliver to
            body = {"target_node": target, "message_type": RECORD_TYPE, "delivery": delivery,
                    "data": {"seq": seq, "source": source}, "timeout_ms": self.cfg.send_timeout_ms}
            if key:
                body["idempotency_key"] = key
            entry["attempts"] += 1
            self.ledger.send_attempts += 1
            status, data = await self.http("POST", "/routing/send", params={"node": source}, body=body,
                                           timeout=self.cfg.send_timeout_ms / 1000 + 20)
            if status == 200 and isinstance(data, dict) and data.get("acknowledged"):
                entry["acked"] = True
                entry["duplicate_ack"] = bool(data.get("duplicate"))
                if data.get("error"):
                    entry["error"] = data["error"]
                break
            if status == 200 and isinstance(data, dict):
                entry["last_failure"] = _kind("POST", "/routing/send", "200 unacknowledged", str(data.get("error")))
            else:
                msg = data.get("error", "") if isinstance(data, dict) else ""
                entry["last_failure"] = _kind("POST", "/routing/send", status or "transport", str(msg))
        if entry["acked"]:
            self.ledger.acked += 1
        else:
            self.ledger.unacked += 1
            if target in self.departed or target not in self.members:
                entry["target_state"] = "target killed for good"
            elif any(r.node == target and r.kind != "replace" and r.at_s >= entry["t"] - 10 for r in self.recoveries):
                entry["target_state"] = "target restarted meanwhile"

    async def broadcaster(self) -> None:
        n = 0
        while not self.stop.is_set():
            await asyncio.sleep(self.cfg.broadcast_interval_s)
            n += 1
            delivery = "ExactlyOnce" if n % 2 == 0 else "AtLeastOnce"
            seq = self.next_seq()
            source = self.pick()
            self.ledger.broadcasts += 1
            status, data = await self.http("POST", "/routing/broadcast", params={"node": source},
                                           body={"message_type": RECORD_TYPE, "delivery": delivery,
                                                 "data": {"seq": seq, "source": source},
                                                 "timeout_ms": self.cfg.send_timeout_ms},
                                           timeout=self.cfg.send_timeout_ms / 1000 + 20)
            if status != 200 or not isinstance(data, dict):
                continue
            for r in data.get("results", []):
                self.ledger.entries.append({"seq": seq, "kind": "broadcast", "delivery": delivery,
                                            "target": r["node"], "acked": bool(r.get("success")),
                                            "attempts": 1, "t": round(self.now(), 3)})

    async def reader(self) -> None:
        paths = ["/nodes", "/health/aggregate", "/routing/delivery/stats", "/membership/swim/status"]
        i = 0
        while not self.stop.is_set():
            await asyncio.sleep(self.cfg.read_interval_s)
            path = paths[i % len(paths)]
            i += 1
            params = {"node": self.pick()} if path != "/nodes" else None
            await self.http("GET", path, params=params)

    # ------------------------------------------------------------------ records
    async def poll_records(self, node: str, count: bool = True) -> bool:
        """Page through a live node's durable record from the last cursor; False if it cannot be read."""
        while True:
            status, data = await self.http("GET", "/routing/receive-log",
                                           params={"node": node, "after": self.cursors[node], "limit": 5000},
                                           count=count)
            if status != 200 or not isinstance(data, dict):
                return False
            rec = data["records"]
            for e in rec["entries"]:
                self.records[node][e["index"]] = e["seq"]
            if not rec["entries"]:
                return True
            self.cursors[node] = rec["next_after"]

    def read_record_file(self, node: str) -> None:
        """A node killed for good: read its durable record straight from its node directory."""
        from rustyray.routing.record_log import RecordLog
        from rustyray.routing.service import RECORDS_FILE

        log = RecordLog(self.state_dir / "nodes" / node / RECORDS_FILE)
        page = log.read(after=-1, limit=10**9)
        for e in page["entries"]:
            self.records[node][e["index"]] = e["seq"]

    async def record_poller(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(self.cfg.records_poll_s)
            for node in list(self.members):
                if node not in self.down:
                    await self.poll_records(node)

    # ------------------------------------------------------------------ memory
    async def rss_sampler(self) -> None:
        import psutil

        while not self.stop.is_set():
            for node in list(self.members):
                pid = self.pids.get(node)
                proc = None
                if pid is not None:
                    with contextlib.suppress(psutil.Error):
                        proc = psutil.Process(pid)
                        if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                            proc = None
                if proc is None:
                    info = await self.actor_info(node, 2.0)
                    if info is None:
                        continue
                    self.pids[node] = pid = info["pid"]
                    try:
                        proc = psutil.Process(pid)
                    except psutil.Error:
                        continue
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    self.pids.pop(node, None)
                    continue
                self.rss[node].append((round(self.now(), 2), pid, rss))
            await asyncio.sleep(self.cfg.rss_interval_s)

    # ------------------------------------------------------------------ chaos
    def observer(self, node: str) -> str | None:
        others = [n for n in self.members if n != node and n not in self.down]
        return self.rng.choice(others) if others else None

    async def healthy(self, node: str) -> bool:
        """Alive and Ready as another node probes it, and Alive in that node's SWIM view."""
        obs = self.observer(node)
        if obs is None:
            return False
        status, probe = await self.http("GET", f"/health/liveness/{node}", params={"node": obs},
                                        timeout=10, count=False)
        if status != 200 or probe.get("liveness") != "Alive" or probe.get("readiness") != "Ready":
            return False
        status, swim = await self.http("GET", "/membership/swim/status", params={"node": obs},
                                       timeout=10, count=False)
        if status != 200:
            return False
        return any(m["node"] == node and m["status"] == "Alive" for m in swim.get("members", []))

    async def wait_back(self, rec: Recovery, node: str, old_pid: int | None, t_kill: float) -> None:
        deadline = t_kill + self.cfg.health_timeout_s
        try:
            while time.monotonic() < deadline:
                if rec.back_s is None:
                    info = await self.actor_info(node, 2.0)
                    if info is not None and info.get("running") and info["pid"] != old_pid:
                        rec.back_s = round(time.monotonic() - t_kill, 3)
                        self.pids[node] = info["pid"]
                if rec.back_s is not None and await self.healthy(node):
                    rec.healthy_s = round(time.monotonic() - t_kill, 3)
                    return
                await asyncio.sleep(0.25)
            rec.error = f"not Healthy within {self.cfg.health_timeout_s:.0f}s"
        finally:
            self.down.discard(node)
            self.say(f"{node} {'Healthy after ' + str(rec.healthy_s) + 's' if rec.healthy_s else rec.error}")

    async def kill_restart(self, victim: str, how: str) -> asyncio.Task[Any] | None:
        import ray

        info = await self.actor_info(victim, 3.0)
        if info is None:
            return None
        self.down.add(victim)
        t_kill = time.monotonic()
        if how == "sigkill":
            with contextlib.suppress(ProcessLookupError):
                os.kill(info["pid"], signal.SIGKILL)
        else:
            handle = await asyncio.to_thread(ray.get_actor, victim, namespace=NAMESPACE)
            ray.kill(handle, no_restart=False)
        rec = Recovery(victim, how, round(self.now(), 3))
        self.recoveries.append(rec)
        self.say(f"killed {victim} ({how}, pid {info['pid']})")
        return asyncio.ensure_future(self.wait_back(rec, victim, info["pid"], t_kill))

    async def kill_replace(self, victim: str) -> None:
        """Kill for good, join a fresh node, then remove the dead one; timed from the kill."""
        import ray

        self.down.add(victim)
        handle = await asyncio.to_thread(ray.get_actor, victim, namespace=NAMESPACE)
        t_kill = time.monotonic()
        ray.kill(handle, no_restart=True)
        self.replacements += 1
        fresh = f"c{self.replacements}"
        rec = Recovery(victim, "replace", round(self.now(), 3), replacement=fresh)
        self.recoveries.append(rec)
        self.say(f"killed {victim} for good; joining {fresh}")
        try:
            t = time.monotonic()
            status, data = await self.http("POST", "/membership/join", body={"node_id": fresh}, timeout=90)
            rec.join_s = round(time.monotonic() - t, 3)
            if status != 200:
                rec.error = f"join failed: {status} {data}"
                self.say(rec.error)
                return
            rec.back_s = round(time.monotonic() - t_kill, 3)
            self.members.append(fresh)
            self.members.remove(victim)
            self.departed.append(victim)
            t = time.monotonic()
            status, data = await self.http("POST", "/membership/leave", body={"node_id": victim,
                                                                               "reason": "chaos"}, timeout=90)
            rec.leave_s = round(time.monotonic() - t, 3)
            if status != 200:
                rec.error = f"leave failed: {status} {data}"
                self.say(rec.error)
            deadline = t_kill + self.cfg.health_timeout_s
            while time.monotonic() < deadline:
                if await self.healthy(fresh):
                    rec.healthy_s = round(time.monotonic() - t_kill, 3)
                    break
                await asyncio.sleep(0.25)
            else:
                rec.error = rec.error or f"{fresh} not Healthy within {self.cfg.health_timeout_s:.0f}s"
            self.say(f"{fresh} replaced {victim}: join {rec.join_s}s leave {rec.leave_s}s "
                     f"healthy {rec.healthy_s}s")
        finally:
            self.down.discard(victim)

    async def chaos(self) -> None:
        watchers: list[asyncio.Task[Any]] = []
        kinds = ["ray_kill", "sigkill"]
        n = 0
        next_at = time.monotonic() + self.cfg.kill_interval_s
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), delay)
            if self.stop.is_set():
                break
            next_at += self.cfg.kill_interval_s
            candidates = [m for m in self.members if m not in self.down]
            if len(candidates) < len(self.members) - 1:
                self.say("skipping a kill: another node is still recovering")
                continue
            n += 1
            victim = self.rng.choice(candidates)
            if self.cfg.replace_every and n % self.cfg.replace_every == 0:
                await self.kill_replace(victim)
                next_at = max(next_at, time.monotonic() + 1.0)
            else:
                task = await self.kill_restart(victim, kinds[n % 2])
                if task is not None:
                    watchers.append(task)
        if watchers:
            await asyncio.gather(*watchers, return_exceptions=True)

    # ------------------------------------------------------------------ run and check
    async def run(self) -> dict[str, Any]:
        self.t0 = time.monotonic()
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
        headers = admin_headers(self.state_dir)
        async with httpx.AsyncClient(base_url=self.api, limits=limits, headers=headers) as client:
            self.client = client
            self.say(f"soak {self.run_id}: {len(self.members)} nodes, {self.cfg.duration_s:.0f}s of chaos")
            load = [asyncio.ensure_future(self.sender(i)) for i in range(self.cfg.senders)]
            load += [asyncio.ensure_future(c) for c in (self.broadcaster(), self.reader(), self.record_poller(),
                                                        self.rss_sampler())]
            chaos = asyncio.ensure_future(self.chaos())
            await asyncio.sleep(self.cfg.duration_s)
            self.stop.set()
            self.say("chaos over: waiting for in-flight sends and recoveries")
            await asyncio.wait_for(asyncio.gather(chaos, *load, return_exceptions=True),
                                   self.cfg.health_timeout_s + self.cfg.send_timeout_ms / 1000 * 6 + 60)
            await asyncio.sleep(self.cfg.settle_s)
            for node in self.members:  # final read of every live node (retry a restarting one)
                for _ in range(60):
                    if await self.poll_records(node, count=False):
                        break
                    await asyncio.sleep(1.0)
                else:
                    self.say(f"could not read the record of {node}; reading its file")
                    self.read_record_file(node)
            for node in self.departed:
                self.read_record_file(node)
            return self.report()

    def report(self) -> dict[str, Any]:
        cfg = self.cfg
        counts: dict[str, Counter[int]] = {n: Counter(idx_seq.values()) for n, idx_seq in self.records.items()}
        lost: list[dict[str, Any]] = []
        eo_dups: list[dict[str, Any]] = []
        alo_dups = 0
        processed_unacked = 0
        seen_pairs: set[tuple[str, int]] = set()
        for e in self.ledger.entries:
            c = counts.get(e["target"], Counter())[e["seq"]]
            pair = (e["target"], e["seq"])
            if e["acked"] and c == 0:
                lost.append(e)
            if not e["acked"] and c > 0:
                processed_unacked += 1
            if pair in seen_pairs:
                continue
            seen_pairs.add(pair)
            if c > 1:
                if e["delivery"] == "ExactlyOnce":
                    eo_dups.append({**e, "processed": c})
                else:
                    alo_dups += c - 1
        recovered = [r.healthy_s for r in self.recoveries if r.healthy_s is not None]
        restarts = [r.healthy_s for r in self.recoveries if r.healthy_s is not None and r.kind != "replace"]
        backs = [r.back_s for r in self.recoveries if r.back_s is not None and r.kind != "replace"]
        half = cfg.duration_s / 2
        memory: dict[str, Any] = {}
        for node, samples in sorted(self.rss.items()):
            mb = [s[2] / 2**20 for s in samples]
            first = [s[2] / 2**20 for s in samples if s[0] < half]
            second = [s[2] / 2**20 for s in samples if s[0] >= half]
            memory[node] = {
                "peak_mb": round(max(mb), 1),
                "median_mb": round(statistics.median(mb), 1),
                "first_half_peak_mb": round(max(first), 1) if first else None,
                "second_half_peak_mb": round(max(second), 1) if second else None,
                "growth_mb": round(max(second) - max(first), 1) if first and second else None,
                "processes": len({s[1] for s in samples}),
                "samples": len(samples),
            }
        peak = max((m["peak_mb"] for m in memory.values()), default=0.0)
        growth = max((m["growth_mb"] for m in memory.values() if m["growth_mb"] is not None), default=0.0)
        acked_by = Counter(e["delivery"] for e in self.ledger.entries if e["acked"])
        sends = [e for e in self.ledger.entries if e["kind"] == "send"]
        unacked_why = Counter(e.get("last_failure", "target left before the send")
                              + (f" [{e['target_state']}]" if e.get("target_state") else "")
                              for e in sends if not e["acked"])
        return {
            "config": asdict(cfg),
            "run_id": self.run_id,
            "nodes_at_end": sorted(self.members),
            "departed": self.departed,
            "kills": dict(Counter(r.kind for r in self.recoveries)) | {"total": len(self.recoveries)},
            "messages": {
                "routed_sends": self.ledger.sends,
                "send_attempts": self.ledger.send_attempts,
                "sends_acknowledged": self.ledger.acked,
                "sends_unacknowledged": self.ledger.unacked,
                "sends_by_delivery": dict(self.ledger.by_delivery),
                "broadcasts": self.ledger.broadcasts,
                "deliveries_checked": len(self.ledger.entries),
                "deliveries_acknowledged_by_delivery": dict(acked_by),
                "records_read": sum(len(v) for v in self.records.values()),
                "exactly_once_client_retries": sum(e["attempts"] - 1 for e in sends if e["delivery"] == "ExactlyOnce"),
                "duplicate_acks": sum(1 for e in sends if e.get("duplicate_ack")),
                "unacknowledged_reasons": dict(unacked_why.most_common()),
            },
            "acknowledged_lost": len(lost),
            "lost_examples": lost[:10],
            "exactly_once_duplicates": len(eo_dups),
            "exactly_once_duplicate_examples": eo_dups[:10],
            "at_least_once_duplicates": alo_dups,
            "processed_but_unacknowledged": processed_unacked,
            "recovery": {
                "kills": len(self.recoveries),
                "recovered": len(recovered),
                "unrecovered": [asdict(r) for r in self.recoveries if r.healthy_s is None],
                "healthy_after_restart_s": {"count": len(restarts), "p50": _pct(restarts, 0.5),
                                            "p99": _pct(restarts, 0.99),
                                            "max": max(restarts) if restarts else None},
                "actor_back_after_restart_s": {"p50": _pct(backs, 0.5), "p99": _pct(backs, 0.99),
                                               "max": max(backs) if backs else None},
                "healthy_after_any_kill_s": {"count": len(recovered), "p50": _pct(recovered, 0.5),
                                             "p99": _pct(recovered, 0.99),
                                             "max": max(recovered) if recovered else None},
                "events": [asdict(r) for r in self.recoveries],
            },
            "api": {
                "requests": self.api_requests,
                "failed": sum(self.api_failures.values()),
                "failure_kinds": dict(self.api_failures.most_common()),
            },
            "memory": {
                "rss_bound_mb": cfg.rss_bound_mb,
                "rss_growth_bound_mb": cfg.rss_growth_bound_mb,
                "peak_mb": peak,
                "max_growth_mb": growth,
                "within_bounds": peak <= cfg.rss_bound_mb and growth <= cfg.rss_growth_bound_mb,
                "nodes": memory,
            },
        }


# ---------------------------------------------------------------------- cluster lifecycle
def start_cluster(nodes: int, state_dir: Path, port: int) -> dict[str, Any]:
    """``ray.init`` in this process and ``launch.start`` as the CLI does; the caller must ``stop_cluster``."""
    import ray

    from rustyray import launch

    ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    args = launch.parse_args(["--nodes", str(nodes), "--http-port", str(port), "--no-dashboard",
                              "--state-dir", str(state_dir)])
    return launch.start(args)


def stop_cluster() -> None:
    import ray

    from rustyray import launch

    try:
        launch.shutdown(False)
    finally:
        ray.shutdown()


def run_soak(api: str, state_dir: Path, nodes: list[str], cfg: SoakConfig) -> dict[str, Any]:
    return asyncio.run(Soak(api, state_dir, nodes, cfg).run())


def print_table(rep: dict[str, Any]) -> None:
    rec = rep["recovery"]
    h = rec["healthy_after_restart_s"]
    a = rec["healthy_after_any_kill_s"]
    m = rep["messages"]
    rows = [
        ("chaos duration", f"{rep['config']['duration_s']:.0f} s, kill every {rep['config']['kill_interval_s']:.0f} s"),
        ("kills", ", ".join(f"{k} {v}" for k, v in rep["kills"].items())),
        ("routed sends (acked / not)", f"{m['routed_sends']} ({m['sends_acknowledged']} / {m['sends_unacknowledged']})"
                                      f", by delivery {m['sends_by_delivery']}"),
        ("broadcasts", str(m["broadcasts"])),
        ("ExactlyOnce client retries / dup acks", f"{m['exactly_once_client_retries']} / {m['duplicate_acks']}"),
        ("deliveries checked", f"{m['deliveries_checked']} (acked by delivery "
                               f"{m['deliveries_acknowledged_by_delivery']}), records read {m['records_read']}"),
        ("ACKNOWLEDGED LOST", str(rep["acknowledged_lost"])),
        ("EXACTLYONCE DUPLICATES", str(rep["exactly_once_duplicates"])),
        ("AtLeastOnce duplicates (allowed)", str(rep["at_least_once_duplicates"])),
        ("processed but unacknowledged", str(rep["processed_but_unacknowledged"])),
        ("restart -> Healthy (s)", f"n={h['count']} p50={h['p50']} p99={h['p99']} max={h['max']}"),
        ("kill -> Healthy, incl. replace (s)", f"n={a['count']} p50={a['p50']} p99={a['p99']} max={a['max']}"),
        ("unrecovered", str(len(rec["unrecovered"]))),
        ("API requests / failed", f"{rep['api']['requests']} / {rep['api']['failed']}"),
        ("peak RSS per node (MB)", ", ".join(f"{n} {v['peak_mb']}" for n, v in rep["memory"]["nodes"].items())),
        ("RSS bound / growth bound (MB)", f"{rep['memory']['rss_bound_mb']} / {rep['memory']['rss_growth_bound_mb']}"
                                          f" -> peak {rep['memory']['peak_mb']}, growth "
                                          f"{rep['memory']['max_growth_mb']}, ok={rep['memory']['within_bounds']}"),
    ]
    w = max(len(r[0]) for r in rows)
    print()
    for k, v in rows:
        print(f"  {k.ljust(w)}  {v}")
    if m["unacknowledged_reasons"]:
        print("\n  unacknowledged sends by last failure:")
        for k, v in m["unacknowledged_reasons"].items():
            print(f"    {v:5d}  {k}")
    if rep["api"]["failure_kinds"]:
        print("\n  API failures by kind:")
        for k, v in rep["api"]["failure_kinds"].items():
            print(f"    {v:5d}  {k}")
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=10.0, help="length of the chaos phase (default 10)")
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--kill-interval", type=float, default=10.0, help="seconds between kills (default 10)")
    p.add_argument("--replace-every", type=int, default=4, help="every n-th kill is for good + join/leave")
    p.add_argument("--send-rate", type=float, default=12.0, help="routed sends per second (default 12)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--http-port", type=int, default=0, help="API port (default: a free one; never 8080)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "chaos.json"))
    args = p.parse_args(argv)
    if args.http_port == 8080:
        p.error("port 8080 is reserved for the lead's cluster")
    cfg = SoakConfig(duration_s=args.minutes * 60, kill_interval_s=args.kill_interval,
                     replace_every=args.replace_every, send_rate=args.send_rate, seed=args.seed)
    port = args.http_port or _free_port()
    with tempfile.TemporaryDirectory(prefix="rustyray-chaos-") as tmp:
        state_dir = Path(tmp)
        t = time.monotonic()
        try:
            summary = start_cluster(args.nodes, state_dir, port)
            print(f"[chaos] cluster up in {time.monotonic() - t:.1f}s", flush=True)
            nodes = [n["node_id"] for n in summary["nodes"]]
            rep = run_soak(f"http://127.0.0.1:{port}/api/v1/network", state_dir, nodes, cfg)
        finally:
            stop_cluster()
    rep["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    print_table(rep)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rep, indent=2, default=str))
    print(f"[chaos] report written to {args.out}")
    ok = (rep["acknowledged_lost"] == 0 and rep["exactly_once_duplicates"] == 0
          and not rep["recovery"]["unrecovered"] and rep["memory"]["within_bounds"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
