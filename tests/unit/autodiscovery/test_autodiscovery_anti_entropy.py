"""Merkle anti-entropy: merge order, protocol, convergence (hypothesis), bytes vs. differences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.autodiscovery.anti_entropy import (
    AEBranchRequest,
    AERoot,
    AntiEntropyConfig,
    AntiEntropySession,
    EntryStatus,
    MerkleTree,
    full_state_bytes,
    precedence,
    sync_in_memory,
)
from rustyray.autodiscovery.errors import AEProtocolError
from rustyray.protocol.messages import encode_message

A, S, D, L = EntryStatus.ALIVE, EntryStatus.SUSPECT, EntryStatus.DEAD, EntryStatus.LEFT


def pair(tree_a: MerkleTree, tree_b: MerkleTree) -> tuple[AntiEntropySession, AntiEntropySession]:
    return AntiEntropySession(tree_a, initiator=True, session_id=7), AntiEntropySession(tree_b, initiator=False)


def cluster(n: int, cfg: AntiEntropyConfig | None = None) -> tuple[MerkleTree, MerkleTree]:
    a, b = MerkleTree(cfg), MerkleTree(cfg)
    for i in range(n):
        a.set(f"node-{i}", 3, A)
        b.set(f"node-{i}", 3, A)
    return a, b


def test_merge_precedence() -> None:
    assert precedence(2, A) > precedence(1, D)  # higher incarnation wins
    assert precedence(1, D) > precedence(1, S) > precedence(1, A)
    assert precedence(0, L) > precedence(9, D)  # Left is final
    t = MerkleTree()
    t.set("x", 1, L)
    assert not t.merge("x", 5, A) and t.get("x") == (1, L)
    assert t.merge("x", 2, L) and t.get("x") == (2, L)


def test_equal_states_match_at_the_root() -> None:
    a, b = cluster(500)
    rep = sync_in_memory(*pair(a, b))
    assert rep.as_dict() == {
        "sync_initiated": True,
        "merkle_root_match": True,
        "divergent_entries": 0,
        "repaired": 0,
        "bytes_exchanged": rep.bytes_exchanged,
        "rounds": 1,
        "sync_status": "completed",
    }
    assert rep.bytes_exchanged < 100


def test_repair_in_both_directions() -> None:
    a, b = cluster(200)
    a.set("node-1", 4, A)  # a newer on node-1
    b.set("node-2", 3, D)  # b newer on node-2 (same incarnation, Dead beats Alive)
    a.set("only-a", 1, A)
    b.set("only-b", 1, S)
    ia, rb = pair(a, b)
    rep = sync_in_memory(ia, rb)
    assert not rep.merkle_root_match and rep.sync_status == "completed"
    assert rep.divergent_entries == 4 and rep.repaired == 4
    assert a.root == b.root and a.get("node-2") == (3, D) and b.get("node-1") == (4, A)
    assert {e.node_id for e in ia.applied} == {"node-2", "only-b"}
    assert {e.node_id for e in rb.applied} == {"node-1", "only-a"}
    assert rep.rounds == 1 + 3 + 1  # root, two branch levels + leaves, verification


entries = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=3),
    st.tuples(st.integers(0, 3), st.sampled_from(list(EntryStatus))),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(entries, entries, st.integers(1, 3))
def test_sync_converges_to_the_merge_of_both_sides(ea: dict, eb: dict, depth: int) -> None:
    cfg = AntiEntropyConfig(depth=depth)
    a, b = MerkleTree(cfg), MerkleTree(cfg)
    for k, v in ea.items():
        a.set(k, *v)
    for k, v in eb.items():
        b.set(k, *v)
    rep = sync_in_memory(*pair(a, b))
    assert rep.sync_status == "completed"
    assert a.root == b.root
    expected = {
        k: max((v for v in (ea.get(k), eb.get(k)) if v is not None), key=lambda v: precedence(*v))
        for k in ea.keys() | eb.keys()
    }
    assert dict(a.items()) == dict(b.items()) == expected
    assert rep.merkle_root_match == (ea == eb)
    assert rep.divergent_entries == sum(1 for k in expected if ea.get(k) != eb.get(k))


def test_protocol_errors() -> None:
    a, b = cluster(10)
    ia, rb = pair(a, b)
    with pytest.raises(AEProtocolError):
        rb.receive(b"\xc1garbage")
    with pytest.raises(AEProtocolError, match="unexpected"):
        ia.start()
        ia.receive(encode_message(AERoot(session=7, root=b"")))
    with pytest.raises(AEProtocolError, match="prefix"):
        rb.receive(encode_message(AERoot(session=9, root=b"x")))
        rb.receive(encode_message(AEBranchRequest(session=9, prefixes=["zz"])))


def test_in_progress_when_state_keeps_changing() -> None:
    a, b = cluster(50, AntiEntropyConfig(max_rounds=2))
    ia, rb = pair(a, b)
    a.set("node-1", 9, A)
    data = ia.start()
    n = 0
    while data is not None:
        b.set(f"churn-{n}", 1, A)  # the responder changes under the sync every step
        n += 1
        data = ia.receive(rb.receive(data))
    assert ia.report().sync_status == "in_progress"


def test_bytes_grow_with_differences_not_with_cluster_size() -> None:
    rows = []
    for size in (1_000, 10_000):
        for diffs in (0, 1, 10, 100):
            a, b = cluster(size)
            for i in range(diffs):
                (a if i % 2 else b).set(f"node-{(i * 7919) % size}", 4, S)
            rep = sync_in_memory(*pair(a, b))
            assert rep.sync_status == "completed" and a.root == b.root
            assert rep.divergent_entries == diffs
            full = full_state_bytes(a)
            rows.append((size, diffs, rep.bytes_exchanged, full, rep.rounds))
    print("\n  entries  diffs  bytes_exchanged  full_state_bytes  ratio    rounds")
    for size, diffs, got, full, rounds in rows:
        print(f"  {size:7d}  {diffs:5d}  {got:15d}  {full:16d}  {got / full:7.4f}  {rounds:6d}")
    by = {(s, d): b for s, d, b, _, _ in rows}
    full_10k = next(f for s, d, _, f, _ in rows if s == 10_000)
    assert by[(10_000, 1)] < 0.05 * full_10k
    assert by[(10_000, 0)] < 200
    # independent of cluster size: 10x the entries costs at most ~2x the bytes for the same differences
    for d in (1, 10, 100):
        assert by[(10_000, d)] < 2 * by[(1_000, d)] + 500
    # roughly linear in the differences
    assert by[(10_000, 10)] > 2 * by[(10_000, 1)]
    assert by[(10_000, 100)] > 2 * by[(10_000, 10)]
    assert by[(10_000, 100)] < 100 * by[(10_000, 1)]
