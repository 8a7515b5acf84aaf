"""Replicated security rule sets: versioning, and merging a whole set into the live ACL or firewall.

Theory of operation
-------------------
The ACL and the firewall rule set are each replicated *whole* as a last-writer-wins register: every
accepted change carries ``(version, origin)``, a local change takes ``version + 1`` with this node as
origin, and a replica adopts an incoming set only when its ``(version, origin)`` is greater than the one
it holds (compared as a tuple, so two concurrent changes with one version resolve the same way on every
node: the greater origin wins). A node that missed changes converges as soon as it is sent the current
set, whatever it held before.

Adopting a set is a merge into the live core: rules the incoming set lacks are removed, rules it adds are
inserted under the ids their origin gave them, and rules present on both sides are kept as they are
(rules are immutable: a change is a delete plus an add, so an id always names the same rule).

Sans-I/O: persistence and transport live in ``replication_adapter``; this module only decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rustyray.security.acl import Acl
from rustyray.security.firewall import Firewall

__all__ = ["KINDS", "RuleSetVersion", "apply_acl_rules", "apply_firewall_rules", "default_firewall_rules"]

#: The replicated rule sets, by kind (the ``kind`` field of the sync message and of the persisted record).
KINDS = ("acl", "firewall")


@dataclass
class RuleSetVersion:
    """Where one replicated rule set stands: the ``(version, origin)`` of the last change it accepted."""

    kind: str
    version: int = 0  # 0: never changed anywhere (the configured defaults)
    origin: str = ""  # node id that made the change

    def newer(self, version: int, origin: str) -> bool:
        """True when a set stamped ``(version, origin)`` supersedes the one held."""
        return (version, origin) > (self.version, self.origin)

    def commit(self, origin: str) -> int:
        """A local change by node ``origin``: the next version, with ``origin`` as its author."""
        self.version += 1
        self.origin = origin
        return self.version

    def adopt(self, version: int, origin: str) -> None:
        """An incoming set was merged: hold its stamp."""
        self.version, self.origin = version, origin

    def record(self, rules: list[dict[str, Any]]) -> dict[str, Any]:
        """The persisted form: the stamp and the whole set."""
        return {"version": self.version, "origin": self.origin, "rules": rules}

    def restore(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Take the stamp of a persisted ``record``; returns its rules."""
        self.version, self.origin = int(record.get("version", 0)), str(record.get("origin", ""))
        return list(record.get("rules", []))


def default_firewall_rules(protocols: Sequence[str], max_connections: int) -> list[dict[str, Any]]:
    """The firewall set of a node that has never seen a change: a protocol filter and a connection limit."""
    return [
        {"id": "fw-1", "type": "protocol_filter", "allowed_protocols": list(protocols)},
        {"id": "fw-2", "type": "connection_limit", "max_connections": max_connections},
    ]


def _hold_exactly(live: Callable[[], list[Any]], wanted: dict[str, dict[str, Any]], remove: Callable[[str], Any],
                  add: Callable[[str, dict[str, Any]], Any]) -> None:
    """Remove the live rules ``wanted`` lacks, then add the ones it has that are not live (by rule id)."""
    for rule in live():
        if rule.rule_id not in wanted:
            remove(rule.rule_id)
    have = {r.rule_id for r in live()}
    for rid, r in wanted.items():
        if rid not in have:
            add(rid, r)


def apply_acl_rules(acl: Acl, rules: list[dict[str, Any]]) -> None:
    """Make ``acl`` hold exactly ``rules`` (``Acl.to_dicts`` form, keyed by ``rule_id``).

    Raises ``InvalidRuleError`` / ``KeyError`` / ``ValueError`` on a malformed rule (the set may then be
    partly applied; the next accepted set repairs it).
    """
    def add(rid: str, r: dict[str, Any]) -> None:
        acl.add(r["source"], r.get("destination", "*"), r.get("action", "ALLOW"), r.get("priority", 100), rule_id=rid)

    _hold_exactly(acl.rules, {r["rule_id"]: r for r in rules}, acl.remove, add)


def apply_firewall_rules(firewall: Firewall, rules: list[dict[str, Any]]) -> None:
    """Make ``firewall`` hold exactly ``rules`` (``Firewall.to_dicts`` form, keyed by ``id``); errors as above."""
    _hold_exactly(firewall.rules, {r["id"]: r for r in rules}, firewall.remove_rule, firewall.add_replica)
