"""MonitorRing (sans-I/O): bounded, consistent heartbeat assignments (Akka's HeartbeatNodeRing)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.config import ClusterConfig
from rustyray.health import HealthConfig
from rustyray.health.monitor_ring import DEFAULT_MONITORED_BY, MonitorRing, ring_key

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12)
member_sets = st.sets(ids, min_size=1, max_size=40)
ks = st.integers(min_value=1, max_value=12)


@settings(max_examples=200, deadline=None)
@given(members=member_sets, k=ks)
def test_every_member_is_monitored_by_exactly_min_k_n_minus_1_others(members, k):
    ring = MonitorRing(members, k)
    expected = min(k, len(members) - 1)
    pairs = ring.pairs()
    assert len(pairs) == len(members) * expected
    for m in members:
        senders_to_m = {s for s, r in pairs if r == m}
        assert len(senders_to_m) == expected
        assert m not in senders_to_m  # no self-monitoring
        assert ring.monitored(m) == senders_to_m  # whom m watches = who sends to m
        assert len(ring.targets(m)) == expected
        assert m not in ring.targets(m)
        assert ring.monitors_of(m) == ring.targets(m)
        assert all(m in ring.targets(s) for s in ring.monitored(m))


@settings(max_examples=200, deadline=None)
@given(members=member_sets, k=ks, seed=st.integers(0, 2**32))
def test_assignments_do_not_depend_on_input_order(members, k, seed):
    shuffled = list(members)
    random.Random(seed).shuffle(shuffled)
    a, b = MonitorRing(sorted(members), k), MonitorRing(shuffled, k)
    assert a.members == b.members and a.pairs() == b.pairs()


@settings(max_examples=200, deadline=None)
@given(members=member_sets, k=ks, new=ids)
def test_one_join_or_leave_moves_at_most_3k_pairs(members, k, new):
    # A join: the k predecessors of the new position each swap one receiver (k out, k in) and the
    # newcomer adds its own k; a leave is the reverse. So |before ^ after| <= 3k, whatever N is.
    before = MonitorRing(members, k)
    after = before.with_members(members | {new})
    assert len(before.pairs() ^ after.pairs()) <= 3 * k
    if len(members) > 1:
        gone = min(members)
        shrunk = before.with_members(members - {gone})
        assert len(before.pairs() ^ shrunk.pairs()) <= 3 * k


@settings(max_examples=100, deadline=None)
@given(members=st.sets(ids, min_size=2, max_size=10))
def test_with_the_default_k_up_to_ten_nodes_is_all_pairs(members):
    ring = MonitorRing(members)
    assert ring.monitored_by == DEFAULT_MONITORED_BY == HealthConfig().monitored_by_nr_of_members
    assert ring.pairs() == {(a, b) for a in members for b in members if a != b}


def test_positions_are_a_stable_hash_not_the_id_order():
    # Stable across processes and runs (Python's hash() is salted): pinned values, so every node agrees.
    assert ring_key("node1") == (15877648795492205838, "node1")
    assert ring_key("a") == (4681665781835383343, "a")
    names = [f"node{i}" for i in range(1, 21)]
    assert list(MonitorRing(names, 3).members) != sorted(names)


def test_targets_and_monitored_walk_the_ring():
    ring = MonitorRing([f"n{i}" for i in range(8)], 2)
    order = ring.members
    i = order.index("n3")
    assert ring.targets("n3") == {order[(i + 1) % 8], order[(i + 2) % 8]}
    assert ring.monitored("n3") == {order[(i - 1) % 8], order[(i - 2) % 8]}
    assert ring.fan == 2 and len(ring) == 8 and "n3" in ring and "zz" not in ring


def test_a_single_member_monitors_no_one_and_a_non_member_is_an_error():
    ring = MonitorRing(["solo"], 3)
    assert ring.targets("solo") == frozenset() and ring.monitored("solo") == frozenset() and ring.fan == 0
    with pytest.raises(KeyError):
        ring.targets("other")


def test_with_members_keeps_the_ring_when_the_set_is_unchanged():
    ring = MonitorRing(["a", "b", "c"], 1)
    assert ring.with_members(["c", "b", "a"]) is ring
    bigger = ring.with_members(["a", "b", "c", "d"])
    assert bigger is not ring and bigger.monitored_by == 1 and len(bigger) == 4


@pytest.mark.parametrize("bad", [0, -1, True, 2.0, "3"])
def test_k_must_be_a_positive_int(bad):
    with pytest.raises(ValueError, match="monitored_by must be an int >= 1"):
        MonitorRing(["a"], bad)


def test_the_health_table_sets_k_and_refuses_zero():
    assert ClusterConfig.from_toml({"health": {"monitored_by_nr_of_members": 3}}).health.monitored_by_nr_of_members == 3
    with pytest.raises(ValueError, match=r"\[health\] monitored_by_nr_of_members must be an integer >= 1"):
        ClusterConfig.from_toml({"health": {"monitored_by_nr_of_members": 0}})
    with pytest.raises(ValueError, match="monitored_by_nr_of_members"):
        HealthConfig(monitored_by_nr_of_members=0).validate()
