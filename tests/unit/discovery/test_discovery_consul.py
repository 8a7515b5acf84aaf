"""Consul: pure helpers, and ConsulDiscovery against the stateful agent double (fake clock)."""

import asyncio

import pytest

from rustyray.discovery import BackendResponseError, DiscoveryEventKind
from rustyray.discovery.consul import ConsulDiscovery, ConsulDiscoveryConfig
from rustyray.discovery.consul_records import (
    build_consul_result,
    go_duration,
    next_index,
    registration_body,
)
from tests.servers.consul_double import ConsulDouble, parse_go_duration


def test_registration_body_follows_agent_api():
    body = registration_body(
        "rustydb",
        "node1",
        "127.0.0.1",
        5432,
        tags=["database", "primary"],
        check_ttl_s=10,
        deregister_critical_after_s=60,
    )
    assert body == {
        "ID": "rustydb-node1",
        "Name": "rustydb",
        "Address": "127.0.0.1",
        "Port": 5432,
        "Tags": ["database", "primary"],
        "Meta": {"node_id": "node1"},
        "Check": {"TTL": "10s", "DeregisterCriticalServiceAfter": "60s"},
    }
    assert go_duration(1.5) == "1.5s" and parse_go_duration("1m30s") == 90.0


@pytest.mark.parametrize("prev,got,expected", [(0, 5, 5), (5, 9, 9), (9, 3, 0), (0, 0, 1)])
def test_blocking_index_rules(prev, got, expected):
    assert next_index(prev, got) == expected


def test_health_entries_fall_back_to_node_address():
    entries = [
        {
            "Node": {"Node": "agent", "Address": "127.0.0.9", "Datacenter": "dc1"},
            "Service": {"ID": "rustydb-n1", "Service": "rustydb", "Address": "", "Port": 7000, "Tags": ["t"]},
            "Checks": [{"CheckID": "service:rustydb-n1", "Status": "passing"}],
        }
    ]
    result = build_consul_result(entries, "rustydb", None, 12)
    assert result.as_response() == {
        "service": "rustydb",
        "datacenter": "dc1",
        "consul_index": 12,
        "nodes": [{"id": "n1", "address": "127.0.0.9", "port": 7000, "tags": ["t"]}],
    }
    with pytest.raises(BackendResponseError):
        build_consul_result([{"Service": {}}], "rustydb", None, 1)


def make(double: ConsulDouble, **kw) -> ConsulDiscovery:
    return ConsulDiscovery(ConsulDiscoveryConfig(address=double.base_url, check_ttl_s=9, **kw))


async def test_register_returns_seed_shape_and_is_passing(consul_double):
    disco = make(consul_double, tags=("database",))
    try:
        reply = await disco.register("node1", "127.0.0.1", 5432, tags=["primary"])
        assert reply == {"registered": True, "service_id": "rustydb-node1", "consul_index": consul_double.index}
        assert consul_double.status_of("rustydb-node1") == "passing"
        assert consul_double.services["rustydb-node1"].body["Tags"] == ["database", "primary"]
        result = await disco.discover()
        assert result.body["nodes"] == [
            {"id": "node1", "address": "127.0.0.1", "port": 5432, "tags": ["database", "primary"]}
        ]
        assert result.body["datacenter"] == "dc1"
    finally:
        await disco.aclose()


async def test_ttl_expiry_drops_node_until_passed_again(consul_double, fake_clock):
    disco = make(consul_double)
    try:
        await disco.register("n1", "127.0.0.1", 7000, keep_passing=False)
        fake_clock.advance(8.9)
        await consul_double.tick()
        assert [c.node_id for c in (await disco.discover()).candidates] == ["n1"]
        fake_clock.advance(0.2)  # past the 9 s TTL
        await consul_double.tick()
        assert (await disco.discover()).candidates == ()
        await disco.pass_check("n1")
        assert [c.node_id for c in (await disco.discover()).candidates] == ["n1"]
        fake_clock.advance(61)  # critical longer than DeregisterCriticalServiceAfter: reaped
        await consul_double.tick()
        fake_clock.advance(61)
        await consul_double.tick()
        assert "rustydb-n1" not in consul_double.services
    finally:
        await disco.aclose()


