"""Network access control lists (NETWORKING-051).

Theory of operation
-------------------
An ordered rule list evaluated first-match-wins, like AWS network ACL rule numbers and iptables chains:
rules are sorted by ``priority`` ascending (a LOWER number is evaluated FIRST), ties broken by insertion
order (older first). A rule matches when the connection's source address lies in the rule's CIDR and the
rule's destination is the destination node id or ``"*"``. The first matching rule's action decides; when
none matches, ``AclConfig.default_action`` decides (ALLOW by default so a fresh cluster works; set DENY
for an allow-list). IPv4-mapped IPv6 sources are folded to IPv4 (see ``addresses``).

Sans-I/O: pure data in, ``AclDecision`` out.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rustyray.records import record
from rustyray.security.addresses import IPAddress, IPNetwork, parse_cidr, parse_ip
from rustyray.security.errors import InvalidRuleError

__all__ = ["Acl", "AclAction", "AclConfig", "AclDecision", "AclRule"]

DEFAULT_PRIORITY = 100


class AclAction(enum.Enum):
    ALLOW = "ALLOW"
    DENY = "DENY"

    @classmethod
    def parse(cls, value: object, field: str = "action") -> AclAction:
        if isinstance(value, AclAction):
            return value
        try:
            return cls(str(value).upper())
        except ValueError as exc:
            raise InvalidRuleError(f"{field}: expected ALLOW or DENY, got {value!r}") from exc


@dataclass(frozen=True)
class AclConfig:
    # Action when no rule matches. ALLOW keeps a fresh cluster reachable; DENY turns the ACL into an allow-list.
    default_action: AclAction = AclAction.ALLOW
    # Upper bound on the number of rules (count); protects the per-connection check from unbounded work.
    max_rules: int = 10_000

    def validate(self) -> None:
        if not isinstance(self.default_action, AclAction):
            raise ValueError(f"default_action: expected AclAction, got {self.default_action!r}")
        if self.max_rules < 1:
            raise ValueError(f"max_rules: must be >= 1, got {self.max_rules}")


@dataclass(frozen=True)
class AclRule:
    rule_id: str  # "acl-<n>"
    source: IPNetwork
    destination: str  # node id or "*"
    action: AclAction
    priority: int  # lower = evaluated first
    seq: int  # insertion order, the tie-breaker

    def matches(self, source_ip: object, destination: str) -> bool:
        return self._matches(parse_ip(source_ip), destination)

    def _matches(self, addr: IPAddress, destination: str) -> bool:
        return addr.version == self.source.version and addr in self.source and self.destination in ("*", destination)

    def to_dict(self) -> dict[str, object]:
        return record(self, exclude=("seq",), source=str(self.source))


@dataclass(frozen=True)
class AclDecision:
    allowed: bool
    rule_id: str | None  # the matching rule, None when the default action applied
    action: AclAction
    reason: str

    def to_dict(self) -> dict[str, object]:
        return record(self)


def _parse_priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRuleError(f"priority: expected an integer, got {value!r}")
    if not 0 <= value <= 2**31 - 1:
        raise InvalidRuleError(f"priority: must be in [0, 2**31-1], got {value}")
    return value


def _parse_destination(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRuleError(f"destination: expected a node id or '*', got {value!r}")
    return value.strip()


class Acl:
    def __init__(self, config: AclConfig | None = None) -> None:
        self.config = config or AclConfig()
        self.config.validate()
        self._rules: list[AclRule] = []  # kept sorted by (priority, seq)
        self._next_id = 1  # ids are never reused, even after remove
        self._seq = itertools.count()

    def add(
        self,
        source: str,
        destination: str = "*",
        action: AclAction | str = AclAction.ALLOW,
        priority: int = DEFAULT_PRIORITY,
        *,
        rule_id: str | None = None,
    ) -> AclRule:
        """Validate and insert a rule; raises ``InvalidRuleError`` (a ValueError) naming the bad field."""
        if len(self._rules) >= self.config.max_rules:
            raise InvalidRuleError(f"rule: the ACL already holds max_rules={self.config.max_rules} rules")
        net = parse_cidr(source, "source")
        dest = _parse_destination(destination)
        act = AclAction.parse(action)
        prio = _parse_priority(priority)
        if rule_id is None:
            rule_id = f"acl-{self._next_id}"
        else:
            if not rule_id.startswith("acl-") or not rule_id[4:].isdigit():
                raise InvalidRuleError(f"rule_id: expected 'acl-<n>', got {rule_id!r}")
            if any(r.rule_id == rule_id for r in self._rules):
                raise InvalidRuleError(f"rule_id: {rule_id} already exists")
        n = int(rule_id[4:])
        self._next_id = max(self._next_id, n + 1)
        rule = AclRule(rule_id, net, dest, act, prio, next(self._seq))
        self._rules.append(rule)
        self._rules.sort(key=lambda r: (r.priority, r.seq))
        return rule

    def add_from_dict(self, body: Mapping[str, object]) -> AclRule:
        """From the NETWORKING-051 request ``rule`` object: source, destination, action, priority."""
        if "source" not in body:
            raise InvalidRuleError("source: required")
        return self.add(
            body["source"],  # type: ignore[arg-type]
            body.get("destination", "*"),  # type: ignore[arg-type]
            body.get("action", "ALLOW"),  # type: ignore[arg-type]
            body.get("priority", DEFAULT_PRIORITY),  # type: ignore[arg-type]
        )

    def remove(self, rule_id: str) -> bool:
        """Remove a rule; False when there is no such rule."""
        before = len(self._rules)
        self._rules = [r for r in self._rules if r.rule_id != rule_id]
        return len(self._rules) != before

    def rules(self) -> list[AclRule]:
        """Rules in evaluation order."""
        return list(self._rules)

    def to_dicts(self) -> list[dict[str, object]]:
        return [r.to_dict() for r in self._rules]

    @classmethod
    def from_dicts(cls, rules: Iterable[Mapping[str, object]], config: AclConfig | None = None) -> Acl:
        """Rebuild an ACL from ``to_dicts`` output, keeping rule ids and evaluation order."""
        acl = cls(config)
        for d in rules:
            acl.add(
                d["source"],  # type: ignore[arg-type]
                d.get("destination", "*"),  # type: ignore[arg-type]
                d.get("action", "ALLOW"),  # type: ignore[arg-type]
                d.get("priority", DEFAULT_PRIORITY),  # type: ignore[arg-type]
                rule_id=d.get("rule_id"),  # type: ignore[arg-type]
            )
        return acl

    def check(self, source_ip: object, destination: str) -> AclDecision:
        """Decide whether ``source_ip`` may reach node ``destination``. Malformed IPs raise InvalidRuleError."""
        addr = parse_ip(source_ip)
        for rule in self._rules:
            if rule._matches(addr, destination):
                return AclDecision(
                    rule.action is AclAction.ALLOW,
                    rule.rule_id,
                    rule.action,
                    f"matched {rule.rule_id} ({rule.source} -> {rule.destination}, priority {rule.priority})",
                )
        default = self.config.default_action
        reason = f"no rule matched; default {default.value}"
        return AclDecision(default is AclAction.ALLOW, None, default, reason)
