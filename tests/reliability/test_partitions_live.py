"""A live 5-node cluster (real TLS connections on loopback) split 2/3 and healed.

``NetworkPartition`` drops every frame between the groups and refuses new dials across, so SWIM,
Raft and routed traffic are all cut. During the split we send AtLeastOnce and ExactlyOnce messages
inside and across the groups through the routing service, propose on the stranded Raft leader and
on the majority's new leader; after the heal we check:

* Raft: one leader per term, sampled every 10 ms for the whole run; the stranded leader's entry is
  never committed anywhere; the majority's is, and every node converges on it;
* SWIM: each side held the other Suspect or Dead, and everyone sees everyone Alive again within
  30 s of the heal with no operator rejoin;
* routing: every acknowledged message was processed by its receiver (ExactlyOnce exactly once),
  including those sent across the cut, which retry until the heal.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

from harness import api_receive_log, api_send, local_cluster, wait_for

from rustyray.membership.raft import ProposalDropped, Role
from rustyray.membership.swim import MemberState
from rustyray.routing.fault_injection import NetworkPartition

SECTIONS = {"routing": {"retry_initial_s": 0.05, "retry_max_s": 0.5}}
MERGE_BUDGET_S = 30.0
FAR = (MemberState.SUSPECT, MemberState.DEAD)


def _committed_markers(svc) -> set[str]:  # type: ignore[no-untyped-def]
    return {e["marker"] for e in svc.config_log if e.get("type") == "partition-test"}


async def test_split_two_three_then_heal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with local_cluster(5, tmp_path, sections=SECTIONS) as c:
        ids = sorted(c.nodes)
        ms = {n: c.node(n).services["membership"] for n in ids}
        routing = {n: c.node(n).services["routing"] for n in ids}

        def everyone_alive() -> bool:
            return all(ms[o].swim.state_of(s) is MemberState.ALIVE for o in ids for s in ids if o != s)

        def leader_of(members: list[str]) -> str | None:
            leads = [n for n in members if ms[n].raft.raft is not None and ms[n].raft.raft.role is Role.LEADER]
            if not leads:
                return None
            top = max(ms[n].raft.raft.term for n in leads)
            at_top = [n for n in leads if ms[n].raft.raft.term == top]
            return at_top[0] if len(at_top) == 1 else None

        await wait_for(lambda: leader_of(ids) is not None and everyone_alive(), 20)

        # receivers count what their handler processed, per message key
        processed: Counter[tuple[str, str]] = Counter()
        for n in ids:
            def count(ctx, data, n=n):  # type: ignore[no-untyped-def]
                processed[(n, data["key"])] += 1
                return {"key": data["key"]}

            routing[n].registry.register("Count", count)

        # Election Safety, sampled continuously
        leaders_by_term: dict[int, str] = {}
        violations: list[str] = []

        async def sample() -> None:
            while True:
                for n in ids:
                    r = ms[n].raft.raft
                    if r is not None and r.role is Role.LEADER:
                        prev = leaders_by_term.setdefault(r.term, n)
                        if prev != n:
                            violations.append(f"term {r.term}: {prev} and {n}")
                await asyncio.sleep(0.01)

        sampler = asyncio.ensure_future(sample())

        old_leader = leader_of(ids)
        assert old_leader is not None
        minority = [old_leader, next(n for n in ids if n != old_leader)]
        majority = [n for n in ids if n not in minority]
        part = NetworkPartition(c.nodes).install()
        try:
            part.split([minority, majority])
            t_split = time.monotonic()

            # the stranded leader accepts a proposal it can never commit
            stranded = asyncio.ensure_future(ms[old_leader].raft.propose(
                json.dumps({"type": "partition-test", "marker": "stranded"}).encode(), timeout=60.0))

            # routed traffic inside each side and across the cut, both guarantees
            sends: list[tuple[str, str, str, str, asyncio.Future]] = []
            for i in range(6):
                for delivery in ("AtLeastOnce", "ExactlyOnce"):
                    for src, dst in ((minority[0], minority[1]), (majority[0], majority[1]),
                                     (minority[1], majority[2]), (majority[1], minority[0])):
                        key = f"{delivery}-{src}-{dst}-{i}"
                        fut = asyncio.ensure_future(api_send(routing[src].api,
                            dst, "Count", {"key": key}, delivery=delivery,
                            idempotency_key=key if delivery == "ExactlyOnce" else None, timeout_ms=60_000))
                        sends.append((src, dst, delivery, key, fut))
                await asyncio.sleep(0.2)

            # the majority elects a leader and commits
            await wait_for(lambda: leader_of(majority) is not None, 15)
            new_leader = leader_of(majority)
            assert new_leader is not None and new_leader != old_leader
            await ms[new_leader].raft.propose(
                json.dumps({"type": "partition-test", "marker": "majority"}).encode(), timeout=10.0)
            assert all("majority" in _committed_markers(ms[n]) for n in [new_leader])

            # SWIM: each side holds the other Suspect, then Dead (so the heal must revive Dead members)
            cross = [(o, s) for a, b in ((minority, majority), (majority, minority)) for o in a for s in b]
            await wait_for(lambda: all(ms[o].swim.state_of(s) in FAR for o, s in cross), 30)
            await wait_for(lambda: all(ms[o].swim.state_of(s) is MemberState.DEAD for o, s in cross), 40)
            # the minority never committed: the stranded entry is applied nowhere
            assert not stranded.done()  # still waiting: not committed, not yet known to be lost
            assert all("stranded" not in _committed_markers(ms[n]) for n in ids)
            assert leader_of(minority) is None  # check-quorum deposed the stranded leader
            within = [f for s, d, _, _, f in sends if (s in minority) == (d in minority)]
            assert all(f.done() and f.result()["acknowledged"] for f in within)
            split_s = time.monotonic() - t_split

            # heal: SWIM merges by itself, Raft converges, cross-cut messages get through
            part.heal()
            t_heal = time.monotonic()
            await wait_for(everyone_alive, MERGE_BUDGET_S)
            merge_s = time.monotonic() - t_heal

            def raft_converged() -> bool:
                lead = leader_of(ids)
                return lead is not None and len({ms[n].raft.raft.log.commit for n in ids}) == 1 and all(
                    "majority" in _committed_markers(ms[n]) for n in ids)

            await wait_for(raft_converged, MERGE_BUDGET_S)
            # the stranded proposal's index now holds another entry: its caller is told, not acked
            await wait_for(stranded.done, 10)
            assert isinstance(stranded.exception(), ProposalDropped)
            results = await asyncio.wait_for(asyncio.gather(*(f for *_, f in sends)), 60)
        finally:
            part.uninstall()
            sampler.cancel()

        assert not violations, violations
        assert all("stranded" not in _committed_markers(ms[n]) for n in ids)
        # no acknowledged message lost: each was processed by its receiver (ExactlyOnce: once)
        acked = 0
        for (src, dst, delivery, key, _), res in zip(sends, results, strict=True):
            assert res["acknowledged"], (src, dst, delivery, res)
            acked += 1
            assert processed[(dst, key)] >= 1, (src, dst, delivery, key)
            if delivery == "ExactlyOnce":
                assert processed[(dst, key)] == 1, (src, dst, key, processed[(dst, key)])
        assert acked == len(sends)
        logged = sum(api_receive_log(routing[n].api)["processed_by_type"].get("Count", 0) for n in ids)
        assert logged == sum(processed.values())
        assert part.dropped > 0
        print(f"split {split_s:.1f} s, merged {merge_s:.1f} s after heal, terms {sorted(leaders_by_term)}, "
              f"{acked} messages acknowledged, {part.dropped} frames dropped, {part.refused_dials} dials refused")
