"""Application-level firewall for node connections and messages (NETWORKING-052).

Theory of operation
-------------------
A sans-I/O filter the transport consults at two points:

* ``admit_connection(source_ip, protocol, now)`` when a peer connects. Checks, in order: CIDR blocks
  (``cidr_block`` / ``geo_blocking``), ``protocol_filter`` (TCP / QUIC), then ``connection_limit`` (max
  concurrent connections per source address). An admitted connection counts against its source until
  the transport calls ``connection_closed(source_ip)``.
* ``admit_message(source_ip, now)`` for every inbound message. Checks CIDR blocks, then every
  ``rate_limit`` rule: a token bucket per source (Turner 1986; the GCRA of ITU-T I.371) holding at most
  ``burst`` tokens (default: one second's worth, ``threshold``), refilled at ``threshold`` tokens per second.
  A message costs one token from every rate-limit rule or is refused without spending any.

The first failing check refuses and names its rule; refusals are counted per ``RefusalReason``. Geo
blocking has no built-in IP-to-country database: the operator supplies the CIDRs for the countries, and
``blocked_countries`` is a label carried for display. Time is passed in (seconds, any monotonic origin);
per-source bucket state is bounded by ``FirewallConfig.max_tracked_sources`` (idle, refilled buckets are
dropped first; they are indistinguishable from fresh ones).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rustyray.records import record
from rustyray.security.addresses import IPAddress, IPNetwork, parse_cidr, parse_ip
from rustyray.security.errors import InvalidRuleError

__all__ = [
    "CidrBlockRule",
    "ConnectionLimitRule",
    "Firewall",
    "FirewallConfig",
    "FirewallRule",
    "ProtocolFilterRule",
    "RateLimitRule",
    "RefusalReason",
    "RuleType",
    "TransportProtocol",
    "Verdict",
]


class TransportProtocol(enum.Enum):
    TCP = "TCP"
    QUIC = "QUIC"


class RuleType(enum.Enum):
    RATE_LIMIT = "rate_limit"
    PROTOCOL_FILTER = "protocol_filter"
    CONNECTION_LIMIT = "connection_limit"
    CIDR_BLOCK = "cidr_block"
    GEO_BLOCKING = "geo_blocking"


class RefusalReason(enum.Enum):
    RATE_LIMITED = "rate_limited"
    PROTOCOL_BLOCKED = "protocol_blocked"
    CONNECTION_LIMIT = "connection_limit"
    CIDR_BLOCKED = "cidr_blocked"


@dataclass(frozen=True)
class FirewallConfig:
    # Per-source token buckets kept per rate-limit rule (count). Beyond it, full buckets are dropped, then
    # the least recently used ones (a dropped source starts again with a full bucket).
    max_tracked_sources: int = 65_536

    def validate(self) -> None:
        if self.max_tracked_sources < 1:
            raise ValueError(f"max_tracked_sources: must be >= 1, got {self.max_tracked_sources}")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    rule_id: str | None = None  # the refusing rule
    reason: RefusalReason | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return record(self)


ALLOW = Verdict(True)
# Float slack so that e.g. 100.1 - 100.0 (= 0.0999...) at 10 msg/s still refills one whole token.
_EPSILON = 1e-9


@dataclass(frozen=True)
class RateLimitRule:
    rule_id: str
    threshold: float  # messages per second per source
    burst: float  # bucket capacity, messages

    type = RuleType.RATE_LIMIT

    def to_dict(self) -> dict[str, object]:
        return {"id": self.rule_id, "type": self.type.value, "threshold": self.threshold, "burst": self.burst}


@dataclass(frozen=True)
class ProtocolFilterRule:
    rule_id: str
    allowed_protocols: frozenset[TransportProtocol]

    type = RuleType.PROTOCOL_FILTER

    def to_dict(self) -> dict[str, object]:
        protos = sorted(p.value for p in self.allowed_protocols)
        return {"id": self.rule_id, "type": self.type.value, "allowed_protocols": protos}


@dataclass(frozen=True)
class ConnectionLimitRule:
    rule_id: str
    max_connections: int  # concurrent connections per source address

    type = RuleType.CONNECTION_LIMIT

    def to_dict(self) -> dict[str, object]:
        return {"id": self.rule_id, "type": self.type.value, "max_connections": self.max_connections}


@dataclass(frozen=True)
class CidrBlockRule:
    rule_id: str
    cidrs: tuple[IPNetwork, ...]
    type: RuleType = RuleType.CIDR_BLOCK  # or GEO_BLOCKING
    blocked_countries: tuple[str, ...] = ()  # display label for geo_blocking

    def blocks(self, addr: IPAddress) -> bool:
        return any(addr.version == n.version and addr in n for n in self.cidrs)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"id": self.rule_id, "type": self.type.value, "cidrs": [str(n) for n in self.cidrs]}
        if self.type is RuleType.GEO_BLOCKING:
            d["blocked_countries"] = list(self.blocked_countries)
        return d


FirewallRule = RateLimitRule | ProtocolFilterRule | ConnectionLimitRule | CidrBlockRule


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class _RateState:
    buckets: dict[IPAddress, _Bucket] = field(default_factory=dict)  # insertion order = LRU order


def _positive_number(body: Mapping[str, object], name: str, default: object = None) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidRuleError(f"{name}: expected a positive number, got {value!r}")
    return float(value)


def _string_list(body: Mapping[str, object], name: str) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InvalidRuleError(f"{name}: expected a list of strings, got {value!r}")
    return list(value)


class Firewall:
    def __init__(self, config: FirewallConfig | None = None) -> None:
        self.config = config or FirewallConfig()
        self.config.validate()
        self._rules: dict[str, FirewallRule] = {}
        self._next_id = 1
        self._rate: dict[str, _RateState] = {}
        self._connections: Counter[IPAddress] = Counter()
        self.refusals: Counter[RefusalReason] = Counter()

    # ------------------------------------------------------------------------------------------- rules

    def add_rule(self, body: Mapping[str, object]) -> FirewallRule:
        """Add a rule from its JSON form (the NETWORKING-052 shapes); InvalidRuleError names the bad field.

        rate_limit: threshold (msg/s), optional burst. protocol_filter: allowed_protocols. connection_limit:
        max_connections. cidr_block: cidrs. geo_blocking: cidrs, blocked_countries (labels).
        """
        try:
            rtype = RuleType(body.get("type"))
        except ValueError as exc:
            allowed = [t.value for t in RuleType]
            raise InvalidRuleError(f"type: expected one of {allowed}, got {body.get('type')!r}") from exc
        rule_id = f"fw-{self._next_id}"
        rule: FirewallRule
        if rtype is RuleType.RATE_LIMIT:
            threshold = _positive_number(body, "threshold")
            rule = RateLimitRule(rule_id, threshold, _positive_number(body, "burst", threshold))
        elif rtype is RuleType.PROTOCOL_FILTER:
            names = _string_list(body, "allowed_protocols")
            try:
                protos = frozenset(TransportProtocol(n.upper()) for n in names)
            except ValueError as exc:
                raise InvalidRuleError(f"allowed_protocols: expected TCP/QUIC, got {names!r}") from exc
            rule = ProtocolFilterRule(rule_id, protos)
        elif rtype is RuleType.CONNECTION_LIMIT:
            limit = body.get("max_connections")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise InvalidRuleError(f"max_connections: expected a positive integer, got {limit!r}")
            rule = ConnectionLimitRule(rule_id, limit)
        else:
            cidrs = tuple(parse_cidr(c, "cidrs") for c in _string_list(body, "cidrs"))
            countries: tuple[str, ...] = ()
            if rtype is RuleType.GEO_BLOCKING:
                countries = tuple(_string_list(body, "blocked_countries"))
            rule = CidrBlockRule(rule_id, cidrs, rtype, countries)
        self._rules[rule_id] = rule
        self._next_id += 1
        if isinstance(rule, RateLimitRule):
            self._rate[rule_id] = _RateState()
        return rule

    def add_replica(self, rule_id: str, body: Mapping[str, object]) -> FirewallRule:
        """Add a rule under the id its origin gave it (``fw-<n>``): replicas keep the origin's ids.

        A malformed id raises ``ValueError``; ids stay unique, as the numbering moves past ``n`` either way.
        """
        n = int(rule_id.split("-", 1)[1])
        keep, self._next_id = self._next_id, n
        try:
            return self.add_rule(body)
        finally:
            self._next_id = max(keep, n + 1)

    def remove_rule(self, rule_id: str) -> bool:
        self._rate.pop(rule_id, None)
        return self._rules.pop(rule_id, None) is not None

    def rules(self) -> list[FirewallRule]:
        return list(self._rules.values())

    def to_dicts(self) -> list[dict[str, object]]:
        """The NETWORKING-052 ``rules`` list."""
        return [r.to_dict() for r in self._rules.values()]

    def add_rules(self, bodies: Iterable[Mapping[str, object]]) -> list[FirewallRule]:
        return [self.add_rule(b) for b in bodies]

    # ------------------------------------------------------------------------------------------- checks

    def _refuse(self, rule_id: str, reason: RefusalReason, detail: str) -> Verdict:
        self.refusals[reason] += 1
        return Verdict(False, rule_id, reason, detail)

    def _blocked(self, addr: IPAddress) -> Verdict | None:
        for rule in self._rules.values():
            if isinstance(rule, CidrBlockRule) and rule.blocks(addr):
                return self._refuse(rule.rule_id, RefusalReason.CIDR_BLOCKED, f"{addr} is in a blocked range")
        return None

    def admit_connection(self, source_ip: object, protocol: TransportProtocol | str, now: float) -> Verdict:
        """Decide on a new connection; when allowed it counts until ``connection_closed``."""
        del now  # connection checks are not time-based today; kept for a uniform, future-proof signature
        addr = parse_ip(source_ip)
        proto = TransportProtocol(protocol.upper()) if isinstance(protocol, str) else protocol
        if (blocked := self._blocked(addr)) is not None:
            return blocked
        for rule in self._rules.values():
            if isinstance(rule, ProtocolFilterRule) and proto not in rule.allowed_protocols:
                return self._refuse(rule.rule_id, RefusalReason.PROTOCOL_BLOCKED, f"{proto.value} not allowed")
        for rule in self._rules.values():
            if isinstance(rule, ConnectionLimitRule) and self._connections[addr] >= rule.max_connections:
                detail = f"{addr} already has {self._connections[addr]} connections (max {rule.max_connections})"
                return self._refuse(rule.rule_id, RefusalReason.CONNECTION_LIMIT, detail)
        self._connections[addr] += 1
        return ALLOW

    def connection_closed(self, source_ip: object) -> None:
        addr = parse_ip(source_ip)
        assert self._connections[addr] > 0, f"connection_closed({addr}) without an admitted connection"
        self._connections[addr] -= 1
        if not self._connections[addr]:
            del self._connections[addr]

    def open_connections(self, source_ip: object) -> int:
        return self._connections.get(parse_ip(source_ip), 0)

    @property
    def filters_messages(self) -> bool:
        """True while some rule applies per message (rate limits, CIDR and geo blocks)."""
        return any(isinstance(r, RateLimitRule | CidrBlockRule) for r in self._rules.values())

    def admit_message(self, source_ip: object, now: float) -> Verdict:
        addr = parse_ip(source_ip)
        if (blocked := self._blocked(addr)) is not None:
            return blocked
        buckets: list[_Bucket] = []
        for rule in self._rules.values():
            if not isinstance(rule, RateLimitRule):
                continue
            bucket = self._bucket(rule, addr, now)
            if bucket.tokens < 1.0 - _EPSILON:
                detail = f"{addr} exceeds {rule.threshold:g} msg/s"
                return self._refuse(rule.rule_id, RefusalReason.RATE_LIMITED, detail)
            buckets.append(bucket)
        for bucket in buckets:
            bucket.tokens -= 1.0
        return ALLOW

    def _bucket(self, rule: RateLimitRule, addr: IPAddress, now: float) -> _Bucket:
        state = self._rate[rule.rule_id]
        bucket = state.buckets.pop(addr, None)
        if bucket is None:
            if len(state.buckets) >= self.config.max_tracked_sources:
                self._evict(rule, state, now)
            bucket = _Bucket(rule.burst, now)
        elapsed = max(0.0, now - bucket.updated)  # a clock that steps back never mints tokens
        bucket.tokens = min(rule.burst, bucket.tokens + elapsed * rule.threshold)
        bucket.updated = max(bucket.updated, now)
        state.buckets[addr] = bucket  # re-insert: most recently used last
        return bucket

    def _evict(self, rule: RateLimitRule, state: _RateState, now: float) -> None:
        full = [
            a for a, b in state.buckets.items() if b.tokens + max(0.0, now - b.updated) * rule.threshold >= rule.burst
        ]
        for a in full:
            del state.buckets[a]
        while len(state.buckets) >= self.config.max_tracked_sources:
            del state.buckets[next(iter(state.buckets))]

    def stats(self) -> dict[str, object]:
        return {
            "rules": len(self._rules),
            "refusals": {r.value: self.refusals.get(r, 0) for r in RefusalReason},
            "open_connections": sum(self._connections.values()),
            "tracked_sources": {rid: len(s.buckets) for rid, s in self._rate.items()},
        }
