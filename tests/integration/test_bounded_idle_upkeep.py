"""Bounded per-node upkeep (issue 12) on a live in-process 5-node cluster: load polls ask a bounded set,
the stats endpoint still reports every member's real load, and pools exist only for peers in use."""

from __future__ import annotations

import pytest
from harness import local_cluster, wait_for

SECTIONS = {"loadbalancer": {"load_poll_interval_sec": 0.2, "load_poll_sample_size": 1, "load_poll_max_recent": 2},
            "pool": {"maintenance_interval_sec": 0.05, "idle_pool_timeout_sec": 0.3}}


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(5, tmp_path, sections=SECTIONS) as c:
        yield c


async def test_a_poll_round_asks_the_used_members_plus_the_sample(cluster):
    lb = cluster.node("node1").services["loadbalancer"]
    assert len(await lb.loads.poll_loads()) == 1, "idle: only the sample"
    lb.before_send("node4")
    lb.after_send("node4", True, 1.0)
    for _ in range(4):
        asked = await lb.loads.poll_loads()
        assert "node4" in asked and len(asked) == 2


async def test_stats_report_every_member_with_a_fresh_load(cluster):
    stats = (await cluster.client.get("/loadbalancer/stats")).json()
    rows = {n["node"]: n for n in stats["nodes"]}
    assert set(rows) == {f"node{i}" for i in range(1, 6)}
    assert all("reported_at" in r and 0 <= r["cpu_load"] <= 1 and r["mem_load"] > 0 for r in rows.values())


async def test_pools_are_lazy_and_idle_ones_are_released(cluster):
    pool = cluster.node("node1").services["pool"]
    await wait_for(lambda: not pool.pools.peers(), 5)  # nothing used: no pools, no probes
    assert pool.connection_count("node3") == 1 and not pool.pools.peers(), "a count is a read"
    async with pool.lease("node3"):
        assert pool.pools.peers() == ["node3"]
    await wait_for(lambda: not pool.pools.peers(), 5)
    assert pool.pools.released_total >= 1
    assert cluster.node("node1").peers["node3"].connected, "releasing a pool keeps the node's connection"


async def test_metrics_rows_cover_unpooled_peers_without_making_pools(cluster):
    pool = cluster.node("node1").services["pool"]
    await wait_for(lambda: not pool.pools.peers(), 5)
    rows = {s.node: s for s in pool.manager.stats()}
    assert set(rows) == {"node2", "node3", "node4", "node5"}
    assert all(r.total_connections == 1 and r.idle == 1 for r in rows.values())
    assert not pool.pools.peers()
