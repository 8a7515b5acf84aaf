from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.security.firewall import Firewall, FirewallConfig, RefusalReason, TransportProtocol

A, B = "10.0.0.1", "10.0.0.2"


def test_seed_rule_listing() -> None:
    fw = Firewall()
    fw.add_rule({"type": "rate_limit", "threshold": 1000})
    fw.add_rule({"type": "geo_blocking", "blocked_countries": ["XX"], "cidrs": ["203.0.113.0/24"]})
    fw.add_rule({"type": "protocol_filter", "allowed_protocols": ["TCP", "QUIC"]})
    rules = fw.to_dicts()
    assert rules[0] == {"id": "fw-1", "type": "rate_limit", "threshold": 1000.0, "burst": 1000.0}
    assert rules[1] == {
        "id": "fw-2",
        "type": "geo_blocking",
        "cidrs": ["203.0.113.0/24"],
        "blocked_countries": ["XX"],
    }
    assert rules[2] == {"id": "fw-3", "type": "protocol_filter", "allowed_protocols": ["QUIC", "TCP"]}
    assert fw.remove_rule("fw-2") and not fw.remove_rule("fw-2")
    assert fw.add_rule({"type": "cidr_block", "cidrs": ["::1/128"]}).rule_id == "fw-4"


def test_rate_limit_on_fake_clock() -> None:
    fw = Firewall()
    rule = fw.add_rule({"type": "rate_limit", "threshold": 10})  # burst defaults to 10
    now = 100.0
    assert all(fw.admit_message(A, now).allowed for _ in range(10))
    refused = fw.admit_message(A, now)
    assert (refused.allowed, refused.rule_id, refused.reason) == (False, rule.rule_id, RefusalReason.RATE_LIMITED)
    assert fw.admit_message(B, now).allowed  # per source
    assert not fw.admit_message(A, now + 0.05).allowed  # half a token refilled
    assert fw.admit_message(A, now + 0.1).allowed  # one token
    assert not fw.admit_message(A, now + 0.1).allowed
    assert sum(fw.admit_message(A, now + 60).allowed for _ in range(20)) == 10  # burst caps the refill
    assert fw.refusals[RefusalReason.RATE_LIMITED] == 13
    assert fw.stats()["refusals"]["rate_limited"] == 13


@settings(max_examples=60, deadline=None)
@given(
    rate=st.integers(1, 50),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 0.5, allow_nan=False), min_size=1, max_size=120),
)
def test_rate_limit_never_exceeds_bucket_bound(rate: int, burst: int, gaps: list[float]) -> None:
    """Over any window [t0, t1], admitted <= burst + rate * (t1 - t0)."""
    fw = Firewall()
    fw.add_rule({"type": "rate_limit", "threshold": rate, "burst": burst})
    t, admitted_at = 0.0, []
    for gap in gaps:
        t += gap
        if fw.admit_message(A, t).allowed:
            admitted_at.append(t)
    for i in range(len(admitted_at)):
        for j in range(i, len(admitted_at)):
            assert j - i + 1 <= burst + rate * (admitted_at[j] - admitted_at[i]) + 1e-6


def test_two_rate_limits_spend_tokens_only_when_both_admit() -> None:
    fw = Firewall()
    fw.add_rule({"type": "rate_limit", "threshold": 100, "burst": 5})
    fw.add_rule({"type": "rate_limit", "threshold": 1, "burst": 2})
    assert [fw.admit_message(A, 0.0).allowed for _ in range(4)] == [True, True, False, False]
    assert fw.admit_message(A, 0.0).rule_id == "fw-2"
    # fw-1 was charged only for the 2 admitted messages, so 3 of its 5 remain after fw-2 refills
    assert [fw.admit_message(A, 10.0).allowed for _ in range(3)] == [True, True, False]


