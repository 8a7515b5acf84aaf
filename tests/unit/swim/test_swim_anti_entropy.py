"""Anti-entropy by digest, the piggyback packet cap, and SWIM bytes per member per second vs N."""

from __future__ import annotations

import random
import struct
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.membership.swim import (
    MemberState,
    SwimAlive,
    SwimConfig,
    SwimDead,
    SwimMemberState,
    SwimNode,
    SwimPushPull,
    SwimRoster,
    SwimSuspect,
)
from rustyray.membership.swim.config import MAX_DIGEST_BUCKETS, digest_buckets
from rustyray.membership.swim.core import member_bucket
from rustyray.protocol.messages import decode_message, encode_message
from rustyray.sim.network import SimConfig
from rustyray.sim.swim_cluster import SwimCluster

CFG = SwimConfig.lan()


def _roster(ids: list[str]) -> SwimRoster:
    return SwimRoster(SwimMemberState(node_id=i, incarnation=0, state="Alive", tcp_address=f"{i}:1") for i in ids)


def _node(nid: str, roster: SwimRoster, cfg: SwimConfig = CFG, seed: int = 1) -> SwimNode:
    return SwimNode(nid, cfg, rng=random.Random(seed), roster=roster, tcp_address=f"{nid}:1")


def _exchange(nodes: dict[str, SwimNode], first: tuple[str, str, Any], now: float = 1.0) -> list[tuple[str, str, Any]]:
    """Deliver ``first`` and everything it causes (push-pulls only), in order; return the trace."""
    queue = [first]
    trace = []
    while queue:
        src, dst, msg = queue.pop(0)
        msg = decode_message(encode_message(msg))  # through the wire codec
        trace.append((src, dst, msg))
        nodes[dst].receive(src, msg, now)
        queue.extend((dst, to, m) for to, m in nodes[dst].outbox() if isinstance(m, SwimPushPull))
    return trace


# -- pure rules -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "n", "expected"),
    [(32, 1, 1), (32, 32, 1), (32, 33, 2), (32, 100, 4), (32, 1000, 32), (32, 10_000, 512), (0, 1000, 0),
     (1, 10**9, MAX_DIGEST_BUCKETS)],
)
def test_digest_buckets_table(size: int, n: int, expected: int) -> None:
    assert digest_buckets(size, n) == expected


@given(st.integers(min_value=1, max_value=512), st.integers(min_value=0, max_value=10**7))
def test_digest_buckets_is_a_power_of_two_of_at_most_bucket_size_members(size: int, n: int) -> None:
    b = digest_buckets(size, n)
    assert b >= 1 and b & (b - 1) == 0 and b <= MAX_DIGEST_BUCKETS
    if b < MAX_DIGEST_BUCKETS:
        assert n / b <= size  # buckets hold at most ``size`` members on average
    if b > 1:
        assert n / b > size / 2  # and no more buckets than needed (bounded digest bytes per member)
    assert digest_buckets(size, n + 1) >= b  # monotone


def test_config_validates_digest_bucket_size() -> None:
    with pytest.raises(ValueError, match="digest_bucket_size"):
        SwimConfig(digest_bucket_size=-1).validate()
    assert SwimConfig.memberlist().digest_bucket_size == 32 and CFG.digest_buckets(1000) == 32


ids_st = st.lists(st.text(min_size=1, max_size=10), min_size=2, max_size=40, unique=True)


