"""DNS-SRV discovery, pure half: SRV/A/AAAA answers -> candidates, and the TTL cache.

Theory of operation (RFC 2782 "A DNS RR for specifying the location of services", RFC 1035 s3.2.1 TTL):
a service ``S`` over protocol ``P`` in ``D`` is published as SRV records at ``_S._P.D``, each naming a
target host and port with a priority (lower first) and a weight (larger preferred within a priority).
A lone SRV with target ``.`` means "decidedly not available here". Targets are then resolved with A
and AAAA queries. Each answer carries a TTL; the whole result is only as fresh as its shortest TTL, so
the result's ``ttl_seconds`` is the minimum over every record used and :class:`DnsCache` re-resolves
once that many seconds have passed. No I/O and no clock here: ``now`` is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rustyray.discovery.model import Candidate, DiscoveryResult, split_host_port

DISCOVERY_METHOD = "DNS-SRV"


@dataclass(frozen=True)
class SrvRecord:
    """One SRV answer; ``target`` is lower-case without the trailing dot."""

    priority: int
    weight: int
    port: int
    target: str
    ttl: int


@dataclass(frozen=True)
class AddressRecord:
    """One A or AAAA answer for ``name``."""

    name: str
    address: str
    ttl: int
    ipv6: bool


def normalize_name(name: str) -> str:
    """Lower-case, no trailing dot: the key SRV targets and address owners are matched on."""
    return name.strip().rstrip(".").lower()


def srv_query_name(service_name: str, protocol: str, domain: str) -> str:
    """``_<service>._<protocol>.<domain>.`` as RFC 2782 spells it (absolute, so no search list)."""
    return f"_{service_name}._{protocol}.{normalize_name(domain)}."


def parse_nameserver(entry: str) -> tuple[str, int]:
    """``"127.0.0.1:15353"`` -> ``("127.0.0.1", 15353)``; bare hosts and bare IPv6 use port 53."""
    return split_host_port(entry, default_port=53)


def node_id_from_target(target: str) -> str:
    """The node id is the SRV target's first label: ``node1.cluster.local`` -> ``node1``."""
    return normalize_name(target).split(".", 1)[0]


def srv_records_from_rdata(rdatas: Iterable[Any], ttl: int) -> list[SrvRecord]:
    """Convert dnspython SRV rdatas (anything with priority/weight/port/target) sharing one TTL."""
    return [
        SrvRecord(int(r.priority), int(r.weight), int(r.port), normalize_name(str(r.target)), int(ttl)) for r in rdatas
    ]


def address_records_from_rdata(name: str, rdatas: Iterable[Any], ttl: int, ipv6: bool) -> list[AddressRecord]:
    """Convert dnspython A/AAAA rdatas (anything with ``.address``) sharing one TTL."""
    return [AddressRecord(normalize_name(name), str(r.address), int(ttl), ipv6) for r in rdatas]


def order_srv(records: Sequence[SrvRecord]) -> list[SrvRecord]:
    """RFC 2782 order without the weighted lottery: priority ascending, then weight descending.

    We hand SWIM every target, so only the preference order matters; ties break on the target name
    to keep results deterministic.
    """
    return sorted(records, key=lambda r: (r.priority, -r.weight, r.target, r.port))


def build_dns_result(
    srv: Sequence[SrvRecord],
    addresses: Mapping[str, Sequence[AddressRecord]],
    *,
    prefer_ipv6: bool = False,
) -> DiscoveryResult:
    """Join SRV answers with their targets' addresses into the NETWORKING-020 body.

    One candidate per (target, port): its ``address`` is the first A (or AAAA with ``prefer_ipv6``)
    record, falling back to the other family; targets with no address are left out since nothing could
    connect to them. ``ttl_seconds`` is the minimum TTL over the SRV records and the address records
    used (0 when there is nothing, so the caller retries promptly).
    """
    ttls: list[int] = []
    candidates: list[Candidate] = []
    seen: set[tuple[str, int]] = set()
    if len(srv) == 1 and srv[0].target == "":
        ttls.append(srv[0].ttl)  # RFC 2782: target "." = service decidedly unavailable
        srv = []
    for record in order_srv(srv):
        ttls.append(record.ttl)
        if (record.target, record.port) in seen:
            continue
        found = list(addresses.get(record.target, ()))
        v4 = [a for a in found if not a.ipv6]
        v6 = [a for a in found if a.ipv6]
        chosen = (v6 + v4) if prefer_ipv6 else (v4 + v6)
        if not chosen:
            continue
        seen.add((record.target, record.port))
        ttls.extend(a.ttl for a in found)
        candidates.append(
            Candidate(
                node_id=node_id_from_target(record.target),
                host=chosen[0].address,
                port=record.port,
                meta={
                    "target": record.target,
                    "priority": record.priority,
                    "weight": record.weight,
                    "addresses": [a.address for a in chosen],
                },
            )
        )
    ttl = min(ttls) if ttls else 0
    body = {
        "discovered_nodes": [{"id": c.node_id, "address": c.host, "port": c.port} for c in candidates],
        "discovery_method": DISCOVERY_METHOD,
        "ttl_seconds": ttl,
    }
    return DiscoveryResult(backend="dns", candidates=tuple(candidates), body=body)


class DnsCache:
    """Holds the last result until its TTL runs out; time is passed in.

    ``min_refresh_s`` keeps a zero or tiny TTL from turning into a resolve storm; ``max_refresh_s``
    bounds staleness when a zone hands out day-long TTLs.
    """

    def __init__(self, min_refresh_s: float = 1.0, max_refresh_s: float = 3600.0) -> None:
        assert 0 <= min_refresh_s <= max_refresh_s
        self._min = min_refresh_s
        self._max = max_refresh_s
        self._result: DiscoveryResult | None = None
        self._expires_at = float("-inf")

    def get(self, now: float) -> DiscoveryResult | None:
        """The cached result while ``now`` is before expiry, else None (caller must re-resolve)."""
        return self._result if now < self._expires_at else None

    def store(self, result: DiscoveryResult, now: float) -> float:
        """Keep ``result`` and return the absolute time at which it expires."""
        ttl = float(result.body.get("ttl_seconds", 0))
        self._result = result
        self._expires_at = now + min(max(ttl, self._min), self._max)
        return self._expires_at

    @property
    def expires_at(self) -> float:
        """Absolute expiry time of the cached result (-inf when empty)."""
        return self._expires_at

    def invalidate(self) -> None:
        """Forget the cached result so the next lookup resolves again."""
        self._result = None
        self._expires_at = float("-inf")
