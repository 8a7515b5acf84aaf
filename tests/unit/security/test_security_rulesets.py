"""Rule-set versioning (last writer wins on (version, origin)), merging whole sets, and key ring merges."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.security.acl import Acl
from rustyray.security.encryption import KEY_SIZE, KeyRing
from rustyray.security.errors import InvalidRuleError
from rustyray.security.firewall import Firewall
from rustyray.security.rulesets import (
    KINDS,
    RuleSetVersion,
    apply_acl_rules,
    apply_firewall_rules,
    default_firewall_rules,
)


def test_versioning_commit_newer_adopt_and_record() -> None:
    v = RuleSetVersion("acl")
    assert (v.version, v.origin) == (0, "")
    assert v.newer(1, "") and not v.newer(0, "")
    assert v.commit("node2") == 1 and (v.version, v.origin) == (1, "node2")
    assert v.newer(1, "node3") and not v.newer(1, "node1") and not v.newer(1, "node2")  # origin breaks ties
    v.adopt(4, "node3")
    assert v.commit("node1") == 5 and v.origin == "node1"  # a local change outranks everything it saw
    record = v.record([{"rule_id": "acl-1"}])
    assert record == {"version": 5, "origin": "node1", "rules": [{"rule_id": "acl-1"}]}
    other = RuleSetVersion("acl")
    assert other.restore(record) == [{"rule_id": "acl-1"}] and (other.version, other.origin) == (5, "node1")
    assert RuleSetVersion("firewall").restore({}) == [] and KINDS == ("acl", "firewall")


STAMPS = st.lists(st.tuples(st.integers(1, 6), st.sampled_from(["node1", "node2", "node3"])), min_size=1,
                  max_size=8, unique=True)


@settings(max_examples=80, deadline=None)
@given(stamps=STAMPS, data=st.data())
def test_replicas_converge_whatever_order_they_see_the_sets_in(stamps, data) -> None:
    """Every replica ends with the set of the greatest stamp, whichever order the pushes arrive in."""
    sets = {s: [{"rule_id": f"acl-{i + 1}", "source": f"10.{i}.0.0/16", "destination": "*", "action": "DENY",
                 "priority": i}] for i, s in enumerate(stamps)}
    finals = []
    for _ in range(3):
        order = data.draw(st.permutations(stamps))
        acl, version = Acl(), RuleSetVersion("acl")
        for stamp in order:
            if version.newer(*stamp):
                apply_acl_rules(acl, sets[stamp])
                version.adopt(*stamp)
        finals.append(((version.version, version.origin), acl.to_dicts()))
    best = max(stamps)
    assert all(f == (best, sets[best]) for f in finals)


def test_apply_acl_rules_makes_the_acl_hold_exactly_the_set() -> None:
    acl = Acl()
    keep = acl.add("10.0.0.0/8", "node1", "DENY", 5)
    acl.add("192.168.0.0/16")
    incoming = [keep.to_dict(), {"rule_id": "acl-7", "source": "172.16.0.0/12", "destination": "*",
                                 "action": "ALLOW", "priority": 1}]
    apply_acl_rules(acl, incoming)
    assert acl.to_dicts() == sorted(incoming, key=lambda r: r["priority"])
    assert acl.rules()[1] is keep  # rules on both sides are left alone
    assert acl.add("10.1.0.0/16").rule_id == "acl-8"  # local ids continue past the replicated ones
    with pytest.raises(InvalidRuleError):
        apply_acl_rules(acl, [{"rule_id": "acl-9", "source": "nope"}])


def test_apply_firewall_rules_keeps_the_origin_ids() -> None:
    fw = Firewall()
    apply_firewall_rules(fw, default_firewall_rules(["TCP", "QUIC"], 8))
    assert [(r["id"], r["type"]) for r in fw.to_dicts()] == [("fw-1", "protocol_filter"), ("fw-2", "connection_limit")]
    apply_firewall_rules(fw, [fw.to_dicts()[1], {"id": "fw-9", "type": "rate_limit", "threshold": 5}])
    assert [r["id"] for r in fw.to_dicts()] == ["fw-2", "fw-9"] and fw.filters_messages
    assert fw.add_rule({"type": "cidr_block", "cidrs": ["10.0.0.0/8"]}).rule_id == "fw-10"
    with pytest.raises(ValueError):
        apply_firewall_rules(fw, [{"id": "fw-x", "type": "rate_limit", "threshold": 5}])
    with pytest.raises(KeyError):
        apply_firewall_rules(fw, [{"type": "rate_limit", "threshold": 5}])


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(1, 40), min_size=1, max_size=12, unique=True), data=st.data())
def test_replicated_firewall_ids_never_collide_with_local_ones(ids: list[int], data) -> None:
    fw = Firewall()
    local = [fw.add_rule({"type": "rate_limit", "threshold": 1}).rule_id for _ in range(data.draw(st.integers(0, 5)))]
    apply_firewall_rules(fw, [{"id": f"fw-{i}", "type": "rate_limit", "threshold": 1} for i in ids])
    fresh = fw.add_rule({"type": "rate_limit", "threshold": 1}).rule_id
    assert int(fresh[3:]) > max(ids + [int(r[3:]) for r in local])


def _key(key_id: int) -> bytes:
    return hashlib.sha256(b"%d" % key_id).digest()[:KEY_SIZE]


def _ring(ids: list[int], primary: int) -> KeyRing:
    ring = KeyRing()
    for kid in sorted(ids):
        ring.add(_key(kid), float(kid), key_id=kid, make_primary=kid == primary)
    return ring


RINGS = st.lists(st.integers(1, 30), min_size=1, max_size=8, unique=True).flatmap(
    lambda ids: st.tuples(st.just(ids), st.sampled_from(ids)))


@settings(max_examples=100, deadline=None)
@given(a=RINGS, b=RINGS)
def test_key_ring_merge_is_a_union_with_the_newest_primary(a, b) -> None:
    (ids_a, pa), (ids_b, pb) = a, b
    ab, ba = _ring(ids_a, pa), _ring(ids_b, pb)
    changed, conflicts = ab.merge(_ring(ids_b, pb))
    ba.merge(_ring(ids_a, pa))
    assert conflicts == []
    assert ab.key_ids() == ba.key_ids() == sorted(set(ids_a) | set(ids_b))  # keys are only ever added
    assert ab.primary.key_id == ba.primary.key_id == max(pa, pb)  # commutative
    assert changed == (set(ids_b) - set(ids_a) != set() or pb > pa)
    assert ab.merge(_ring(ids_b, pb)) == (False, [])  # idempotent


def test_key_ring_merge_reports_a_conflicting_key_and_keeps_its_own() -> None:
    mine, theirs = _ring([1, 2], 2), KeyRing()
    theirs.add(b"\x01" * KEY_SIZE, 0.0, key_id=2)
    theirs.add(_key(3), 0.0, key_id=3, make_primary=True)
    changed, conflicts = mine.merge(theirs)
    assert changed and [kid for kid, _ in conflicts] == [2] and "different key" in conflicts[0][1]
    assert mine.get(2).key == _key(2) and mine.primary.key_id == 3
    assert mine.key_ids() == [1, 2, 3]