@settings(max_examples=60, deadline=None)
@given(ids_st, st.data())
def test_digest_differs_exactly_in_the_bucket_of_a_changed_live_member(ids: list[str], data: st.DataObject) -> None:
    roster = _roster(ids)
    a, b = _node(ids[0], roster), _node(ids[1], roster)
    nb = data.draw(st.sampled_from([1, 2, 4, 8, 16]))
    assert a.digest(nb) == b.digest(nb)  # same table, whoever computes it (self entries included)
    assert len(a.digest(nb)) == 8 * nb
    victim = data.draw(st.sampled_from(ids[2:] or [ids[1]]))
    if victim == ids[1]:  # b itself: a newer incarnation of b seen by a
        a.receive("x", SwimAlive(node_id=victim, incarnation=1, tcp_address=f"{victim}:1"), 1.0)
    else:
        a.receive("x", SwimSuspect(node_id=victim, incarnation=0, from_id="x"), 1.0)
    da, db = struct.unpack(f"<{nb}Q", a.digest(nb)), struct.unpack(f"<{nb}Q", b.digest(nb))
    diff = [i for i in range(nb) if da[i] != db[i]]
    assert diff == [member_bucket(victim, nb - 1)]
    a.leave(2.0)  # leaving takes us out of our own digest
    assert member_bucket(ids[0], nb - 1) in [i for i, (x, y) in enumerate(zip(
        struct.unpack(f"<{nb}Q", a.digest(nb)), struct.unpack(f"<{nb}Q", b.digest(nb)), strict=True)) if x != y]


def test_dead_and_left_members_are_not_in_the_digest() -> None:
    ids = [f"n{i}" for i in range(10)]
    a = _node("n0", _roster(ids))
    joiner = _node("n0", _roster([i for i in ids if i != "n5"]))  # never heard of n5
    a.receive("n1", SwimDead(node_id="n5", incarnation=0, from_id="n1"), 1.0)
    assert a.state_of("n5") is MemberState.DEAD
    assert a.digest(4) == joiner.digest(4)  # else every exchange with a later joiner would repeat


def test_converged_members_exchange_one_digest_only() -> None:
    ids = [f"n{i}" for i in range(200)]
    roster = _roster(ids)
    nodes = {"n0": _node("n0", roster), "n1": _node("n1", roster)}
    trace = _exchange(nodes, ("n0", "n1", SwimPushPull(digest=nodes["n0"].digest(8))))
    assert len(trace) == 1
    full = len(encode_message(SwimPushPull(states=nodes["n0"]._local_states())))
    assert len(encode_message(trace[0][2])) < full / 100


def test_digest_exchange_repairs_only_the_differing_buckets_both_ways() -> None:
    ids = [f"n{i}" for i in range(256)]
    roster = _roster(ids)
    a, b = _node("n0", roster), _node("n1", roster)
    a.receive("x", SwimAlive(node_id="n7", incarnation=2, tcp_address="n7:2"), 1.0)  # a knows more about n7
    b.receive("x", SwimSuspect(node_id="n9", incarnation=0, from_id="x"), 1.0)  # b suspects n9
    b.receive("x", SwimAlive(node_id="fresh", incarnation=0, tcp_address="fresh:1"), 1.0)  # b knows a joiner
    a.outbox(), b.outbox(), a.drain_events(), b.drain_events()
    nb = 16
    trace = _exchange({"n0": a, "n1": b}, ("n0", "n1", SwimPushPull(digest=a.digest(nb))))
    shapes = [("digest" if m.digest else "request" if m.request else "reply" if m.reply else "push") for *_, m in
              trace]
    assert shapes == ["digest", "request", "push", "reply"]
    wanted = {member_bucket(x, nb - 1) for x in ("n7", "n9", "fresh")}
    assert set(trace[1][2].request) == wanted
    for *_, m in trace[2:]:
        assert {member_bucket(s.node_id, nb - 1) for s in m.states} <= wanted
        assert len(m.states) < len(ids) / 2
    assert a.digest(nb) == b.digest(nb)
    assert b.member("n7").incarnation == 2  # type: ignore[union-attr]
    assert a.state_of("n9") is MemberState.SUSPECT and a.state_of("fresh") is MemberState.ALIVE


