"""SWIM at 1,000 nodes in the simulator with 1 % message loss."""

from __future__ import annotations

from rustyray.membership.swim import MemberState, SwimConfig
from rustyray.sim.network import SimConfig
from rustyray.sim.swim_cluster import SwimCluster


def test_thousand_nodes_detect_a_crash_and_disseminate_a_join() -> None:
    c = SwimCluster(1000, SwimConfig.lan(), SimConfig(seed=7, loss=0.01))
    c.sim.run_until(2.0)
    c.crash("node500")
    t_crash = c.sim.now
    c.sim.run_until(4.0)
    joiner = c.add_joiner("newcomer", ["node1"])
    t_join = c.sim.now
    c.sim.run_until(t_crash + 36.0)

    live = [i for i in c.up_ids() if i not in ("node500", "newcomer")]
    assert len(live) == 999
    failed = c.observers("NodeFailed", "node500", t_crash)
    assert len(set(failed) & set(live)) >= 0.99 * len(live)

    joined = c.observers("NodeJoined", "newcomer", t_join)
    assert len(set(joined) & set(live)) >= 0.9999 * len(live)
    assert joiner.joined
    known_alive = {m.node_id for m in joiner.members() if m.state is MemberState.ALIVE}
    assert known_alive >= set(live)  # node500 was already suspect at join time: unknown Suspects are ignored

    # no healthy member was declared dead anywhere
    dead_subjects = {subject for (name, subject) in c.seen if name == "NodeFailed"}
    assert dead_subjects == {"node500"}
    assert c.node("node0").state_of("node500") is MemberState.DEAD