async def test_keep_passing_loop_renews_every_third_of_ttl(consul_double):
    renewals = asyncio.Event()
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            renewals.set()
            await asyncio.Event().wait()

    disco = ConsulDiscovery(ConsulDiscoveryConfig(address=consul_double.base_url, check_ttl_s=9), sleep=fake_sleep)
    try:
        await disco.register("n1", "127.0.0.1", 7000)
        await asyncio.wait_for(renewals.wait(), 5)
        passes = [r for r in consul_double.requests if r[1] == "/v1/agent/check/pass/service:rustydb-n1"]
        assert slept == [3.0, 3.0, 3.0] and len(passes) == 3  # one at register, two from the loop
    finally:
        await disco.aclose()


async def test_deregister_removes_service(consul_double):
    disco = make(consul_double)
    try:
        await disco.register("n1", "127.0.0.1", 7000)
        assert await disco.deregister("n1") == {"deregistered": True, "service_id": "rustydb-n1"}
        assert consul_double.services == {}
        with pytest.raises(BackendResponseError) as info:
            await disco.deregister("n1")
        assert info.value.status == 404
    finally:
        await disco.aclose()


async def test_datacenter_is_passed_and_unknown_dc_fails(consul_double):
    ok = make(consul_double, datacenter="dc1")
    bad = make(consul_double, datacenter="dc9")
    try:
        await ok.discover()
        assert consul_double.requests[-1][2]["dc"] == "dc1"
        with pytest.raises(BackendResponseError, match="No path to datacenter"):
            await bad.discover()
    finally:
        await ok.aclose()
        await bad.aclose()


async def test_blocking_query_returns_when_index_moves(consul_double):
    disco = make(consul_double)
    try:
        first = await disco.discover()
        index = first.body["consul_index"]
        waiter = asyncio.create_task(disco.discover(index=index, wait_s=10))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # held by the server
        await disco.register("n2", "127.0.0.2", 7000, keep_passing=False)
        result = await asyncio.wait_for(waiter, 5)
        assert result.body["consul_index"] > index
        assert consul_double.requests[1][2]["index"] == str(index)
        timed_out = await disco.discover(index=consul_double.index, wait_s=0.05)
        assert timed_out.body["consul_index"] == consul_double.index  # wait elapsed, same index
    finally:
        await disco.aclose()


async def test_watch_yields_join_and_leave_on_ttl_expiry(consul_double, fake_clock):
    disco = make(consul_double, wait_s=5)
    other = make(consul_double)
    try:
        stream = disco.watch()
        await other.register("n1", "127.0.0.1", 7000, keep_passing=False)
        join = await asyncio.wait_for(anext(stream), 5)
        fake_clock.advance(10)  # TTL lapses; the double's reaper wakes the blocked query
        leave = await asyncio.wait_for(anext(stream), 5)
        await stream.aclose()
        assert (join.kind, join.candidate.node_id) == (DiscoveryEventKind.JOIN, "n1")
        assert (leave.kind, leave.candidate.node_id) == (DiscoveryEventKind.LEAVE, "n1")
    finally:
        await disco.aclose()
        await other.aclose()


async def test_acl_token_is_sent(fake_clock):
    double = ConsulDouble(token="s3cret", clock=fake_clock)
    await double.start()
    try:
        good = ConsulDiscovery(ConsulDiscoveryConfig(address=double.base_url, token="s3cret"))
        bad = ConsulDiscovery(ConsulDiscoveryConfig(address=double.base_url))
        assert (await good.discover()).candidates == ()
        with pytest.raises(BackendResponseError) as info:
            await bad.discover()
        assert info.value.status == 403
        await good.aclose()
        await bad.aclose()
    finally:
        await double.stop()