change_st = st.sampled_from(["same", "newer", "suspect", "dead"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(change_st, change_st), min_size=8, max_size=60), st.sampled_from([1, 4, 16]))
def test_digest_exchange_carries_only_differing_buckets_and_spreads_every_newer_alive(
        changes: list[tuple[str, str]], nb: int) -> None:
    ids = ["a", "b"] + [f"m{i}" for i in range(len(changes))]
    roster = _roster(ids)
    a, b = _node("a", roster), _node("b", roster)
    newest: dict[str, int] = {}
    for i, pair in enumerate(changes):
        mid = f"m{i}"
        for node, change, inc in ((a, pair[0], 2), (b, pair[1], 3)):
            if change == "newer":
                node.receive("x", SwimAlive(node_id=mid, incarnation=inc, tcp_address=f"{mid}:{inc}"), 1.0)
                newest[mid] = max(newest.get(mid, 0), inc)
            elif change == "suspect":
                node.receive("x", SwimSuspect(node_id=mid, incarnation=0, from_id="x"), 1.0)
            elif change == "dead":
                node.receive("x", SwimDead(node_id=mid, incarnation=0, from_id="x"), 1.0)
    a.outbox(), b.outbox()
    da, db = struct.unpack(f"<{nb}Q", a.digest(nb)), struct.unpack(f"<{nb}Q", b.digest(nb))
    differing = {i for i in range(nb) if da[i] != db[i]}
    trace = _exchange({"a": a, "b": b}, ("a", "b", SwimPushPull(digest=a.digest(nb))))
    if not differing:
        assert len(trace) == 1
    for *_, m in trace[1:]:
        assert set(m.request) | set(m.buckets) <= differing
        assert {member_bucket(s.node_id, nb - 1) for s in m.states} <= differing
    for node in (a, b):  # the cached digest follows every change of the table
        cached = node.digest(nb)
        node._digest_cache = None
        assert node.digest(nb) == cached
    for mid, inc in newest.items():  # a newer Alive held by either side reaches both
        for node in (a, b):
            info = node.member(mid)
            assert info is not None and info.incarnation >= inc


def test_a_member_held_dead_refutes_through_a_digest_exchange_and_the_reply_carries_it() -> None:
    ids = [f"n{i}" for i in range(64)]
    roster = _roster(ids)
    a, b = _node("n0", roster), _node("n1", roster)
    a.receive("x", SwimDead(node_id="n1", incarnation=0, from_id="x"), 1.0)  # a holds b Dead (healed cut)
    a.outbox()
    trace = _exchange({"n0": a, "n1": b}, ("n0", "n1", SwimPushPull(digest=a.digest(4))))
    assert b.incarnation == 1  # b heard it was held Dead and refuted
    assert trace[-1][2].reply and a.state_of("n1") is MemberState.ALIVE  # the reply brought it back


def test_malformed_digest_and_requests_are_ignored() -> None:
    node = _node("n0", _roster(["n0", "n1"]))
    node.receive("n1", SwimPushPull(digest=b"\x00" * 24), 1.0)  # 3 buckets: not a power of two
    node.receive("n1", SwimPushPull(num_buckets=3, request=(0, 1)), 1.0)
    node.receive("n1", SwimPushPull(num_buckets=4, request=(9, -1)), 1.0)  # no valid bucket
    assert node.outbox() == []


def test_periodic_push_pull_sends_a_digest_and_digest_off_sends_full_state() -> None:
    ids = [f"n{i}" for i in range(100)]
    for cfg, is_digest in ((CFG, True), (replace(CFG, digest_bucket_size=0), False)):
        node = _node("n0", _roster(ids), cfg)
        node._on_push_pull(1.0)
        [(_, msg)] = node.outbox()
        assert isinstance(msg, SwimPushPull)
        assert bool(msg.digest) is is_digest and (len(msg.states) == 100) is not is_digest


# -- piggyback cap ---------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=48), min_size=5, max_size=120, unique=True),
       st.sampled_from([200, 600, 1400]))
def test_every_probe_and_gossip_message_fits_the_packet_budget(ids: list[str], budget: int) -> None:
    cfg = replace(CFG, max_piggyback_bytes=budget)
    me, *others = ids
    node = SwimNode(me, cfg, rng=random.Random(3), roster=_roster(ids))
    for i, nid in enumerate(others):  # many fresh updates queued, with long ids
        node.receive(others[0], SwimAlive(node_id=nid, incarnation=i + 1, tcp_address=nid * 2,
                                          meta={"k": nid}), 0.0)
    node.receive(others[0], SwimSuspect(node_id=others[-1], incarnation=len(others) + 5, from_id=others[0]), 0.0)
    sent = node.outbox()
    t = 0.0
    for _ in range(40):
        t += 0.1
        node.tick(t)
        sent += node.outbox()
    with_updates = [m for _, m in sent if getattr(m, "updates", None)]
    assert with_updates
    for m in with_updates:
        # a single update goes out whatever its size (the buddy Suspect of a ping to a suspect, an
        # immediate refutation): only what is added to it is held to the budget
        assert len(encode_message(m)) <= budget or len(m.updates) == 1


