"""PeerPools: the pinned primary, leases, maintenance and dials as actions, driven with a fake clock."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from rustyray.pool import ConnectionState, EvictionPolicy, Grant, NodePool, PoolConfig
from rustyray.pool.peer_pools import Action, Close, Forget, Hand, Open, PeerPools, Probe, Track

CFG = PoolConfig(min_size=1, max_size=3, acquire_timeout_sec=5, health_check_interval_sec=30,
                 idle_timeout_sec=10, max_lifetime_sec=100)


def test_the_primary_is_adopted_tracked_and_pinned_against_eviction() -> None:
    pools = PeerPools(PoolConfig(min_size=0, max_size=3, idle_timeout_sec=1))
    assert pools.adopt_primary("n2", "p", 0.0) == [Track("n2", "p")]
    assert pools.adopt_primary("n2", "p", 0.5) == [], "adopting twice is a no-op"
    actions, evicted = pools.maintain(5.0, wanted={"n2"}, connected={"n2"}, closed=set())
    assert actions == [] and evicted == []
    assert pools.pool("n2").state_of("p") is ConnectionState.IDLE, "evicted, then re-adopted"
    assert pools.owner == {"p": "n2"} and pools.primary == {"n2": "p"}


def test_a_closed_primary_is_evicted_like_any_other() -> None:
    pools = PeerPools(PoolConfig(min_size=0, max_size=3, idle_timeout_sec=1))
    pools.adopt_primary("n2", "p", 0.0)
    actions, evicted = pools.maintain(5.0, wanted={"n2"}, connected=set(), closed={"p"})
    assert actions == [Close("p", "evicted (IdleTimeout)")] and evicted == ["p"]
    assert pools.evicted_total == 1 and pools.owner == {}


def test_a_new_primary_replaces_the_old_and_a_full_pool_makes_room() -> None:
    pools = PeerPools(PoolConfig(min_size=0, max_size=2))
    pools.adopt_primary("n2", "p1", 0.0)
    pool = pools.pool("n2")
    assert pool.warmup(2).to_open == 1
    assert pools.dialled(pool, "d1", 0.1) == [Track("n2", "d1")]
    assert pools.opened_total == 1
    # the node redialled: p2 is its primary now; p1 leaves, the pool has room again
    assert pools.adopt_primary("n2", "p2", 1.0) == [Forget("p1"), Track("n2", "p2")]
    # another primary while the pool is full: an idle connection closes to make room
    actions = pools.adopt_primary("n2", "p3", 2.0)
    assert actions == [Forget("p2"), Track("n2", "p3")]
    assert pool.warmup(2).to_open == 0 and pool.total == 2


def test_a_full_pool_with_every_slot_leased_adopts_later() -> None:
    pools = PeerPools(PoolConfig(min_size=0, max_size=1))
    pool = pools.pool("n2")
    pool.warmup(1)
    pools.dialled(pool, "d1", 0.0)
    outcome, _ = pools.acquire(pool, 0.0, None)
    assert outcome.conn_id == "d1"
    assert pools.adopt_primary("n2", "p", 0.5) == [], "nothing idle to replace"
    pools.end_lease(pool, "d1", 1.0, healthy=True)
    assert pools.adopt_primary("n2", "p", 1.5) == [Close("d1", "replaced by the primary connection"),
                                                   Track("n2", "p")]


def test_waiters_get_hands_and_an_unhealthy_release_is_replaced() -> None:
    pools = PeerPools(PoolConfig(min_size=0, max_size=2, acquire_timeout_sec=5))
    pools.adopt_primary("n2", "p", 0.0)
    pool = pools.pool("n2")
    first, _ = pools.acquire(pool, 0.0, None)
    second, opens = pools.acquire(pool, 0.1, None)
    assert first.conn_id == "p" and second.conn_id is None and second.deadline == 5.1
    assert opens == [Open("n2", 1)]
    assert pools.dialled(pool, "d1", 0.2) == [Track("n2", "d1"), Hand("n2", Grant(second.waiter_id, "d1"))]
    third, opens = pools.acquire(pool, 0.3, None)
    assert opens == [], "the pool is at max_size"
    # p closed during its lease: out of the pool, a replacement dial for the third waiter
    assert pools.end_lease(pool, "p", 1.0, healthy=False) == [Forget("p"), Open("n2", 1)]
    # the third waiter gives up; the dial for it then idles
    assert pools.abandon(pool, third.waiter_id, None, 2.0) == []
    assert pools.dialled(pool, "d2", 2.1) == [Track("n2", "d2")]
    assert pool.idle_count == 1


def test_a_waiter_that_leaves_after_its_grant_gives_the_connection_back() -> None:
    pools = PeerPools(PoolConfig(min_size=0, max_size=1))
    pools.adopt_primary("n2", "p", 0.0)
    pool = pools.pool("n2")
    pools.acquire(pool, 0.0, None)
    w1, _ = pools.acquire(pool, 0.0, None)
    w2, _ = pools.acquire(pool, 0.0, None)
    assert pools.end_lease(pool, "p", 1.0, healthy=True) == [Hand("n2", Grant(w1.waiter_id, "p"))]
    # w1 timed out in the same turn: the connection goes on to w2
    assert pools.abandon(pool, w1.waiter_id, "p", 1.0) == [Hand("n2", Grant(w2.waiter_id, "p"))]
    assert pools.give_back("n2", "p", 1.5) is None and pool.idle_count == 1


def test_maintenance_drops_departed_peers_probes_and_refills() -> None:
    pools = PeerPools(PoolConfig(min_size=2, max_size=3, health_check_interval_sec=10))
    pools.adopt_primary("n2", "p2", 0.0)
    pools.adopt_primary("n3", "p3", 0.0)
    actions, _ = pools.maintain(1.0, wanted={"n2", "n3"}, connected={"n2", "n3"}, closed=set())
    assert actions == [Open("n2", 1), Open("n3", 1)], "refill to min_size"
    actions, _ = pools.maintain(11.0, wanted={"n2"}, connected={"n2"}, closed=set())
    assert actions == [Close("p3", "peer left"), Probe("n2", "p2")]
    assert pools.manager.nodes() == ["n2"] and "n3" not in pools.primary
    assert pools.probe_result("n2", "p2", False, 12.0) == [Close("p2", "health probe failed")]
    assert pools.probe_result("n2", "p2", True, 12.0) == [], "a late result for a gone connection"


def test_a_dial_that_outlives_its_pool_is_not_added() -> None:
    pools = PeerPools(CFG)
    pool = pools.pool("n2")
    pool.warmup(2)
    pools.maintain(0.0, wanted=set(), connected=set(), closed=set())
    assert not pools.is_current(pool)
    assert pools.is_current(pools.pool("n2")), "a new pool for the peer"


def test_lost_connections_and_counts() -> None:
    pools = PeerPools(CFG)
    assert pools.connections_to("n2") == 0 and "n2" not in pools.manager.nodes()
    pools.adopt_primary("n2", "p", 0.0)
    assert pools.connections_to("n2") == 1 and pools.pooled_ids("n2") == ["p"]
    assert pools.connection_lost("n2", "p") == [Forget("p")]
    assert pools.connections_to("n2") == 0 and pools.primary == {}
    pools.set_config(PoolConfig(eviction_policy=EvictionPolicy.LRU, max_idle=0))
    assert pools.pool("n2").config.eviction_policy is EvictionPolicy.LRU


class PeerPoolsMachine(RuleBasedStateMachine):
    """Random events against a simulated adapter: its connections always equal the tracked ones."""

    def __init__(self) -> None:
        super().__init__()
        self.pools = PeerPools(CFG)
        self.now = 0.0
        self.held: dict[str, str] = {}  # the adapter's connections: conn id -> peer
        self.closed: set[str] = set()
        self.waiting: dict[tuple[str, int], NodePool] = {}  # (peer, waiter) -> the pool it waits on
        self.leased: dict[str, NodePool] = {}  # conn id -> the pool it was leased from
        self.pending: list[tuple[str, NodePool]] = []  # dials in flight: (peer, pool)
        self.probing: list[tuple[str, str]] = []
        self.serial = 0

    def _id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def _apply(self, actions: list[Action]) -> None:
        for a in actions:
            match a:
                case Track(peer=peer, conn_id=cid):
                    self.held[cid] = peer
                case Close(conn_id=cid) | Forget(conn_id=cid):
                    assert cid in self.held, f"let go of {cid}, which the adapter does not hold"
                    del self.held[cid]
                case Open(peer=peer, count=n):
                    assert n > 0
                    self.pending += [(peer, self.pools.pool(peer))] * n
                case Probe(peer=peer, conn_id=cid):
                    self.probing.append((peer, cid))
                case Hand(peer=peer, grant=grant):
                    assert self.pools.pool(peer).state_of(grant.conn_id) is ConnectionState.ACTIVE
                    pool = self.waiting.pop((peer, grant.waiter_id))
                    self.leased[grant.conn_id] = pool

    @rule(peer=st.sampled_from(["n2", "n3"]), fresh=st.booleans())
    def adopt(self, peer: str, fresh: bool) -> None:
        cid = self.pools.primary.get(peer)
        if fresh or cid is None:
            cid = self._id(f"p{peer}-")
        self._apply(self.pools.adopt_primary(peer, cid, self.now))

    @rule(peer=st.sampled_from(["n2", "n3"]))
    def acquire(self, peer: str) -> None:
        pool = self.pools.pool(peer)
        if pool.waiter_count >= 5:
            return
        outcome, actions = self.pools.acquire(pool, self.now, None)
        if outcome.conn_id is None:
            self.waiting[(peer, outcome.waiter_id)] = pool
        else:
            self.leased[outcome.conn_id] = pool
        self._apply(actions)

    @rule(data=st.data(), healthy=st.booleans())
    def end_lease(self, data: st.DataObject, healthy: bool) -> None:
        if self.leased:
            cid = data.draw(st.sampled_from(sorted(self.leased)))
            pool = self.leased.pop(cid)
            self._apply(self.pools.end_lease(pool, cid, self.now, healthy))

    @rule(data=st.data())
    def give_up(self, data: st.DataObject) -> None:
        if self.waiting:
            key = data.draw(st.sampled_from(sorted(self.waiting)))
            pool = self.waiting.pop(key)
            self._apply(self.pools.abandon(pool, key[1], None, self.now))

    @rule(data=st.data(), ok=st.booleans())
    def finish_dial(self, data: st.DataObject, ok: bool) -> None:
        if not self.pending:
            return
        peer, pool = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        if not pool.pending:
            return  # an adopted primary took this dial's reservation (NodePool.add_connection spends pending)
        if not ok:
            self.pools.dial_failed(pool)
        elif self.pools.is_current(pool):
            self._apply(self.pools.dialled(pool, self._id(f"d{peer}-"), self.now))

    @rule(data=st.data())
    def connection_closes(self, data: st.DataObject) -> None:
        if self.held:
            cid = data.draw(st.sampled_from(sorted(self.held)))
            self.closed.add(cid)
            self._apply(self.pools.connection_lost(self.held[cid], cid))

    @rule(ok=st.booleans())
    def probe_finishes(self, ok: bool) -> None:
        if self.probing:
            peer, cid = self.probing.pop(0)
            self._apply(self.pools.probe_result(peer, cid, ok, self.now))

    @rule(dt=st.floats(0, 40), leave=st.sampled_from([None, "n2", "n3"]))
    def maintain(self, dt: float, leave: str | None) -> None:
        self.now += dt
        wanted = {"n2", "n3"} - {leave}
        connected = {p for p in wanted if p in self.pools.primary}
        closed = self.closed & set(self.held)
        actions, evicted = self.pools.maintain(self.now, wanted, connected, closed)
        self._apply(actions)
        assert all(isinstance(a, Close) for a in actions if getattr(a, "conn_id", None) in evicted)
        if leave is not None:
            # the departed peer's waiters are gone from the core; a later pool for it reuses waiter ids
            self.waiting = {k: v for k, v in self.waiting.items() if k[0] != leave}

    @invariant()
    def adapter_holds_exactly_the_tracked_connections(self) -> None:
        assert self.held == self.pools.owner

    @invariant()
    def every_pooled_connection_is_tracked(self) -> None:
        for peer in self.pools.manager.nodes():
            pool = self.pools.pool(peer)
            pool.check_invariants()
            assert pool.total == len(self.pools.pooled_ids(peer)), "a pool holds an untracked connection"


TestPeerPoolsMachine = PeerPoolsMachine.TestCase
TestPeerPoolsMachine.settings = settings(max_examples=150, stateful_step_count=50, deadline=None)
