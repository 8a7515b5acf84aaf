from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.security.acl import Acl, AclAction, AclConfig
from rustyray.security.errors import InvalidRuleError

NODES = ["node1", "node2", "node3"]


def _reference(rules: list[tuple[str, str, str, int]], default: str, src: str, dest: str):
    """Dumb model: integer masks, stable sort by priority, first match wins."""
    a = ipaddress.ip_address(src)
    if a.version == 6 and a.ipv4_mapped is not None:
        a = a.ipv4_mapped
    width = 32 if a.version == 4 else 128
    order = sorted(range(len(rules)), key=lambda i: rules[i][3])  # stable: insertion order breaks ties
    for i in order:
        cidr, rdest, action, _ = rules[i]
        base, plen = cidr.split("/")
        b = ipaddress.ip_address(base)
        if b.version != a.version or rdest not in ("*", dest):
            continue
        mask = ((1 << width) - 1) ^ ((1 << (width - int(plen))) - 1)
        if int(a) & mask == int(b) & mask:
            return f"acl-{i + 1}", action
    return None, default


@st.composite
def v4_rule(draw):
    plen = draw(st.integers(0, 32))
    addr = draw(st.sampled_from(["10.0.0.0", "10.0.1.0", "10.1.0.0", "192.168.0.0", "0.0.0.0"]))
    net = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
    return (
        str(net),
        draw(st.sampled_from([*NODES, "*"])),
        draw(st.sampled_from(["ALLOW", "DENY"])),
        draw(st.sampled_from([1, 50, 100, 100, 200])),
    )


@st.composite
def v6_rule(draw):
    plen = draw(st.integers(0, 128))
    addr = draw(st.sampled_from(["fd00::", "fd00:1::", "2001:db8::", "::"]))
    net = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
    return (str(net), draw(st.sampled_from([*NODES, "*"])), draw(st.sampled_from(["ALLOW", "DENY"])),
            draw(st.integers(0, 3)))


SOURCES = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.sampled_from(["10.0.1.7", "10.0.0.1", "10.1.2.3", "192.168.0.9", "::ffff:10.0.1.7"]),
    st.sampled_from(["fd00::1", "fd00:1::5", "2001:db8::1", "::1"]),
)


@settings(max_examples=150, deadline=None)
@given(
    rules=st.lists(st.one_of(v4_rule(), v6_rule()), max_size=12),
    default=st.sampled_from(["ALLOW", "DENY"]),
    src=SOURCES,
    dest=st.sampled_from(NODES),
)
def test_matches_reference(rules, default, src, dest) -> None:
    acl = Acl(AclConfig(default_action=AclAction(default)))
    for cidr, rdest, action, prio in rules:
        acl.add(cidr, rdest, action, prio)
    got = acl.check(src, dest)
    rule_id, action = _reference(rules, default, src, dest)
    assert (got.rule_id, got.action.value, got.allowed) == (rule_id, action, action == "ALLOW")
    # serialisation round trip preserves decisions
    assert Acl.from_dicts(acl.to_dicts(), acl.config).check(src, dest) == got


def test_lower_priority_number_wins_and_ties_keep_insertion_order() -> None:
    acl = Acl()
    deny = acl.add("10.0.1.0/24", "node1", "DENY", 200)
    allow = acl.add("10.0.0.0/8", "*", "ALLOW", 100)
    assert [r.rule_id for r in acl.rules()] == [allow.rule_id, deny.rule_id]
    assert acl.check("10.0.1.5", "node1").rule_id == allow.rule_id
    acl2 = Acl()
    first = acl2.add("10.0.0.0/8", "*", "DENY", 100)
    acl2.add("10.0.1.0/24", "*", "ALLOW", 100)
    d = acl2.check("10.0.1.5", "node1")
    assert (d.rule_id, d.allowed, d.action) == (first.rule_id, False, AclAction.DENY)


def test_seed_example_and_default_action() -> None:
    acl = Acl()
    rule = acl.add_from_dict({"source": "10.0.1.0/24", "destination": "node1", "action": "ALLOW", "priority": 100})
    assert rule.rule_id == "acl-1"
    assert acl.check("10.0.1.9", "node1").rule_id == "acl-1"
    fresh = acl.check("172.16.0.1", "node1")
    assert fresh.allowed and fresh.rule_id is None and "default" in fresh.reason
    strict = Acl(AclConfig(default_action=AclAction.DENY))
    assert not strict.check("127.0.0.1", "node1").allowed


def test_remove_and_ids_not_reused() -> None:
    acl = Acl()
    a = acl.add("10.0.0.0/8", "*", "DENY")
    assert not acl.check("10.1.1.1", "node2").allowed
    assert acl.remove(a.rule_id) and not acl.remove(a.rule_id)
    assert acl.check("10.1.1.1", "node2").allowed
    assert acl.add("10.0.0.0/8").rule_id == "acl-2"
    rebuilt = Acl.from_dicts(acl.to_dicts())
    assert rebuilt.add("::/0").rule_id == "acl-3"


def test_ipv4_mapped_sources_match_ipv4_rules() -> None:
    acl = Acl(AclConfig(default_action=AclAction.DENY))
    acl.add("127.0.0.0/8", "*", "ALLOW")
    assert acl.check("::ffff:127.0.0.1", "node1").allowed
    assert not acl.check("::1", "node1").allowed
    assert acl.add("::ffff:10.0.0.0/104").source == ipaddress.ip_network("10.0.0.0/8")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source": "10.0.1.0/33"}, "source"),
        ({"source": "10.0.1.5/24"}, "source"),
        ({"source": "not-an-ip"}, "source"),
        ({"source": 12}, "source"),
        ({}, "source"),
        ({"source": "10.0.0.0/8", "action": "MAYBE"}, "action"),
        ({"source": "10.0.0.0/8", "priority": "high"}, "priority"),
        ({"source": "10.0.0.0/8", "priority": -1}, "priority"),
        ({"source": "10.0.0.0/8", "destination": ""}, "destination"),
    ],
)
def test_malformed_rules_name_the_field(body: dict, field: str) -> None:
    acl = Acl()
    with pytest.raises(ValueError, match=f"^{field}:"):
        acl.add_from_dict(body)
    assert acl.rules() == []


def test_bad_source_ip_and_config() -> None:
    with pytest.raises(InvalidRuleError, match="source_ip"):
        Acl().check("nope", "node1")
    with pytest.raises(ValueError, match="max_rules"):
        AclConfig(max_rules=0).validate()
    acl = Acl(AclConfig(max_rules=1))
    acl.add("10.0.0.0/8")
    with pytest.raises(InvalidRuleError):
        acl.add("11.0.0.0/8")
