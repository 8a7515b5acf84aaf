"""The load-poll planner (issue 12): a bounded set per round, recently used members always in it."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rustyray.loadbalancer.config import LoadBalancerServiceConfig
from rustyray.loadbalancer.errors import LoadBalancerConfigError
from rustyray.loadbalancer.load_poll import LoadPollConfig, LoadPollPlanner

MEMBERS = [f"n{i:03d}" for i in range(200)]


@given(n=st.integers(0, 200), used=st.lists(st.integers(0, 199), max_size=40), k=st.integers(0, 5),
       cap=st.integers(0, 20), seed=st.integers(0, 2**32))
def test_plan_is_bounded_and_holds_the_recently_used(n, used, k, cap, seed):
    members = MEMBERS[:n]
    planner = LoadPollPlanner(LoadPollConfig(sample_size=k, max_recent=cap, recent_sec=30), random.Random(seed))
    for t, i in enumerate(used):
        planner.used(MEMBERS[i], float(t))
    now = float(len(used))
    plan = planner.plan(members, now)
    assert len(plan) == len(set(plan)) <= cap + k
    assert set(plan) <= set(members)
    recent_members = [m for m in planner.recent(now) if m in members]
    if len(recent_members) <= cap:
        assert set(recent_members) <= set(plan)
    assert len(plan) == min(len(members), min(cap, len(recent_members)) + k)


def test_most_recent_win_when_more_than_the_cap_are_used():
    planner = LoadPollPlanner(LoadPollConfig(sample_size=0, max_recent=2))
    for t, node in enumerate(["a", "b", "c", "d"]):
        planner.used(node, float(t))
    assert planner.plan(["a", "b", "c", "d"], 4.0) == ["d", "c"]


def test_used_members_fall_out_after_recent_sec():
    planner = LoadPollPlanner(LoadPollConfig(sample_size=0, recent_sec=10))
    planner.used("a", 0.0)
    assert planner.plan(["a", "b"], 9.0) == ["a"]
    assert planner.plan(["a", "b"], 10.5) == []


@given(seed=st.integers(0, 2**32), n=st.integers(1, 60))
def test_same_seed_same_rounds(seed, n):
    def rounds(s: int) -> list[list[str]]:
        planner = LoadPollPlanner(LoadPollConfig(sample_size=3), random.Random(s))
        out = []
        for t in range(5):
            plan = planner.plan(MEMBERS[:n], float(t))
            planner.polled(plan, float(t))
            out.append(plan)
        return out

    assert rounds(seed) == rounds(seed)


@given(seed=st.integers(0, 2**32), n=st.integers(1, 60), k=st.integers(1, 4))
def test_every_member_is_polled_within_ceil_n_over_k_rounds(seed, n, k):
    """The sample takes the longest-unpolled members, so no report grows older than N/k rounds."""
    planner = LoadPollPlanner(LoadPollConfig(sample_size=k), random.Random(seed))
    seen: set[str] = set()
    for t in range(-(-n // k)):
        plan = planner.plan(MEMBERS[:n], float(t))
        planner.polled(plan, float(t))
        seen |= set(plan)
    assert seen == set(MEMBERS[:n])


def test_forget_absent_drops_departed_members():
    planner = LoadPollPlanner(LoadPollConfig(sample_size=0))
    planner.used("gone", 0.0)
    planner.forget_absent(["here"])
    assert planner.plan(["gone", "here"], 1.0) == []


@pytest.mark.parametrize("changes,field", [
    ({"load_poll_sample_size": -1}, "load_poll_sample_size"),
    ({"load_poll_recent_sec": 0}, "load_poll_recent_sec"),
    ({"load_poll_max_recent": -2}, "load_poll_max_recent"),
])
def test_service_config_validates_the_poll_keys(changes, field):
    with pytest.raises(LoadBalancerConfigError, match=field):
        LoadBalancerServiceConfig(**changes).validate()


def test_toml_keys_reach_the_planner_config():
    from rustyray.config_loader import build

    cfg = build(LoadBalancerServiceConfig, {"load_poll_sample_size": 3, "load_poll_recent_sec": 5,
                                            "load_poll_max_recent": 4}, "loadbalancer")
    assert cfg.load_poll == LoadPollConfig(sample_size=3, recent_sec=5.0, max_recent=4)
