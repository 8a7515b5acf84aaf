"""MembershipView folding SWIM events: statuses, versions, change log, listeners."""

from __future__ import annotations

import pytest

from rustyray.membership.swim import NodeFailed, NodeJoined, NodeLeft, NodeRecovered, NodeSuspected
from rustyray.membership.view import MembershipView, ViewStatus, iso_utc

T0 = 1765447200.0  # 2025-12-11T10:00:00Z


def test_join_suspect_fail_recover_leave_bump_the_version_once_each() -> None:
    v = MembershipView()
    v.apply(NodeJoined("node1", 1.0, 0, "10.0.0.1:7000", "10.0.0.1:7001"), T0)
    v.apply(NodeSuspected("node1", 2.0, 0, "node2"), T0 + 1)
    v.apply(NodeSuspected("node1", 2.5, 0, "node3"), T0 + 2)  # no change in the view
    v.apply(NodeFailed("node1", 3.0, 0, "node2"), T0 + 3)
    v.apply(NodeRecovered("node1", 4.0, 1, "10.0.0.1:7000", "10.0.0.1:7001"), T0 + 4)
    v.apply(NodeLeft("node1", 5.0, 1), T0 + 5)
    assert v.version == 5
    kinds = [c.kind for c in v.changes_since(0) or []]
    assert kinds == ["joined", "suspected", "failed", "recovered", "left"]
    m = v.get("node1")
    assert m is not None and m.status is ViewStatus.LEFT and m.incarnation == 1 and m.joined_at == T0


def test_to_dict_uses_the_seed_spelling() -> None:
    v = MembershipView(version=41)
    v.add_local("node1", T0)
    v.apply(NodeJoined("node2", 0.0), T0 + 300)
    v.apply(NodeJoined("node3", 0.0), T0 + 600)
    v.apply(NodeJoined("node4", 0.0), T0 + 700)
    v.apply(NodeFailed("node4", 9.0), T0 + 800)
    d = v.to_dict()
    assert d["view_version"] == 46 and d["total_members"] == 3
    assert d["members"][0] == {
        "id": "node1", "status": "Active", "joined_at": "2025-12-11T10:00:00Z", "incarnation": 0,
        "tcp_address": "", "quic_address": "",
    }
    assert [m["joined_at"] for m in d["members"]][1:] == ["2025-12-11T10:05:00Z", "2025-12-11T10:10:00Z"]
    assert v.size == 3
    assert [m.status.value for m in v.members()] == ["Active", "Active", "Active", "Dead"]


def test_events_about_unknown_members_and_foreign_objects() -> None:
    v = MembershipView()
    assert v.apply(NodeSuspected("ghost", 1.0), T0) is None
    assert v.version == 0
    with pytest.raises(TypeError):
        v.apply(object(), T0)


def test_listeners_and_changes_since_with_a_bounded_log() -> None:
    v = MembershipView(log_size=3)
    seen: list[int] = []
    unsubscribe = v.subscribe(lambda c: seen.append(c.version))
    for i in range(5):
        v.apply(NodeJoined(f"n{i}", 0.0), T0 + i)
    assert seen == [1, 2, 3, 4, 5]
    assert [c.version for c in v.changes_since(3) or []] == [4, 5]
    assert v.changes_since(1) is None  # fell out of the log: caller must re-read the view
    assert v.changes_since(5) == []
    unsubscribe()
    v.remove("n0", T0 + 10)
    assert seen == [1, 2, 3, 4, 5] and v.version == 6 and v.get("n0") is None


def test_rejoin_after_leave_resets_joined_at() -> None:
    v = MembershipView()
    v.apply(NodeJoined("n", 0.0), T0)
    v.apply(NodeLeft("n", 1.0), T0 + 10)
    change = v.apply(NodeJoined("n", 2.0, 2), T0 + 20)
    assert change is not None and change.kind == "joined" and change.member.joined_at == T0 + 20


def test_iso_utc() -> None:
    assert iso_utc(T0) == "2025-12-11T10:00:00Z"
