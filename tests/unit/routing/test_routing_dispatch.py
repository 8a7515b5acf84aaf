import pytest

from rustyray.routing import (
    Broadcast,
    Consensus,
    InvalidQuorumError,
    QuorumCollector,
    QuorumStatus,
    ScatterGather,
)

NODES5 = ["node1", "node2", "node3", "node4", "node5"]


@pytest.mark.parametrize(
    ("n", "q", "ok"),
    [(5, 0, False), (5, 1, True), (5, 3, True), (5, 5, True), (5, 6, False), (1, 1, True), (3, -1, False)],
)
def test_quorum_size_validation(n, q, ok):
    targets = [f"n{i}" for i in range(n)]
    if ok:
        assert QuorumCollector(targets, q).quorum_size == q
    else:
        with pytest.raises(InvalidQuorumError, match="quorum_size") as info:
            QuorumCollector(targets, q)
        assert isinstance(info.value, ValueError)


def test_quorum_needs_targets_and_unique_names():
    with pytest.raises(InvalidQuorumError, match="targets"):
        QuorumCollector([], 1)
    with pytest.raises(ValueError, match="duplicates"):
        QuorumCollector(["a", "a"], 1)


# events: ("v", node, vote) | ("f", node) ; expected status/consensus after all events
QUORUM_TABLE = [
    # n=5, q=3: reached as soon as the third answer arrives, whatever the votes
    ([("v", "node1", "ACCEPT"), ("v", "node2", "ACCEPT")], QuorumStatus.PENDING, Consensus.PENDING),
    (
        [("v", "node1", "ACCEPT"), ("v", "node2", "ACCEPT"), ("v", "node3", "ACCEPT")],
        QuorumStatus.REACHED,
        Consensus.ACCEPT,
    ),
    (
        [("v", "node1", "ACCEPT"), ("v", "node2", "REJECT"), ("v", "node3", "ACCEPT")],
        QuorumStatus.REACHED,
        Consensus.PENDING,
    ),
    # fail fast: two failures leave 3 possible, a third makes 3 answers impossible
    ([("f", "node1"), ("f", "node2")], QuorumStatus.PENDING, Consensus.PENDING),
    ([("f", "node1"), ("f", "node2"), ("f", "node3")], QuorumStatus.FAILED, Consensus.REJECT),
    # REJECT decided early: ACCEPT can no longer reach 3
    ([("v", "node1", "REJECT"), ("v", "node2", "REJECT"), ("f", "node3")], QuorumStatus.PENDING, Consensus.REJECT),
    (
        [("v", "node1", "reject"), ("v", "node2", "REJECT"), ("v", "node3", "REJECT")],
        QuorumStatus.REACHED,
        Consensus.REJECT,
    ),
    # seed NETWORKING-010: 4 answers, quorum 3, ACCEPT
    (
        [("v", "node1", "ACCEPT"), ("v", "node2", "ACCEPT"), ("v", "node3", "REJECT"), ("v", "node4", "ACCEPT")],
        QuorumStatus.REACHED,
        Consensus.ACCEPT,
    ),
]


@pytest.mark.parametrize(("events", "status", "consensus"), QUORUM_TABLE)
def test_quorum_table(events, status, consensus):
    q = QuorumCollector(NODES5, 3)
    for ev in events:
        if ev[0] == "v":
            assert q.on_vote(ev[1], ev[2])
        else:
            assert q.on_failure(ev[1], "connection refused")
    assert q.status is status
    assert q.consensus is consensus


def test_quorum_decisions_never_flip_and_later_outcomes_ignored():
    q = QuorumCollector(NODES5, 3)
    for node in ("node1", "node2", "node3"):
        q.on_vote(node, "ACCEPT")
    assert q.done
    q.on_vote("node4", "REJECT")
    q.on_failure("node5", "boom")
    assert q.status is QuorumStatus.REACHED and q.consensus is Consensus.ACCEPT
    assert not q.on_vote("node1", "REJECT")  # second answer from the same node
    assert not q.on_vote("node9", "ACCEPT")  # not a target
    r = q.result()
    assert r.to_dict(response_time_ms=156.7) == {
        "quorum_reached": True,
        "quorum_size": 3,
        "responses": 4,
        "consensus": "ACCEPT",
        "votes": {"ACCEPT": 3, "REJECT": 1},
        "failed_nodes": ["node5"],
        "timed_out_nodes": [],
        "response_time_ms": 156.7,
    }


def test_quorum_timeout_fails_when_too_few_answered():
    q = QuorumCollector(NODES5, 3, deadline=10.0)
    q.on_vote("node1", "ACCEPT")
    assert q.check_timeout(9.9) == []
    assert q.check_timeout(10.0) == ["node2", "node3", "node4", "node5"]
    assert q.status is QuorumStatus.FAILED and q.consensus is Consensus.REJECT and q.done
    assert q.result().timed_out == ["node2", "node3", "node4", "node5"]
    assert not q.result().quorum_reached


def test_quorum_without_deadline_uses_adapter_timer():
    q = QuorumCollector(["a", "b", "c"], 2)
    assert q.check_timeout(1e9) == []
    q.on_vote("a", "ACCEPT")
    assert q.timeout_all() == ["b", "c"]
    assert q.status is QuorumStatus.FAILED


def test_scatter_gather_collects_and_times_out():
    sg = ScatterGather(["node1", "node2", "node3"], deadline=5.0)
    assert sg.on_response("node1", 1.0, {"rows": 1500})
    assert sg.on_failure("node2", "handler error")
    assert not sg.done
    assert not sg.on_response("node3", 5.0, {"rows": 1})  # late
    assert sg.done
    r = sg.result()
    assert (r.total_sent, r.responses_received) == (3, 1)
    assert r.to_dict() == {
        "responses_received": 1,
        "total_sent": 3,
        "responses": [
            {"node": "node1", "rows": 1500, "status": "success"},
            {"node": "node2", "status": "error", "error": "handler error"},
            {"node": "node3", "status": "timeout", "error": "timed out"},
        ],
    }


def test_scatter_gather_all_answer_before_deadline():
    sg = ScatterGather(["a", "b"], deadline=5.0)
    sg.on_response("b", 0.1, {"rows": 2})
    sg.on_response("a", 0.2, {"rows": 1})
    assert sg.done and sg.check_timeout(10.0) == []
    assert [o.node for o in sg.result().responses] == ["a", "b"]  # target order


def test_broadcast_accounting():
    b = Broadcast(["node1", "node2", "node3"])
    b.on_success("node1")
    b.on_failure("node2", "refused")
    assert not b.done
    r = b.result()
    assert (r.total_nodes, r.successful_sends, r.failed_sends) == (3, 1, 2)
    assert r.failures == {"node2": "refused", "node3": "no outcome"}
    b.on_success("node3")
    assert b.done
    assert b.result().to_dict(latency_ms=45.2) == {
        "total_nodes": 3,
        "successful_sends": 2,
        "failed_sends": 1,
        "nodes_reached": ["node1", "node3"],
        "broadcast_latency_ms": 45.2,
        "failures": {"node2": "refused"},
    }
