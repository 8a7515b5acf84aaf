"""AntiEntropyNode: node-to-node syncs over step messages, the bounded responder table, rounds, stats.

Two nodes exchange ``AESyncStep`` / ``AESyncStepReply`` in memory; ``now`` is passed by hand.
"""

from __future__ import annotations

import collections
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.autodiscovery.anti_entropy import AntiEntropyConfig, EntryStatus, MerkleTree, precedence
from rustyray.autodiscovery.anti_entropy_node import (
    MAX_RESPONDERS,
    AESyncStep,
    AESyncStepReply,
    AntiEntropyNode,
    entry_status,
    pick_source,
)
from rustyray.autodiscovery.errors import AutodiscoveryError
from rustyray.protocol.control import ErrorReply


class View:
    """A membership view merged by SWIM precedence (what a source must offer)."""

    def __init__(self, entries: dict[str, tuple[int, EntryStatus]]) -> None:
        self.state = dict(entries)

    def entries(self) -> dict[str, tuple[int, EntryStatus]]:
        return dict(self.state)

    def apply(self, entries) -> None:
        for e in entries:
            new = (e.incarnation, EntryStatus(e.status))
            cur = self.state.get(e.node_id)
            if cur is None or precedence(*new) > precedence(*cur):
                self.state[e.node_id] = new


def ae(node_id: str, *, enabled: bool = True, seed: int = 0) -> AntiEntropyNode:
    return AntiEntropyNode(AntiEntropyConfig(), node_id=node_id, enabled=enabled, interval_s=30,
                           rng=random.Random(seed))


def run_sync(a: AntiEntropyNode, va: View, b: AntiEntropyNode, vb: View, now: float = 0.0) -> dict:
    """``a`` syncs with ``b``, both applying what they receive (the adapters' job)."""
    sync = a.begin("b", a.tree(va.entries()), now)
    request = sync.start()
    while request is not None:
        reply, applied = b.answer("a", request, lambda: b.tree(vb.entries()))
        vb.apply(applied)
        request = sync.step(reply)
    report, applied = a.finish(sync, now + 0.25, 1_000.0)
    va.apply(applied)
    return report


statuses = st.sampled_from(list(EntryStatus))
views = st.dictionaries(st.sampled_from([f"n{i}" for i in range(30)]), st.tuples(st.integers(0, 5), statuses),
                        max_size=30)


@settings(max_examples=80, deadline=None)
@given(views, views)
def test_one_sync_makes_both_views_equal_and_counts_what_it_repaired(left, right) -> None:
    a, b = ae("a"), ae("b")
    va, vb = View(left), View(right)
    report = run_sync(a, va, b, vb)
    assert va.state == vb.state
    assert report["sync_status"] == "completed" and report["target_node"] == "b" and report["node"] == "a"
    assert report["merkle_root_match"] == (a.tree(left).root == b.tree(right).root)
    assert a.stats["syncs_completed"] == 1 and b.stats["syncs_answered"] == 1
    assert a.stats["entries_repaired"] + b.stats["entries_repaired"] == report["repaired"]
    assert a.last == {**report, "at": 1_000.0} and report["duration_ms"] == 250.0
    assert run_sync(a, va, b, vb)["merkle_root_match"] is True


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p", "q", None]), st.integers(0, 100)), max_size=300))
def test_the_responder_table_is_a_bounded_lru_of_sessions(steps) -> None:
    """Checked against a dumb reference: an ordered dict trimmed to the bound, oldest use first."""
    b, initiator = ae("b"), ae("a")
    reference: collections.OrderedDict[tuple[str | None, int], None] = collections.OrderedDict()
    started = 0
    for peer, session in steps:
        key = (peer, session)
        if key not in reference:
            started += 1
        reference[key] = None
        reference.move_to_end(key)
        while len(reference) > MAX_RESPONDERS:
            reference.popitem(last=False)
        first = initiator.begin("b", MerkleTree(), 0.0).start()
        reply, _ = b.answer(peer, AESyncStep(session=session, data=first.data), MerkleTree)
        assert isinstance(reply, AESyncStepReply)
        assert list(b._responders) == list(reference)
    assert b.stats["syncs_answered"] == started


def test_a_disabled_node_and_a_broken_exchange_answer_error_replies() -> None:
    reply, applied = ae("b", enabled=False).answer("a", AESyncStep(session=1, data=b""), MerkleTree)
    assert isinstance(reply, ErrorReply) and reply.code == "disabled" and applied == []
    b = ae("b")
    reply, _ = b.answer("a", AESyncStep(session=1, data=b"\xff garbage"), MerkleTree)
    assert isinstance(reply, ErrorReply) and reply.code == "anti_entropy_protocol"
    assert b._responders == {}  # the session is dropped


def test_an_initiator_refuses_a_reply_of_another_type() -> None:
    sync = ae("a").begin("b", MerkleTree(), 0.0)
    sync.start()
    with pytest.raises(AutodiscoveryError, match="unexpected reply ErrorReply"):
        sync.step(ErrorReply(code="x", message="y"))


def test_rounds_pick_a_connected_live_peer_after_a_jittered_interval() -> None:
    node = ae("a", seed=3)
    for _ in range(50):
        assert 24.0 <= node.round_delay() <= 36.0
    assert node.pick_target({"b": False, "c": True}, frozenset({"b"})) is None
    picks = {node.pick_target({"b": True, "c": True, "d": False}, frozenset({"b", "c", "d"})) for _ in range(40)}
    assert picks == {"b", "c"}
    node.failed()
    assert node.stats["syncs_failed"] == 1


def test_status_shows_the_view_source_and_interval_as_configured() -> None:
    node = ae("a")
    body = node.status(node.tree({"a": (1, "alive"), "b": (2, EntryStatus.DEAD)}), "custom")
    assert body["view"] == {"a": {"incarnation": 1, "status": "Alive"}, "b": {"incarnation": 2, "status": "Dead"}}
    assert body["source"] == "custom" and body["interval_s"] == 30 and body["last_sync"] is None
    assert body["entries"] == 2 and set(node.stats) <= set(body)


def test_entry_status_spellings_and_source_choice() -> None:
    assert entry_status("suspect") is entry_status("Suspect") is entry_status(EntryStatus.SUSPECT)
    with pytest.raises(ValueError, match="unknown membership status"):
        entry_status("gone")

    class Membership:
        def entries(self):
            return {}

        def apply_entries(self, entries):
            pass

    fallback, custom, svc = object(), object(), Membership()
    assert pick_source(custom, svc, fallback) == ("custom", custom)
    assert pick_source(None, svc, fallback) == ("membership", svc)
    assert pick_source(None, object(), fallback) == ("peers", fallback)
    assert pick_source(None, None, fallback) == ("peers", fallback)
