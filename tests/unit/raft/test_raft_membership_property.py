"""Property: single-server adds/removes interleaved with partitions, drops, crashes and
ticks never break Raft's safety properties (checked by RaftTestNet as it runs), and the
final configuration elects one leader that commits on every member once healed."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raft_testnet import RaftTestNet
from test_raft_property import _apply, op

from rustyray.membership.raft import ConfChangeRejected, NotLeader, ProposalDropped, Role

POOL = ["n6", "n7"]
member_op = st.one_of(
    op,
    st.tuples(st.just("add"), st.sampled_from(POOL)),
    st.tuples(st.just("remove"), st.sampled_from(["n1", "n2", "n3", "n4", "n5", *POOL])),
)


def _change(net: RaftTestNet, kind: str, target: str) -> None:
    leader = net.leader()
    if leader is None:
        return
    if kind == "add" and target not in net.nodes:
        net.add_joiner(target)
    if kind == "remove" and len(leader.members) <= 3:
        return
    try:
        leader.propose_conf_change(kind, target)
    except (ConfChangeRejected, NotLeader, ProposalDropped):
        return
    net.process(leader.id)
    net.deliver()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), ops=st.lists(member_op, max_size=40))
def test_raft_membership_changes_stay_safe(seed: int, ops: list[tuple]) -> None:
    net = RaftTestNet(["n1", "n2", "n3", "n4", "n5"], seed=seed, max_entries_per_append=4)
    counter = [0]
    for o in ops:
        if o[0] in ("add", "remove"):
            _change(net, o[0], o[1])
        else:
            _apply(net, o, counter)
        net.check_log_matching()
    net.heal()
    for id_ in list(net.down):
        net.restart(id_)
    for _attempt in range(10):
        net.tick_until(lambda: (lead := net.leader()) is not None
                       and lead.log.term(lead.log.commit) == lead.term, max_ticks=400)
        leader = net.leader()
        try:
            idx = net.propose(leader.id, b"final")
        except ProposalDropped:
            net.tick(10)
            continue
        net.tick(5)
        members = leader.members
        if net.leader() is leader and all(net.nodes[m].log.commit >= idx for m in members):
            break
    else:
        raise AssertionError(f"no stable leader after healing: {net.describe()}")
    assert [n.id for n in net.nodes.values() if n.role is Role.LEADER and n.id in members] == [leader.id]
    for m in members:
        assert net.nodes[m].status().members == sorted(members)
    net.check_log_matching()