def test_connection_limit_and_close() -> None:
    fw = Firewall()
    fw.add_rule({"type": "connection_limit", "max_connections": 2})
    assert fw.admit_connection(A, "TCP", 0).allowed and fw.admit_connection(A, "QUIC", 0).allowed
    v = fw.admit_connection(A, TransportProtocol.TCP, 0)
    assert (v.allowed, v.reason, v.rule_id) == (False, RefusalReason.CONNECTION_LIMIT, "fw-1")
    assert fw.open_connections(A) == 2
    assert fw.admit_connection(B, "TCP", 0).allowed
    fw.connection_closed(A)
    assert fw.admit_connection(A, "TCP", 1).allowed
    assert fw.admit_connection("::ffff:10.0.0.2", "TCP", 1).allowed  # same source as B, mapped form
    assert not fw.admit_connection(B, "TCP", 1).allowed
    with pytest.raises(AssertionError):
        fw.connection_closed("10.9.9.9")


def test_protocol_filter_and_cidr_blocks() -> None:
    fw = Firewall()
    fw.add_rule({"type": "protocol_filter", "allowed_protocols": ["TCP"]})
    fw.add_rule({"type": "cidr_block", "cidrs": ["10.0.0.0/30", "fd00::/8"]})
    v = fw.admit_connection("192.0.2.1", "QUIC", 0)
    assert (v.allowed, v.reason, v.rule_id) == (False, RefusalReason.PROTOCOL_BLOCKED, "fw-1")
    assert fw.admit_connection("192.0.2.1", "TCP", 0).allowed
    for src in (A, "fd00::7"):
        v = fw.admit_connection(src, "TCP", 0)
        assert (v.allowed, v.reason, v.rule_id) == (False, RefusalReason.CIDR_BLOCKED, "fw-2")
        assert not fw.admit_message(src, 0).allowed
    assert fw.admit_message("10.0.0.4", 0).allowed
    assert fw.refusals == {RefusalReason.PROTOCOL_BLOCKED: 1, RefusalReason.CIDR_BLOCKED: 4}
    assert fw.open_connections(A) == 0  # refused connections are not counted


def test_tracked_sources_are_bounded() -> None:
    fw = Firewall(FirewallConfig(max_tracked_sources=4))
    fw.add_rule({"type": "rate_limit", "threshold": 1, "burst": 1})
    for i in range(50):
        assert fw.admit_message(f"10.1.0.{i}", 0.0).allowed
    assert fw.stats()["tracked_sources"]["fw-1"] <= 4


def test_clock_stepping_back_mints_no_tokens() -> None:
    fw = Firewall()
    fw.add_rule({"type": "rate_limit", "threshold": 1, "burst": 1})
    assert fw.admit_message(A, 10.0).allowed
    assert not fw.admit_message(A, 5.0).allowed
    assert not fw.admit_message(A, 10.5).allowed
    assert fw.admit_message(A, 11.0).allowed


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "nope"}, "type"),
        ({"type": "rate_limit"}, "threshold"),
        ({"type": "rate_limit", "threshold": -1}, "threshold"),
        ({"type": "rate_limit", "threshold": 5, "burst": 0}, "burst"),
        ({"type": "protocol_filter", "allowed_protocols": ["UDP"]}, "allowed_protocols"),
        ({"type": "protocol_filter", "allowed_protocols": "TCP"}, "allowed_protocols"),
        ({"type": "connection_limit", "max_connections": 0}, "max_connections"),
        ({"type": "cidr_block", "cidrs": ["10.0.0.0/99"]}, "cidrs"),
        ({"type": "geo_blocking", "cidrs": ["10.0.0.0/8"]}, "blocked_countries"),
    ],
)
def test_malformed_rules_name_the_field(body: dict, field: str) -> None:
    fw = Firewall()
    with pytest.raises(ValueError, match=f"^{field}:"):
        fw.add_rule(body)
    assert fw.rules() == []
    assert fw.add_rule({"type": "cidr_block", "cidrs": []}).rule_id == "fw-1"  # failed adds use no id
