"""Delivery guarantees (NETWORKING-011 to 013) over real loopback nodes with injected faults.

Both nodes drop, duplicate, reorder and delay routed envelopes and acks with a
seeded RNG, and the connection between them is reset in the middle of the run;
counts are taken on the receiver's handler.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest
from harness import api_delivery_stats, api_send, local_cluster

from rustyray.routing.fault_injection import FaultConfig, FaultInjector

FAST = {"routing": {"retry_initial_s": 0.02, "retry_max_s": 0.1}}
FAULTS = FaultConfig(drop=0.2, duplicate=0.2, reorder=0.1, delay=0.1)
N = 60


@pytest.fixture
async def pair(tmp_path):
    async with local_cluster(2, tmp_path, sections=FAST) as c:
        counts: Counter[int] = Counter()

        def count(ctx, data):
            counts[data["seq"]] += 1
            return {"seq": data["seq"], "run": counts[data["seq"]]}

        c.node("node2").services["routing"].registry.register("Count", count)
        injectors = [
            FaultInjector(c.node(n), FAULTS, random.Random(seed)).install()
            for n, seed in (("node1", 11), ("node2", 12))
        ]
        yield c, counts, injectors
        for inj in injectors:
            inj.uninstall()


async def run_with_reset(c, delivery: str, timeout_ms: int = 20_000) -> list[dict]:
    """Send N messages staggered over time; abort the node1 -> node2 connection half-way."""
    svc = c.node("node1").services["routing"]
    before = c.node("node1").peers["node2"].conn
    tasks = []
    for i in range(N):
        key = f"eo-{i}" if delivery == "ExactlyOnce" else None
        tasks.append(
            asyncio.ensure_future(
                api_send(
                    svc.api,
                    "node2",
                    "Count",
                    {"seq": i},
                    delivery=delivery,
                    idempotency_key=key,
                    timeout_ms=timeout_ms,
                )
            )
        )
        if i == N // 2:
            c.node("node1").peers["node2"].conn.abort("test: connection reset")
        await asyncio.sleep(0.004)
    results = await asyncio.gather(*tasks)
    after = c.node("node1").peers["node2"].conn
    assert after is not None and after is not before and before.is_closed  # the run spanned a reconnect
    assert max(r["attempts"] for r in results) > 1
    return results


def faults_happened(injectors) -> None:
    total = Counter()
    for inj in injectors:
        total.update(inj.stats())
    assert (
        total["dropped"] > 0 and total["duplicated"] > 0 and total["reordered"] > 0 and total["delayed"] > 0
    )


async def test_at_least_once_delivers_every_message_despite_loss_duplication_and_a_reset(pair):
    c, counts, injectors = pair
    results = await run_with_reset(c, "AtLeastOnce")
    assert all(r["success"] and r["acknowledged"] for r in results), [r for r in results if not r["success"]]
    assert all(counts[i] >= 1 for i in range(N))
    assert sum(counts.values()) > N  # duplicates reached the handler: at least once, not exactly once
    faults_happened(injectors)
    stats = api_delivery_stats(c.node("node1").services["routing"].api)["AtLeastOnce"]
    assert stats["sent"] == N and stats["acknowledged"] == N and stats["retried"] > 0 and stats["failed"] == 0


async def test_exactly_once_runs_each_handler_once_despite_loss_duplication_and_a_reset(pair):
    c, counts, injectors = pair
    results = await run_with_reset(c, "ExactlyOnce")
    assert all(r["success"] for r in results), [r for r in results if not r["success"]]
    assert [counts[i] for i in range(N)] == [1] * N
    # every answer, first or redelivered, is the result of the one run
    assert [r["response"] for r in results] == [{"seq": i, "run": 1} for i in range(N)]
    faults_happened(injectors)
    receiver = api_delivery_stats(c.node("node2").services["routing"].api)["receiver"]
    assert receiver["duplicates_suppressed"] > 0
    stats = api_delivery_stats(c.node("node1").services["routing"].api)["ExactlyOnce"]
    assert stats["sent"] == N and stats["acknowledged"] == N and stats["retried"] > 0


async def test_at_most_once_never_runs_twice_and_loses_some_under_loss(pair):
    c, counts, _injectors = pair
    svc = c.node("node1").services["routing"]
    results = await asyncio.gather(
        *(api_send(svc.api, "node2", "Count", {"seq": i}, delivery="AtMostOnce", timeout_ms=400) for i in range(N))
    )
    assert all(counts[i] <= 1 for i in range(N))
    assert sum(counts.values()) < N  # dropped envelopes are not retried
    assert any(not r["acknowledged"] for r in results)
    stats = api_delivery_stats(svc.api)["AtMostOnce"]
    assert stats["retried"] == 0 and stats["failed"] == sum(1 for r in results if not r["acknowledged"])
