"""DNS-SRV discovery adapter (NETWORKING-020): dnspython's async resolver drives :mod:`dns_records`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import dns.asyncresolver
import dns.exception
import dns.nameserver
import dns.resolver

from rustyray.discovery.config import DnsDiscoveryConfig
from rustyray.discovery.dns_records import (
    AddressRecord,
    DnsCache,
    SrvRecord,
    address_records_from_rdata,
    build_dns_result,
    parse_nameserver,
    srv_records_from_rdata,
)
from rustyray.discovery.errors import BackendUnavailableError
from rustyray.discovery.model import DiscoveryEvent, DiscoveryResult, diff_candidates


class DnsDiscovery:
    """Resolves the SRV set, caches it for its TTL and re-resolves on expiry.

    ``clock`` and ``sleep`` are injectable so the cache and ``watch()`` can be tested without waiting.
    """

    name = "dns"

    def __init__(
        self,
        config: DnsDiscoveryConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        config.validate()
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._cache = DnsCache(config.min_refresh_s, config.max_refresh_s)
        if config.nameservers:
            resolver = dns.asyncresolver.Resolver(configure=False)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(*parse_nameserver(e)) for e in config.nameservers]
        else:
            resolver = dns.asyncresolver.Resolver()
        resolver.lifetime = config.timeout_s
        resolver.timeout = config.timeout_s
        resolver.cache = None  # our cache honours the min TTL of the whole set; dnspython's is per-rrset
        self._resolver = resolver
        #: Number of full resolutions performed (cache misses); handy for tests and metrics.
        self.resolutions = 0
        #: A/AAAA lookups that failed during the last resolution (their family was skipped).
        self.address_errors: list[str] = []

    async def discover(self) -> DiscoveryResult:
        """The cached result while fresh, else a new resolution."""
        now = self._clock()
        cached = self._cache.get(now)
        if cached is not None:
            return cached
        result = await self.resolve()
        self._cache.store(result, self._clock())
        return result

    async def resolve(self) -> DiscoveryResult:
        """SRV then A/AAAA for each target, bypassing the cache."""
        self.resolutions += 1
        self.address_errors = []
        srv = await self._query_srv()
        targets = sorted({r.target for r in srv if r.target})
        lookups = [self._query_addresses(t, v6) for t in targets for v6 in (False, True)]
        answers = await asyncio.gather(*lookups)
        addresses: dict[str, list[AddressRecord]] = {t: [] for t in targets}
        for records in answers:
            for record in records:
                addresses.setdefault(record.name, []).append(record)
        return build_dns_result(srv, addresses, prefer_ipv6=self.config.prefer_ipv6)

    def seconds_until_refresh(self) -> float:
        """How long the cached result stays fresh (0 when it must be resolved now)."""
        return max(0.0, self._cache.expires_at - self._clock())

    async def watch(self) -> AsyncIterator[DiscoveryEvent]:
        """Re-resolve whenever the TTL runs out and yield joins/leaves; runs until the caller stops.

        A failed resolution keeps the last known set and retries after ``min_refresh_s``.
        """
        known: tuple = ()
        while True:
            try:
                result = await self.discover()
            except BackendUnavailableError:
                await self._sleep(max(self.config.min_refresh_s, 0.1))
                continue
            for event in diff_candidates(known, result.candidates):
                yield event
            known = result.candidates
            await self._sleep(max(self.seconds_until_refresh(), 0.01))

    async def aclose(self) -> None:
        """Nothing to release; present so every backend closes the same way."""

    async def _query_srv(self) -> list[SrvRecord]:
        answer = await self._resolve(self.config.query_name, "SRV")
        if answer is None or answer.rrset is None:
            return []
        return srv_records_from_rdata(answer, answer.rrset.ttl)

    async def _query_addresses(self, target: str, ipv6: bool) -> list[AddressRecord]:
        # A failed A/AAAA lookup drops that family of that target only: forwarders without upstreams
        # answer REFUSED for a missing family, and one broken target must not hide the others.
        try:
            answer = await self._resolve(target + ".", "AAAA" if ipv6 else "A")
        except BackendUnavailableError as exc:
            self.address_errors.append(str(exc))
            return []
        if answer is None or answer.rrset is None:
            return []
        return address_records_from_rdata(target, answer, answer.rrset.ttl, ipv6)

    async def _resolve(self, qname: str, rdtype: str) -> dns.resolver.Answer | None:
        try:
            return await self._resolver.resolve(
                qname, rdtype, tcp=self.config.query_over_tcp, search=False, lifetime=self.config.timeout_s
            )
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise BackendUnavailableError(f"DNS {rdtype} {qname}: {exc}") from exc
        except dns.exception.DNSException as exc:
            raise BackendUnavailableError(f"DNS {rdtype} {qname}: {type(exc).__name__}: {exc}") from exc
