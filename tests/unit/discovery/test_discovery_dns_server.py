"""DnsDiscovery against a real dnsmasq on a loopback port."""

import asyncio

import pytest

from rustyray.discovery import BackendUnavailableError, DiscoveryEventKind
from rustyray.discovery.dns_srv import DnsDiscovery, DnsDiscoveryConfig
from tests.servers.fixtures import FakeClock, SrvRecordSpec, free_dual_port

SRV = "_rustydb._tcp.cluster.local"
THREE = [
    SrvRecordSpec(SRV, "node1.cluster.local", 7000),
    SrvRecordSpec(SRV, "node2.cluster.local", 7001),
    SrvRecordSpec(SRV, "node3.cluster.local", 7002, priority=5),
]
HOSTS = [
    ("node1.cluster.local", ["127.0.0.1"]),
    ("node2.cluster.local", ["127.0.0.2", "::1"]),
    ("node3.cluster.local", ["127.0.0.3"]),
]


def make(server, clock=None, **kw) -> DnsDiscovery:
    config = DnsDiscoveryConfig(
        service_name="rustydb", domain="cluster.local", nameservers=(server.nameserver,), timeout_s=2.0, **kw
    )
    return DnsDiscovery(config, clock=clock or FakeClock())


@pytest.mark.servers
@pytest.mark.parametrize("over_tcp", [False, True])
async def test_discovers_srv_targets_with_addresses(dnsmasq_factory, over_tcp):
    server = dnsmasq_factory(THREE, HOSTS, ttl=42)
    disco = make(server, query_over_tcp=over_tcp)
    result = await disco.discover()
    assert result.as_response() == {
        "discovered_nodes": [
            {"id": "node1", "address": "127.0.0.1", "port": 7000},
            {"id": "node2", "address": "127.0.0.2", "port": 7001},
            {"id": "node3", "address": "127.0.0.3", "port": 7002},
        ],
        "discovery_method": "DNS-SRV",
        "ttl_seconds": 42,
    }
    assert result.candidates[1].meta["addresses"] == ["127.0.0.2", "::1"]


@pytest.mark.servers
async def test_refused_address_family_is_skipped_not_fatal(dnsmasq_factory):
    # Without --local, dnsmasq REFUSES the AAAA query for an A-only name (it has no upstream).
    server = dnsmasq_factory(THREE[:1], HOSTS[:1], local_domains=())
    disco = make(server)
    result = await disco.discover()
    assert [(c.node_id, c.host) for c in result.candidates] == [("node1", "127.0.0.1")]
    assert len(disco.address_errors) == 1 and "AAAA" in disco.address_errors[0]


@pytest.mark.servers
async def test_cache_re_resolves_only_after_ttl(dnsmasq_factory):
    server = dnsmasq_factory(THREE[:1], HOSTS[:1], ttl=10)
    clock = FakeClock(0.0)
    disco = make(server, clock=clock, min_refresh_s=1.0)
    first = await disco.discover()
    assert disco.resolutions == 1
    clock.advance(9.9)
    assert await disco.discover() is first
    assert disco.resolutions == 1
    server.restart(THREE[:2], HOSTS[:2], ttl=10)
    assert [c.node_id for c in (await disco.discover()).candidates] == ["node1"]  # still cached
    clock.advance(0.2)
    fresh = await disco.discover()
    assert disco.resolutions == 2
    assert [c.node_id for c in fresh.candidates] == ["node1", "node2"]


@pytest.mark.servers
async def test_missing_service_is_empty_not_an_error(dnsmasq_factory):
    server = dnsmasq_factory([], HOSTS[:1])
    result = await make(server).discover()
    assert result.candidates == () and result.body["discovered_nodes"] == []


@pytest.mark.servers
async def test_watch_yields_joins_then_leaves_on_ttl_expiry(dnsmasq_factory):
    server = dnsmasq_factory(THREE[:2], HOSTS[:2], ttl=5)
    clock = FakeClock(0.0)
    sleeps: list[float] = []
    changed = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)
        if len(sleeps) == 1:
            server.restart([THREE[1], THREE[2]], [HOSTS[1], HOSTS[2]], ttl=5)
            changed.set()

    config = DnsDiscoveryConfig(nameservers=(server.nameserver,), timeout_s=2.0)
    disco = DnsDiscovery(config, clock=clock, sleep=fake_sleep)
    events = []
    async for event in disco.watch():
        events.append((event.kind, event.candidate.node_id))
        if len(events) == 4:
            break
    assert changed.is_set()
    assert sleeps[0] == pytest.approx(5.0)  # slept exactly one TTL
    assert events == [
        (DiscoveryEventKind.JOIN, "node1"),
        (DiscoveryEventKind.JOIN, "node2"),
        (DiscoveryEventKind.LEAVE, "node1"),
        (DiscoveryEventKind.JOIN, "node3"),
    ]


@pytest.mark.servers
async def test_unreachable_nameserver_is_unavailable():
    port = free_dual_port()  # nothing listens here
    config = DnsDiscoveryConfig(nameservers=(f"127.0.0.1:{port}",), query_over_tcp=True, timeout_s=0.5)
    with pytest.raises(BackendUnavailableError):
        await DnsDiscovery(config).discover()
