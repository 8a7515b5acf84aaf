"""Bounded pool upkeep (issue 12): pools only for peers in use, idle ones released, decided in PeerPools."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustyray.pool import PoolConfig
from rustyray.pool.errors import PoolConfigError
from rustyray.pool.peer_pools import Close, Forget, PeerPools, Probe

CFG = PoolConfig(min_size=1, max_size=3, health_check_interval_sec=10, idle_timeout_sec=1000,
                 idle_pool_timeout_sec=60)


def passes(pools: PeerPools, peers: set[str], start: float, end: float, step: float = 5.0,
           activity: dict[str, int] | None = None) -> list:
    out, t = [], start
    while t <= end:
        actions, _ = pools.maintain(t, wanted=peers, connected=peers, closed=set(), activity=activity)
        out += actions
        for a in actions:
            if isinstance(a, Probe):
                out += pools.probe_result(a.peer, a.conn_id, True, t)
        t += step
    return out


def test_an_unused_pool_is_released_primary_forgotten_dialled_closed() -> None:
    pools = PeerPools(CFG)
    pools.adopt_primary("n2", "p", 0.0)
    pool = pools.pool("n2")
    pool.warmup(2)
    pools.dialled(pool, "d", 0.0)
    actions = passes(pools, {"n2"}, 1.0, 61.0)
    assert Forget("p") in actions and Close("d", "pool idle") in actions
    assert "n2" not in pools.manager and pools.owner == {} and pools.primary == {}
    assert pools.released_total == 1


def test_probes_do_not_keep_a_pool_alive_but_leases_and_exchanges_do() -> None:
    pools = PeerPools(CFG)
    pools.adopt_primary("n2", "p", 0.0)
    pools.adopt_primary("n3", "q", 0.0)
    pools.adopt_primary("n4", "r", 0.0)
    peers = {"n2", "n3", "n4"}
    for t in (20.0, 40.0, 60.0):  # n3 leased now and then
        pool = pools.pool("n3")
        outcome, _ = pools.acquire(pool, t, None)
        pools.end_lease(pool, outcome.conn_id, t + 1, healthy=True)
    traffic = iter(range(100))
    out = []
    for t in range(5, 70, 5):  # n4's primary carries exchanges (the activity count moves)
        actions, _ = pools.maintain(float(t), peers, peers, set(), activity={"n4": next(traffic)})
        out += actions
        out += [x for a in actions if isinstance(a, Probe) for x in pools.probe_result(a.peer, a.conn_id, True, t)]
    assert any(isinstance(a, Probe) and a.peer == "n2" for a in out), "n2 was probed while pooled"
    assert "n2" not in pools.manager, "probes are not a use"
    assert "n3" in pools.manager and "n4" in pools.manager


def test_a_busy_pool_is_never_released() -> None:
    pools = PeerPools(CFG)
    pools.adopt_primary("n2", "p", 0.0)
    pool = pools.pool("n2")
    outcome, _ = pools.acquire(pool, 0.0, None)
    passes(pools, {"n2"}, 1.0, 500.0, step=50.0)
    assert "n2" in pools.manager and pool.state_of(outcome.conn_id) is not None


def test_a_closing_primary_of_a_released_pool_makes_no_new_pool() -> None:
    pools = PeerPools(CFG)
    pools.adopt_primary("n2", "p", 0.0)
    passes(pools, {"n2"}, 61.0, 61.0)
    assert pools.connection_lost("n2", "p") == []
    assert "n2" not in pools.manager


@given(used=st.sets(st.integers(0, 49)), seed_time=st.floats(0, 1000))
def test_upkeep_actions_only_for_pools_in_use(used, seed_time):
    """After the idle timeout, probes and opens name only the peers that kept being used."""
    pools = PeerPools(CFG)
    peers = {f"n{i}" for i in range(50)}
    for i, peer in enumerate(sorted(peers)):
        pools.adopt_primary(peer, f"c{i}", seed_time)
    activity = {f"n{i}": 0 for i in used}
    end = seed_time + 200
    t = seed_time + 5
    while t <= end:
        activity = {p: n + 1 for p, n in activity.items()}
        actions, _ = pools.maintain(t, peers, peers, set(), activity=activity)
        for a in actions:
            if isinstance(a, Probe):
                pools.probe_result(a.peer, a.conn_id, True, t)
        t += 5
    assert set(pools.peers()) == {f"n{i}" for i in used}
    actions, _ = pools.maintain(end + 1000, peers, peers, set(), activity={p: -1 for p in activity})
    assert {getattr(a, "peer", None) for a in actions} <= {f"n{i}" for i in used} | {None}


def test_idle_pool_timeout_is_validated() -> None:
    with pytest.raises(PoolConfigError, match="idle_pool_timeout_sec"):
        PoolConfig(idle_pool_timeout_sec=0).validate()
