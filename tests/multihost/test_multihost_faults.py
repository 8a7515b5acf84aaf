"""Real network faults between the namespace hosts: partitions (nftables DROP), netem loss and delay.

The same bed as ``test_multihost_bed`` (one session): six node actors on three hosts. A partition drops the
RustyRay nodes' own TCP and QUIC traffic between host groups in the kernel; Ray's traffic still flows, so the
API on h1 can ask every node, on both sides, what it sees. What must hold across every fault:

* SWIM on each side marks the other side Suspect, then Dead; after the heal the views merge by themselves;
* at most one Raft leader per term, on every node's word, before, during and after;
* every message that a send acknowledged (AtLeastOnce) is in its receiver's log.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
from typing import Any

import pytest
from netns_bed import Bed, _say, wait_for

pytestmark = pytest.mark.multihost

NODES = 6


class Watch:
    """Every node's Raft word, polled: term -> the nodes that said they led it."""

    def __init__(self, bed: Bed, nodes: list[str]) -> None:
        self.bed, self.nodes = bed, nodes
        self.leaders: dict[int, set[str]] = {}

    def raft(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for n in self.nodes:
            try:
                s = self.bed.api(f"/membership/raft/status?node={n}")
            except (urllib.error.URLError, TimeoutError, json.JSONDecodeError):
                continue  # a node Ray is restarting, or one whose host is gone
            out[n] = s
            if s["role"] == "Leader":
                self.leaders.setdefault(int(s["term"]), set()).add(n)
        return out

    def swim(self, node: str) -> dict[str, str]:
        return {m["node"]: m["status"] for m in self.bed.api(f"/membership/swim/status?node={node}")["members"]}

    def assert_one_leader_per_term(self) -> None:
        _say(f"Raft leaders by term: { {t: sorted(v) for t, v in sorted(self.leaders.items())} }")
        assert all(len(v) == 1 for v in self.leaders.values()), f"two leaders in one term: {self.leaders}"

    def merged(self) -> str | None:
        """Every node sees all six Alive and names the same one leader; that leader's id, else None."""
        raft = self.raft()
        if len(raft) != len(self.nodes):
            return None
        for n in self.nodes:
            view = self.swim(n)
            if len(view) != len(self.nodes) or any(s != "Alive" for s in view.values()):
                return None
        leaders = {s["leader"] for s in raft.values()}
        roles = [s["role"] for s in raft.values()]
        return leaders.pop() if len(leaders) == 1 and None not in leaders and roles.count("Leader") == 1 else None


def _nodes(bed: Bed) -> dict[str, dict[str, Any]]:
    return {n["node_id"]: n for n in bed.api("/nodes")["nodes"]}


def _ports(nodes: dict[str, dict[str, Any]]) -> list[int]:
    return sorted(int(n[k].rsplit(":", 1)[1]) for n in nodes.values() for k in ("address", "quic_address"))


def _send(bed: Bed, src: str, dst: str, seq: int, timeout_ms: int = 2000) -> dict[str, Any]:
    body = {"target_node": dst, "message_type": "Heartbeat", "delivery": "AtLeastOnce", "timeout_ms": timeout_ms,
            "data": {"seq": seq, "from": src}}
    return bed.post(f"/routing/send?node={src}", body)


def _assert_delivered(bed: Bed, acked: list[tuple[str, str, str]]) -> None:
    """Every acknowledged ``(sender, receiver, message_id)`` is in the receiver's log."""
    by_receiver: dict[str, set[str]] = {}
    for src, dst, mid in acked:
        by_receiver.setdefault(dst, set()).add(f"{src}/{mid}")
    for dst, ids in by_receiver.items():
        log = bed.api(f"/routing/receive-log?node={dst}")
        seen = {r["message_id"] for r in log["recent"]}
        assert ids <= seen, f"{dst} lost acknowledged messages: {sorted(ids - seen)}"


@pytest.fixture
def watch(bed: Bed, launched: dict) -> Watch:
    w = Watch(bed, sorted(_nodes(bed)))
    wait_for(w.merged, 90, "all six Alive in every view, one Raft leader")
    return w


def _sides(bed: Bed, groups: list[list[int]]) -> list[list[str]]:
    nodes = _nodes(bed)
    return [sorted(n for n, v in nodes.items() if bed.host_of(v["address"]) in g) for g in groups]


def _each_side_sees_the_other_down(w: Watch, sides: list[list[str]]) -> bool:
    w.raft()
    for side in sides:
        others = [n for s in sides if s is not side for n in s]
        for n in side:
            view = w.swim(n)
            if any(view.get(o) not in ("Suspect", "Dead") for o in others) or any(view.get(m) != "Alive" for m in side):
                return False
    return True


def test_partition_two_hosts_against_one_and_heal(bed: Bed, watch: Watch) -> None:
    w = watch
    near, far = _sides(bed, [[1, 2], [3]])
    _say(f"near side (h1+h2): {near}; far side (h3): {far}")
    sender, near_target, far_target = near[0], near[-1], far[0]
    acked: list[tuple[str, str, str]] = []
    bed.partition([[1, 2], [3]], _ports(_nodes(bed)))
    try:
        t0 = time.monotonic()
        wait_for(lambda: _each_side_sees_the_other_down(w, [near, far]), 45,
                 "each side marks the other Suspect or Dead, its own side Alive")
        _say(f"both sides saw the cut in {time.monotonic() - t0:.1f}s")
        wait_for(lambda: _each_side_sees_the_other_down(w, [near, far]) and all(
            w.swim(n).get(o) == "Dead" for n in near for o in far), 45, "the near side declares the far side Dead")
        # the near side holds four of six: a quorum, so it keeps (or elects) one leader among its own
        wait_for(lambda: any(s["role"] == "Leader" for n, s in w.raft().items() if n in near), 30,
                 "a Raft leader on the majority side")
        results = []
        for seq in range(8):
            r = _send(bed, sender, near_target, seq)
            results.append(r)
            if r.get("acknowledged"):
                acked.append((sender, near_target, r["message_id"]))
        assert all(r.get("acknowledged") for r in results), f"sends inside the majority side failed: {results}"
        for seq in range(3):  # across the cut: refused or unacknowledged, never acknowledged-and-lost
            r = _send(bed, sender, far_target, 100 + seq, timeout_ms=1000)
            _say(f"send across the cut: success={r.get('success')} acknowledged={r.get('acknowledged')} "
                 f"error={r.get('error') or r.get('detail')}")
            if r.get("acknowledged"):
                acked.append((sender, far_target, r["message_id"]))
        far_raft = {n: s for n, s in w.raft().items() if n in far}
        assert not any(s["role"] == "Leader" for s in far_raft.values()), f"a leader on the minority side: {far_raft}"
    finally:
        bed.heal()
    t0 = time.monotonic()
    leader = wait_for(w.merged, 90, "after the heal: all six Alive everywhere, one leader")
    _say(f"merged without an operator in {time.monotonic() - t0:.1f}s; leader {leader}")
    for seq in range(3):
        r = _send(bed, sender, far_target, 200 + seq)
        assert r.get("acknowledged"), r
        acked.append((sender, far_target, r["message_id"]))
    _assert_delivered(bed, acked)
    w.assert_one_leader_per_term()


def test_three_way_split_has_no_leader_with_a_quorum_and_heals(bed: Bed, watch: Watch) -> None:
    w = watch
    sides = _sides(bed, [[1], [2], [3]])
    before = max(int(s["term"]) for s in w.raft().values())
    bed.partition([[1], [2], [3]], _ports(_nodes(bed)))
    try:
        wait_for(lambda: _each_side_sees_the_other_down(w, sides), 45, "every host marks the other two down")
        # two of six on each side: nobody can win an election, so no term after ``before`` has a leader
        for _ in range(6):
            w.raft()
            time.sleep(0.5)
        late = {t: v for t, v in w.leaders.items() if t > before}
        assert not late, f"a leader elected without a quorum: {late}"
    finally:
        bed.heal()
    leader = wait_for(w.merged, 90, "after the heal: all six Alive everywhere, one leader")
    _say(f"three-way split healed; leader {leader}")
    w.assert_one_leader_per_term()


def test_loss_and_delay_on_one_link_lose_no_acknowledged_message(bed: Bed, watch: Watch) -> None:
    w = watch
    nodes = _nodes(bed)
    h1 = sorted(n for n, v in nodes.items() if bed.host_of(v["address"]) == 1)
    h2 = sorted(n for n, v in nodes.items() if bed.host_of(v["address"]) == 2)
    acked: list[tuple[str, str, str]] = []
    latencies: list[float] = []
    bed.loss(2, 10, _ports(nodes))
    delayed = bed.netem(2, "delay 40ms 10ms")
    try:
        for seq in range(20):
            r = _send(bed, h1[0], h2[0], seq, timeout_ms=5000)
            assert r.get("acknowledged"), f"send {seq} over the lossy link: {r}"
            acked.append((h1[0], h2[0], r["message_id"]))
            latencies.append(float(r["latency_ms"]))
        ring = bed.post(f"/routing/broadcast?node={h1[0]}", {"message_type": "Heartbeat", "data": {"lossy": True},
                                                               "delivery": "AtLeastOnce"})
        _say(f"broadcast over the lossy link: {json.dumps(ring)[:300]}")
    finally:
        bed.loss(2, 0, [])
        bed.netem(2, None)
    _say(f"10 % loss{' and 40±10 ms delay' if delayed else ''} on h2: median send latency "
         f"{statistics.median(latencies):.1f} ms, max {max(latencies):.1f} ms")
    if delayed:
        assert statistics.median(latencies) >= 25.0  # the acks really crossed the delayed link
    _assert_delivered(bed, acked)
    wait_for(w.merged, 60, "after the loss: all six Alive everywhere, one leader")
    w.assert_one_leader_per_term()


def test_host_crash_nodes_restart_elsewhere_and_rejoin_raft_as_fresh_members(bed: Bed, watch: Watch) -> None:
    """Last in the session: h3 does not come back. Every Ray process of h3 is killed at once; Ray restarts
    its node actors on h1/h2, where no state of theirs exists. They must rejoin Raft as new members (the old
    voter of their name removed first, then added: ``formation.join_steps``), never as empty voters."""
    w = watch
    nodes = _nodes(bed)
    lost = sorted(n for n, v in nodes.items() if bed.host_of(v["address"]) == 3)
    kept = sorted(n for n in nodes if n not in lost)
    _say(f"crashing h3 with {lost}; survivors {kept}")
    before_log = len(bed.api(f"/membership/raft/status?node={kept[0]}")["configuration_log"])
    bed.crash(3)
    t0 = time.monotonic()
    acked: list[tuple[str, str, str]] = []
    for seq in range(10):  # the survivors keep serving while h3 is gone
        r = _send(bed, kept[0], kept[-1], seq)
        assert r.get("acknowledged"), f"send between survivors during the crash: {r}"
        acked.append((kept[0], kept[-1], r["message_id"]))

    def restarted() -> dict[str, dict[str, Any]] | None:
        try:
            now = _nodes(bed)
        except (urllib.error.URLError, TimeoutError):
            return None
        moved = {n: now[n] for n in lost if n in now and now[n]["state"] == "Alive"
                 and bed.host_of(now[n]["address"]) in (1, 2)}
        return moved if len(moved) == len(lost) else None

    moved = wait_for(restarted, 180, f"Ray restarts {lost} on h1/h2 and they are Alive there")
    _say(f"restarted elsewhere after {time.monotonic() - t0:.1f}s: "
         f"{ {n: v['address'] for n, v in moved.items()} }")

    def rejoined() -> dict[str, Any] | None:
        raft = w.raft()
        leader = next((s for s in raft.values() if s["role"] == "Leader"), None)
        if leader is None or any(n not in raft for n in lost):
            return None
        caught_up = all(raft[n]["role"] == "Follower" and raft[n]["commit_index"] >= leader["commit_index"] - 1
                        and set(raft[n]["members"]) == set(nodes) for n in lost)
        return leader if caught_up and set(leader["members"]) == set(nodes) else None

    leader = wait_for(rejoined, 120, f"{lost} are Raft followers again, caught up, in a six-member configuration")
    changes = [(e.get("op"), e.get("node_id")) for e in leader["configuration_log"][before_log:] if e.get("op")]
    _say(f"configuration changes after the crash: {changes}")
    for n in lost:  # retired as the old voter, then added as a new one: never an amnesiac voter
        assert ("remove", n) in changes and ("add", n) in changes, changes
        assert changes.index(("remove", n)) < changes.index(("add", n)), changes
    _assert_delivered(bed, acked)
    w.assert_one_leader_per_term()
