"""Admission verdicts: the ACL and the firewall composed into one decision per connection and per message.

Theory of operation
-------------------
A connection is decided once, before its hello, from its source IP and this node's id:

1. the ACL (first match wins, see ``acl``): a DENY refuses with ``"ACL: <reason>"``;
2. the firewall's per-message checks (CIDR blocks, rate limits): a connection attempt costs a token too;
3. the firewall's per-connection checks (protocol filter, connection limit).

The first refusal names its rule and is counted by reason (``acl_denied``, ``firewall_<reason>``); an
admitted connection holds a firewall connection slot until the adapter reports it closed. A rule change
applies to connections already open as well: ``recheck`` re-runs the ACL for one of them.

Per inbound message only the firewall's per-message checks run, and not for the control plane:
membership (SWIM, Raft), failure detection (heartbeats, probes), the replication of these very rules and
multiplexed-stream frames (a dropped window update or data chunk would stall or corrupt a stream; streams
have their own flow control). Otherwise a tight limit would get healthy members declared dead, and the
message that lifts the rule could itself be refused.

Refusals the TLS layer makes before admission (fatal alerts, RFC 8446 section 6; a QUIC handshake closed
with CRYPTO_ERROR, RFC 9001 section 4.8) are classified here too, so the adapter only counts them.

Sans-I/O: source addresses, protocol names and ``now`` (monotonic seconds) come in; verdicts go out.
"""

from __future__ import annotations

from collections import Counter

from rustyray.protocol.control import Goodbye, Heartbeat
from rustyray.security.acl import Acl
from rustyray.security.firewall import Firewall, TransportProtocol, Verdict

__all__ = ["CRYPTO_ERROR", "Admission", "is_control_plane", "quic_alert", "tls_alert_refusal"]

CRYPTO_ERROR = 0x100  # QUIC CRYPTO_ERROR base; + TLS alert code (RFC 9001 section 4.8)
_BENIGN_ALERTS = frozenset({0, 90})  # close_notify, user_canceled
_CONTROL_PLANE_MODULES = ("rustyray.membership", "rustyray.health", "rustyray.security", "rustyray.pool",
                          "rustyray.settings")
_control_plane: dict[type, bool] = {}  # message type -> exempt from per-message firewall rules


def is_control_plane(kind: type) -> bool:
    """True for message types the per-message firewall rules never refuse (see the module docstring)."""
    exempt = _control_plane.get(kind)
    if exempt is None:
        exempt = _control_plane[kind] = kind in (Heartbeat, Goodbye) or kind.__module__.startswith(
            _CONTROL_PLANE_MODULES)
    return exempt


def tls_alert_refusal(code: int, name: str) -> str | None:
    """The refusal reason for a TLS alert this node wrote (``tls_<name>``), or None for a benign one."""
    return None if code in _BENIGN_ALERTS else f"tls_{name.lower()}"


def quic_alert(error_code: int, handshake_complete: bool) -> int | None:
    """The TLS alert code of a QUIC close that fails a handshake, else None (not a refusal)."""
    if CRYPTO_ERROR <= error_code < CRYPTO_ERROR + 0x100 and not handshake_complete:
        return error_code - CRYPTO_ERROR
    return None


def _refusal(verdict: Verdict) -> str:
    return f"firewall {verdict.rule_id}: {verdict.detail}"


class Admission:
    """One node's admission decisions over its ACL and firewall, with the refusal counts."""

    def __init__(self, acl: Acl, firewall: Firewall, node_id: str) -> None:
        self.acl = acl
        self.firewall = firewall
        self.node_id = node_id  # the destination every inbound connection is checked against
        self.refusals: Counter[str] = Counter()  # connections refused (or closed), by reason
        self.message_refusals: Counter[str] = Counter()  # inbound messages refused by a firewall rule
        self.admitted = 0  # connections admitted (each held a firewall slot)

    def admit_connection(self, source_ip: str, protocol: str, now: float) -> str | None:
        """None: admitted, and the connection now holds a slot (call ``connection_closed``); else why not."""
        decision = self.acl.check(source_ip, self.node_id)
        if not decision.allowed:
            self.refusals["acl_denied"] += 1
            return f"ACL: {decision.reason}"
        verdict = self.firewall.admit_message(source_ip, now)  # a connection attempt costs a token too
        if verdict.allowed:
            try:
                proto = TransportProtocol(protocol)
            except ValueError:
                proto = TransportProtocol.TCP
            verdict = self.firewall.admit_connection(source_ip, proto, now)
            if verdict.allowed:
                self.admitted += 1
                return None
        assert verdict.reason is not None
        self.refusals[f"firewall_{verdict.reason.value}"] += 1
        return _refusal(verdict)

    def connection_closed(self, source_ip: str) -> None:
        """An admitted connection closed: free its slot."""
        self.firewall.connection_closed(source_ip)

    def recheck(self, source_ip: str) -> str | None:
        """For a connection already open: None while the ACL still admits it, else why it must close."""
        decision = self.acl.check(source_ip, self.node_id)
        if decision.allowed:
            return None
        self.refusals["acl_denied"] += 1
        return f"ACL: {decision.reason}"

    @property
    def filters_messages(self) -> bool:
        """Whether any rule needs a check per inbound message (no rule, no cost per frame)."""
        return self.firewall.filters_messages

    def admit_message(self, kind: type, source_ip: str, now: float) -> str | None:
        """None: deliver an inbound message of type ``kind`` from ``source_ip``; else why it is refused."""
        if is_control_plane(kind) or not source_ip:
            return None
        verdict = self.firewall.admit_message(source_ip, now)
        if verdict.allowed:
            return None
        assert verdict.reason is not None
        self.message_refusals[verdict.reason.value] += 1
        return _refusal(verdict)
