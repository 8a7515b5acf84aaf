"""A member whose state is gone (a host crash, a node Ray restarted on another host) rejoins Raft as a new
member, never as an empty voter of its old identity (``formation.join_steps``; docs/reliability.md)."""

from __future__ import annotations

import asyncio
import shutil
import time

from harness import local_cluster, wait_for


async def test_a_node_restarted_without_its_state_is_retired_then_added_back_fresh(tmp_path) -> None:
    async with local_cluster(3, tmp_path / "state") as c:
        await wait_for(lambda: c.node("node1").services["membership"].raft.leader is not None, 20)
        old = c.node("node3")
        old.services["membership"].swim.set_meta(time.monotonic())  # it refuted once: the others know incarnation 1
        await wait_for(lambda: c.node("node1").services["membership"].swim.member("node3").incarnation >= 1, 10)
        node_dir = old.config.node_dir
        await old.stop(graceful=False)  # a crash: no leave, no goodbye
        shutil.rmtree(node_dir)  # and its disk is gone with it
        for n in ("node1", "node2"):  # the others declare it Dead before it comes back, as after a host crash
            swim = c.node(n).services["membership"].swim
            await wait_for(lambda swim=swim: swim.member("node3").state.value == "Dead", 30)
        before = len((await c.client.get("/membership/raft/status", params={"node": "node1"})).json()[
            "configuration_log"])
        seeds = (c.node("node1").tcp_address, c.node("node2").tcp_address)
        t0 = time.monotonic()
        # what the node actor does when Ray restarts it: seeds from the registry, a wall-clock incarnation
        fresh = await c.start_node("node3", seeds=seeds, min_incarnation=int(time.time()))
        assert not fresh.services["membership"].raft.has_state()

        def rejoined() -> bool:
            raft = fresh.services["membership"].raft
            leader = c.node("node1").services["membership"].raft
            return (raft.started and "node3" in leader.members() and raft.status()["commit_index"] >= 1
                    and c.node("node1").services["membership"].swim.member("node3").state.value == "Alive")

        await wait_for(rejoined, 30)
        # the leader's members() counts the add once appended; its configuration log shows it once applied
        deadline = time.monotonic() + 10
        while True:
            status = (await c.client.get("/membership/raft/status", params={"node": "node1"})).json()
            changes = [(e.get("op"), e.get("node_id")) for e in status["configuration_log"][before:] if e.get("op")]
            if len(changes) >= 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        print(f"\nrejoined in {time.monotonic() - t0:.1f}s; configuration changes: {changes}")
        assert changes[:2] == [("remove", "node3"), ("add", "node3")], changes
        assert sorted(status["members"]) == ["node1", "node2", "node3"]
        mine = (await c.client.get("/membership/raft/status", params={"node": "node3"})).json()
        assert mine["role"] == "Follower" and mine["leader"] == status["leader"]
        assert mine["commit_index"] == status["commit_index"] or mine["last_index"] >= status["commit_index"] - 1
