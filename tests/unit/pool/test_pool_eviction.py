"""Eviction policies."""

from __future__ import annotations

import pytest

from rustyray.pool import EvictionPolicy, NodePool, PoolConfig, plan_warmup


def _pool(policy: EvictionPolicy, **kw: float) -> NodePool:
    cfg = PoolConfig(min_size=1, max_size=10, eviction_policy=policy, health_check_interval_sec=1e9, **kw)
    return NodePool("n", cfg)


def _open(pool: NodePool, ids: list[str], now: float) -> None:
    pool.warmup(pool.total + len(ids))
    for cid in ids:
        pool.add_connection(cid, now)


def test_idle_timeout_closes_long_idle_connections_down_to_min_size() -> None:
    pool = _pool(EvictionPolicy.IDLE_TIMEOUT, idle_timeout_sec=300)
    _open(pool, ["a", "b", "c"], 0.0)
    lease = pool.acquire(100.0)
    pool.release(lease.conn_id, 200.0)  # one connection was used recently
    assert pool.evict(299.0) == []
    evicted = pool.evict(300.0)
    assert len(evicted) == 2 and lease.conn_id not in evicted
    assert pool.evict(10_000.0) == [], "min_size=1 keeps the last connection"
    assert pool.total == 1


def test_max_lifetime_ignores_min_size_and_retires_active_connections_on_release() -> None:
    pool = _pool(EvictionPolicy.MAX_LIFETIME, max_lifetime_sec=3600)
    _open(pool, ["a", "b"], 0.0)
    lease = pool.acquire(10.0)
    assert pool.evict(3599.0) == []
    idle_one = {"a", "b"} - {lease.conn_id}
    assert set(pool.evict(3600.0)) == idle_one
    assert pool.release(lease.conn_id, 3700.0) is None
    assert pool.evict(3700.0) == [lease.conn_id]
    assert pool.total == 0
    assert pool.warmup(pool.config.min_size).to_open == 1


def test_lru_keeps_most_recently_used_idle_connections() -> None:
    pool = _pool(EvictionPolicy.LRU, max_idle=2)
    _open(pool, ["a", "b", "c", "d"], 0.0)
    leases = [pool.acquire(1.0).conn_id for _ in range(4)]
    for t, cid in enumerate(leases):
        pool.release(cid, 10.0 + t)
    assert pool.evict(20.0) == leases[:2], "least recently used first"
    assert pool.idle_count == 2


def test_eviction_never_touches_leased_connections() -> None:
    for policy in EvictionPolicy:
        pool = _pool(policy, idle_timeout_sec=1, max_lifetime_sec=1, max_idle=0)
        _open(pool, ["a", "b"], 0.0)
        a = pool.acquire(0.0).conn_id
        b = pool.acquire(0.0).conn_id
        assert pool.evict(1e6) == []
        assert {a, b} == {"a", "b"}


def test_policy_spellings_and_warmup_planner() -> None:
    assert [p.value for p in EvictionPolicy] == ["LRU", "IdleTimeout", "MaxLifetime"]
    assert plan_warmup(established=7, pending=1, target=10, max_size=20).to_open == 2
    assert plan_warmup(established=7, pending=0, target=50, max_size=20).target_connections == 20
    assert plan_warmup(established=12, pending=0, target=10, max_size=20).to_open == 0
    with pytest.raises(ValueError, match="target"):
        plan_warmup(0, 0, -1, 5)