# -- bytes per member per second stay flat as the cluster grows ------------------------------------


def _bytes_per_member_per_s(n: int, cfg: SwimConfig, crashes: int = 2, seed: int = 1) -> tuple[float, dict[str, float]]:
    """Simulated bytes per member per second over 30 s with 1 % loss, ``crashes`` crashes and one join
    (a fixed number of events whatever n, as in bench/membership.py: each event costs every member
    retransmit_limit(n) = O(log n) transmissions, the part of SWIM that cannot be flat)."""
    c = SwimCluster(n, cfg, SimConfig(seed=seed, loss=0.01), measure_bytes=True)
    c.sim.run_until(3.0)
    assert c.breakdown is not None
    b0, by0, t0 = c.sim.stats.bytes_sent, c.breakdown.snapshot(), c.sim.now
    for i in range(crashes):
        c.sim.call_at(3.0 + 5.0 * i, lambda v=f"node{(i * 7919 + 13) % n}": c.crash(v))
    c.sim.call_at(8.0, lambda: c.add_joiner("joiner", ["node5"]))
    c.sim.run_until(33.0)
    dt = c.sim.now - t0
    by = {k: (v - by0.get(k, 0)) / n / dt for k, v in c.breakdown.snapshot().items()}
    return (c.sim.stats.bytes_sent - b0) / n / dt, by


def test_swim_bytes_per_member_per_second_stay_within_20_percent_from_200_to_1000_members() -> None:
    small, by_small = _bytes_per_member_per_s(200, CFG)
    large, by_large = _bytes_per_member_per_s(1000, CFG)
    assert 0.8 <= large / small <= 1.2, (small, large, by_small, by_large)
    # anti-entropy is a small share at both sizes (a converged digest is 8 B per bucket)
    assert by_large.get("SwimPushPull", 0.0) < 0.05 * large


def test_full_state_push_pull_is_what_grows_with_n() -> None:
    """The regression the digest fixes: memberlist's full-state push-pull, stretched by log2(n) only."""
    cfg = replace(CFG, digest_bucket_size=0)
    small, _ = _bytes_per_member_per_s(200, cfg, crashes=0)
    large, by_large = _bytes_per_member_per_s(1000, cfg, crashes=0)
    assert large / small > 1.5
    assert by_large["SwimPushPull"] > 0.3 * large


@pytest.mark.parametrize("rebroadcast", [False, True])
def test_merge_rebroadcast_regossips_third_parties_a_push_pull_taught_only_when_asked(rebroadcast: bool) -> None:
    """Off (the default): only the sender of a push-pull is re-gossiped; on (memberlist's mergeState, the
    memberlist member's setting): every member it taught us."""
    cfg = replace(CFG, merge_rebroadcast=rebroadcast, push_pull_interval=0, reconnect_interval=0)
    node = SwimNode("me", cfg, rng=random.Random(1), tcp_address="me:1")
    node.receive("peer", SwimAlive(node_id="other", incarnation=0, tcp_address="other:1"), 0.0)  # someone to gossip to
    node.tick(1.0)
    node.outbox()
    states = tuple(SwimMemberState(node_id=i, incarnation=0, state="Alive", tcp_address=f"{i}:1")
                   for i in ("peer", "x"))
    node.receive("peer", SwimPushPull(states=states, reply=True), 2.0)
    node.tick(3.0)
    gossiped = {u.node_id for _, m in node.outbox() for u in getattr(m, "updates", ())}
    assert "peer" in gossiped and ("x" in gossiped) is rebroadcast
    assert {m.node_id for m in node.members()} == {"me", "other", "peer", "x"}
