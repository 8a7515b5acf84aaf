"""Admission verdicts (ACL, then the firewall) per connection and per message, on a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.protocol.control import Echo, Heartbeat
from rustyray.security.acl import Acl, AclAction, AclConfig
from rustyray.security.admission import CRYPTO_ERROR, Admission, is_control_plane, quic_alert, tls_alert_refusal
from rustyray.security.firewall import Firewall

A, B = "10.0.0.1", "10.0.0.2"


def _admission(*rules: dict, default: str = "ALLOW") -> Admission:
    fw = Firewall()
    for r in rules:
        fw.add_rule(r)
    return Admission(Acl(AclConfig(default_action=AclAction(default))), fw, "node1")


def test_acl_is_checked_first_and_names_its_reason() -> None:
    adm = _admission({"type": "rate_limit", "threshold": 1})
    rule = adm.acl.add("10.0.0.0/24", "node1", "DENY", 1)
    refusal = adm.admit_connection(A, "TCP", 0.0)
    assert refusal is not None and refusal.startswith("ACL: matched " + rule.rule_id)
    assert adm.refusals == {"acl_denied": 1} and adm.admitted == 0
    assert adm.firewall.admit_message(A, 0.0).allowed  # the firewall never saw it: its one token is still there
    adm.acl.add("10.0.0.2/32", "node2", "DENY", 0)  # another destination
    assert adm.admit_connection(B, "TCP", 0.0) is not None  # still the /24 rule for node1


def test_firewall_connection_checks_and_slots() -> None:
    adm = _admission({"type": "protocol_filter", "allowed_protocols": ["TCP"]},
                     {"type": "connection_limit", "max_connections": 2})
    assert adm.admit_connection(A, "QUIC", 0.0) == "firewall fw-1: QUIC not allowed"
    assert adm.admit_connection(A, "TCP", 0.0) is None
    assert adm.admit_connection(A, "carrier-pigeon", 0.0) is None  # an unknown transport counts as TCP
    refusal = adm.admit_connection(A, "TCP", 0.0)
    assert refusal is not None and refusal.startswith("firewall fw-2:")
    assert adm.admit_connection(B, "TCP", 0.0) is None  # per source
    adm.connection_closed(A)
    assert adm.admit_connection(A, "TCP", 0.0) is None
    assert adm.admitted == 4
    assert adm.refusals == {"firewall_protocol_blocked": 1, "firewall_connection_limit": 1}


def test_a_connection_attempt_costs_a_rate_limit_token() -> None:
    adm = _admission({"type": "rate_limit", "threshold": 2, "burst": 2})
    assert [adm.admit_connection(A, "TCP", 10.0) for _ in range(3)][:2] == [None, None]
    assert adm.refusals == {"firewall_rate_limited": 1}
    assert adm.admit_connection(A, "TCP", 10.5) is None  # one token refilled on the fake clock


def test_recheck_of_open_connections() -> None:
    adm = _admission()
    assert adm.recheck(A) is None
    adm.acl.add("10.0.0.0/8", "*", "DENY")
    assert adm.recheck(A) == f"ACL: {adm.acl.check(A, 'node1').reason}"
    assert adm.refusals["acl_denied"] == 1


def test_messages_only_while_a_rule_filters_and_never_the_control_plane() -> None:
    adm = _admission()
    assert not adm.filters_messages
    adm.firewall.add_rule({"type": "rate_limit", "threshold": 1, "burst": 1})
    assert adm.filters_messages
    assert adm.admit_message(Echo, A, 0.0) is None
    refusal = adm.admit_message(Echo, A, 0.0)
    assert refusal is not None and "exceeds 1 msg/s" in refusal
    assert all(adm.admit_message(Heartbeat, A, 0.0) is None for _ in range(5))
    assert adm.admit_message(Echo, "", 0.0) is None  # no source address: nothing to rate by
    assert adm.message_refusals == {"rate_limited": 1}


@pytest.mark.parametrize(("module", "exempt"), [
    ("rustyray.membership.swim.messages", True), ("rustyray.health.phi", True), ("rustyray.security.x", True),
    ("rustyray.pool.mux", True), ("rustyray.routing.messages", False), ("app", False),
])
def test_control_plane_by_module(module: str, exempt: bool) -> None:
    kind = type("Probe", (), {"__module__": module})
    assert is_control_plane(kind) is exempt


def test_tls_and_quic_alert_classification() -> None:
    assert tls_alert_refusal(48, "UNKNOWN_CA") == "tls_unknown_ca"
    assert tls_alert_refusal(0, "CLOSE_NOTIFY") is None and tls_alert_refusal(90, "USER_CANCELED") is None
    assert quic_alert(CRYPTO_ERROR + 42, handshake_complete=False) == 42
    assert quic_alert(CRYPTO_ERROR + 42, handshake_complete=True) is None
    assert quic_alert(0, handshake_complete=False) is None and quic_alert(CRYPTO_ERROR + 0x100, False) is None


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["open", "close"]), st.sampled_from([A, B]),
                              st.sampled_from(["TCP", "QUIC"])), max_size=60),
       limit=st.integers(1, 4))
def test_every_attempt_is_counted_once_and_slots_stay_within_the_limit(ops, limit: int) -> None:
    adm = _admission({"type": "protocol_filter", "allowed_protocols": ["TCP"]},
                     {"type": "connection_limit", "max_connections": limit})
    held = {A: 0, B: 0}
    attempts = 0
    for t, (op, ip, proto) in enumerate(ops):
        if op == "open":
            attempts += 1
            if adm.admit_connection(ip, proto, float(t)) is None:
                held[ip] += 1
        elif held[ip]:
            held[ip] -= 1
            adm.connection_closed(ip)
        assert held[ip] == adm.firewall.open_connections(ip) <= limit
    assert adm.admitted + sum(adm.refusals.values()) == attempts
