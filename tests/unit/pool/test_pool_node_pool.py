"""NodePool accounting: leasing, FIFO waiters, timeouts, health checks, never over max, never leaking."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule

from rustyray.pool import (
    ConnectionState,
    Grant,
    NodePool,
    PoolConfig,
    PoolConfigError,
    PoolExhaustedError,
    PoolManager,
    UnknownConnectionError,
)


def _filled(pool: NodePool, n: int, now: float = 0.0) -> list[str]:
    plan = pool.warmup(n)
    ids = [f"c{i}" for i in range(plan.to_open)]
    for cid in ids:
        assert pool.add_connection(cid, now) is None
    return ids


def test_acquire_reuses_idle_then_queues_and_asks_for_opens() -> None:
    pool = NodePool("node1", PoolConfig(min_size=0, max_size=2, acquire_timeout_sec=5))
    first = pool.acquire(0.0)
    assert first.conn_id is None and first.open_connections == 1 and first.deadline == 5.0
    grant = pool.add_connection("c0", 0.1)
    assert grant == Grant(first.waiter_id, "c0")
    assert pool.release("c0", 1.0) is None
    again = pool.acquire(1.5)
    assert again.conn_id == "c0" and again.open_connections == 0
    second = pool.acquire(2.0)
    third = pool.acquire(2.0)
    assert second.open_connections == 1 and third.open_connections == 0, "max_size=2 caps opens"
    assert pool.add_connection("c1", 2.1) == Grant(second.waiter_id, "c1")
    # FIFO: the released connection goes to the oldest waiter
    assert pool.release("c0", 3.0) == Grant(third.waiter_id, "c0")
    pool.check_invariants()


def test_waiters_time_out_in_fifo_order_and_cancel() -> None:
    pool = NodePool("n", PoolConfig(min_size=0, max_size=1, acquire_timeout_sec=1))
    _filled(pool, 1)
    held = pool.acquire(0.0)
    w1 = pool.acquire(0.0)
    w2 = pool.acquire(0.5)
    w3 = pool.acquire(0.6, timeout=10)
    assert pool.next_deadline() == 1.0
    assert pool.expire_waiters(0.99) == []
    assert pool.expire_waiters(1.6) == [w1.waiter_id, w2.waiter_id]
    assert pool.cancel(w3.waiter_id) and not pool.cancel(w3.waiter_id)
    assert pool.release(held.conn_id, 2.0) is None
    assert pool.stats().idle == 1


def test_queue_bound_gives_back_pressure() -> None:
    pool = NodePool("n", PoolConfig(min_size=0, max_size=1, max_waiters=2))
    pool.acquire(0)
    pool.acquire(0)
    with pytest.raises(PoolExhaustedError):
        pool.acquire(0)


def test_unhealthy_release_and_discard_free_capacity_for_waiters() -> None:
    pool = NodePool("n", PoolConfig(min_size=0, max_size=1))
    _filled(pool, 1)
    lease = pool.acquire(0)
    waiter = pool.acquire(0)
    assert waiter.open_connections == 0
    assert pool.release(lease.conn_id, 1, healthy=False) is None
    assert pool.plan_opens() == 1
    pool.connect_failed()
    assert pool.plan_opens() == 1
    assert pool.add_connection("c9", 2) == Grant(waiter.waiter_id, "c9")
    pool.discard("c9")
    assert pool.total == 0
    with pytest.raises(UnknownConnectionError):
        pool.release("c9", 3)


def test_stats_match_seed_fields() -> None:
    pool = NodePool("node1", PoolConfig(min_size=0, max_size=20))
    _filled(pool, 10)
    for _ in range(7):
        assert pool.acquire(0).conn_id is not None
    assert pool.stats().to_dict() == {
        "node": "node1", "total_connections": 10, "active": 7, "idle": 3, "max_size": 20, "utilization": 0.7,
    }


def test_health_checks_take_idle_connections_out_and_back() -> None:
    pool = NodePool("n", PoolConfig(min_size=0, max_size=3, health_check_interval_sec=10))
    _filled(pool, 2, now=0.0)
    assert pool.health_checks_due(9.9) == []
    due = pool.health_checks_due(10.0)
    assert sorted(due) == ["c0", "c1"]
    assert pool.state_of("c0") is ConnectionState.CHECKING
    waiter = pool.acquire(10.0)
    assert waiter.conn_id is None and waiter.open_connections == 1, "checking connections are not leasable"
    assert pool.health_check_result("c0", True, 10.5) == Grant(waiter.waiter_id, "c0")
    assert pool.health_check_result("c1", False, 10.5) is None
    assert pool.state_of("c1") is None
    with pytest.raises(UnknownConnectionError):
        pool.health_check_result("c0", True, 11)


def test_warmup_counts_pending_and_caps_at_max() -> None:
    pool = NodePool("node3", PoolConfig(min_size=0, max_size=10))
    _filled(pool, 7)
    plan = pool.warmup(12)
    assert plan.to_dict() == {"warmup_initiated": True, "target_connections": 10, "established": 7}
    assert plan.to_open == 3
    assert pool.warmup(12).to_open == 0, "pending opens count toward the target"


def test_config_validation_names_fields_and_presets_validate() -> None:
    with pytest.raises(PoolConfigError, match="min_size"):
        PoolConfig(min_size=5, max_size=2).validate()
    with pytest.raises(PoolConfigError, match="acquire_timeout_sec"):
        NodePool("n", PoolConfig(acquire_timeout_sec=0))
    PoolConfig.lan().validate()
    PoolConfig.local().validate()


def test_manager_creates_pools_and_reports_counts() -> None:
    mgr = PoolManager(PoolConfig(min_size=0, max_size=4))
    pool = mgr.get("b")
    _filled(pool, 2)
    pool.acquire(0)
    mgr.get("a")
    assert [s.node for s in mgr.stats()] == ["a", "b"]
    assert mgr.active_connections() == {"b": 1, "a": 0}
    assert sorted(mgr.remove("b")) == ["c0", "c1"]
    assert mgr.nodes() == ["a"]


class PoolMachine(RuleBasedStateMachine):
    """Random acquire/release/open/fail/timeout/health/evict sequences against a shadow ledger."""

    leased = Bundle("leased")

    def __init__(self) -> None:
        super().__init__()
        self.pool = NodePool("n", PoolConfig(min_size=1, max_size=4, acquire_timeout_sec=2, max_waiters=50,
                                             health_check_interval_sec=3, idle_timeout_sec=4, max_idle=2))
        self.now = 0.0
        self.next_conn = 0
        self.to_open = 0  # opens the core asked for and the "adapter" has not finished
        self.waiting: set[int] = set()
        self.held: set[str] = set()  # conns the "application" holds
        self.checking: set[str] = set()
        self.closed: set[str] = set()

    def _grant(self, grant: Grant | None) -> str | None:
        if grant is None:
            return None
        assert grant.waiter_id in self.waiting, "granted a waiter that is not waiting"
        self.waiting.discard(grant.waiter_id)
        assert grant.conn_id not in self.held
        self.held.add(grant.conn_id)
        return grant.conn_id

    @rule(target=leased)
    def acquire(self) -> str | None:
        out = self.pool.acquire(self.now)
        self.to_open += out.open_connections
        if out.conn_id is not None:
            assert out.conn_id not in self.held
            self.held.add(out.conn_id)
            return out.conn_id
        self.waiting.add(out.waiter_id)
        return None

    @precondition(lambda self: self.to_open > 0)
    @rule(target=leased, ok=st.booleans())
    def finish_open(self, ok: bool) -> str | None:
        self.to_open -= 1
        if not ok:
            self.pool.connect_failed()
            return None
        cid = f"c{self.next_conn}"
        self.next_conn += 1
        return self._grant(self.pool.add_connection(cid, self.now))

    @rule(target=leased, conn=consumes(leased), healthy=st.booleans())
    def release(self, conn: str | None, healthy: bool) -> str | None:
        if conn is None or conn not in self.held:
            return None
        self.held.discard(conn)
        return self._grant(self.pool.release(conn, self.now, healthy=healthy))

    @rule(dt=st.sampled_from([0.1, 0.5, 1.0, 2.5]))
    def tick(self, dt: float) -> None:
        self.now += dt
        for w in self.pool.expire_waiters(self.now):
            assert w in self.waiting
            self.waiting.discard(w)

    @rule()
    def replan(self) -> None:
        self.to_open += self.pool.plan_opens()

    @rule()
    def health(self) -> None:
        for cid in self.pool.health_checks_due(self.now):
            assert cid not in self.held
            self.checking.add(cid)

    @precondition(lambda self: self.checking)
    @rule(target=leased, ok=st.booleans())
    def health_done(self, ok: bool) -> str | None:
        cid = sorted(self.checking)[0]
        self.checking.discard(cid)
        return self._grant(self.pool.health_check_result(cid, ok, self.now))

    @rule()
    def evict(self) -> None:
        for cid in self.pool.evict(self.now):
            assert cid not in self.held and cid not in self.checking, "evicted a busy connection"
            self.closed.add(cid)

    @invariant()
    def never_over_max_and_no_leak(self) -> None:
        pool = self.pool
        pool.check_invariants()
        stats = pool.stats()
        assert stats.total_connections + stats.pending_opens <= pool.config.max_size
        assert stats.active == len(self.held), "leased count drifted from what the application holds"
        assert stats.checking == len(self.checking)
        assert stats.waiters == len(self.waiting)
        assert pool.pending == self.to_open
        assert 0.0 <= stats.utilization <= 1.0


PoolMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=50, deadline=None)
test_pool_state_machine = PoolMachine.TestCase
