"""EtcdDiscovery against a real etcd (v3 JSON gateway) on loopback ports."""

import asyncio
import itertools
import time

import httpx
import pytest

from rustyray.discovery import BackendUnavailableError, DiscoveryEventKind
from rustyray.discovery.etcd import EtcdDiscovery, EtcdDiscoveryConfig
from rustyray.discovery.etcd_records import b64encode
from tests.servers.fixtures import free_port

_prefixes = itertools.count()

pytestmark = pytest.mark.servers


def config(etcd_server, **kw) -> EtcdDiscoveryConfig:
    prefix = f"/rustyray-test-{next(_prefixes)}-{time.monotonic_ns()}/nodes/"
    return EtcdDiscoveryConfig(endpoints=(etcd_server.url,), key_prefix=prefix, **kw)


async def test_register_then_discover_matches_seed_shape(etcd_server):
    disco = EtcdDiscovery(config(etcd_server, lease_ttl_s=30))
    try:
        r1 = await disco.register("node1", "127.0.0.1", 5432, {"role": "db"})
        r2 = await disco.register("node2", "127.0.0.2", 5432)
        assert r1["registered"] and r1["ttl_seconds"] == 30 and r1["lease_id"] != r2["lease_id"]
        result = await disco.discover()
        body = result.as_response()
        assert body["nodes"] == [
            {"id": "node1", "address": "127.0.0.1:5432", "lease_id": r1["lease_id"]},
            {"id": "node2", "address": "127.0.0.2:5432", "lease_id": r2["lease_id"]},
        ]
        assert isinstance(body["revision"], int) and body["revision"] >= r2["revision"]
        assert result.candidates[0].meta["role"] == "db"
        assert await disco.deregister("node1")
        assert [n["id"] for n in (await disco.discover()).body["nodes"]] == ["node2"]
        assert not await disco.deregister("node1")
    finally:
        await disco.aclose()


async def test_keepalive_runs_at_a_third_of_the_ttl(etcd_server):
    slept: list[float] = []
    tick = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) > 2:
            tick.set()
            await asyncio.Event().wait()  # park the loop after two renewals

    disco = EtcdDiscovery(config(etcd_server, lease_ttl_s=9), sleep=fake_sleep)
    try:
        await disco.register("n", "127.0.0.1", 7000)
        await asyncio.wait_for(tick.wait(), 5)
        assert slept[:3] == [3.0, 3.0, 3.0]
        assert disco.registration("n").keepalives == 2
    finally:
        await disco.aclose()


async def test_lease_expiry_removes_node_and_keepalive_restores_it(etcd_server):
    disco = EtcdDiscovery(config(etcd_server, lease_ttl_s=2))
    try:
        await disco.register("n", "127.0.0.1", 7000, keepalive=False)
        lease = disco.registration("n").lease_id
        deadline = time.monotonic() + 10
        while (await disco.discover()).candidates and time.monotonic() < deadline:
            await asyncio.sleep(0.25)  # a real etcd lease expiring in real time
        assert (await disco.discover()).candidates == ()
        ttl = await disco.keepalive_once("n")  # finds the lease gone and registers again
        assert ttl == 2 and disco.registration("n").lease_id != lease
        assert [c.node_id for c in (await disco.discover()).candidates] == ["n"]
    finally:
        await disco.aclose()


async def test_watch_turns_puts_and_deletes_into_events(etcd_server):
    cfg = config(etcd_server, lease_ttl_s=30)
    watcher = EtcdDiscovery(cfg)
    writer = EtcdDiscovery(cfg)
    try:
        await writer.register("a", "127.0.0.1", 7000)
        events = []
        stream = watcher.watch()
        events.append(await asyncio.wait_for(anext(stream), 5))
        await writer.register("b", "127.0.0.2", 7000)
        events.append(await asyncio.wait_for(anext(stream), 5))
        await writer.deregister("a")  # lease revoke deletes the key
        events.append(await asyncio.wait_for(anext(stream), 5))
        await writer.register("b", "127.0.0.3", 7001)  # moved: leave old, join new
        events.append(await asyncio.wait_for(anext(stream), 5))
        events.append(await asyncio.wait_for(anext(stream), 5))
        await stream.aclose()
        assert [(e.kind, e.candidate.node_id, e.candidate.address) for e in events] == [
            (DiscoveryEventKind.JOIN, "a", "127.0.0.1:7000"),
            (DiscoveryEventKind.JOIN, "b", "127.0.0.2:7000"),
            (DiscoveryEventKind.LEAVE, "a", "127.0.0.1:7000"),
            (DiscoveryEventKind.LEAVE, "b", "127.0.0.2:7000"),
            (DiscoveryEventKind.JOIN, "b", "127.0.0.3:7001"),
        ]
    finally:
        await watcher.aclose()
        await writer.aclose()


async def test_foreign_value_under_prefix_is_ignored(etcd_server):
    cfg = config(etcd_server)
    disco = EtcdDiscovery(cfg)
    try:
        async with httpx.AsyncClient() as client:
            put = {"key": b64encode(cfg.key_prefix + "junk"), "value": b64encode("not json")}
            (await client.post(etcd_server.url + "/v3/kv/put", json=put)).raise_for_status()
        await disco.register("ok", "127.0.0.1", 7000, keepalive=False)
        assert [c.node_id for c in (await disco.discover()).candidates] == ["ok"]
    finally:
        await disco.aclose()


async def test_falls_over_to_the_next_endpoint(etcd_server):
    dead = f"http://127.0.0.1:{free_port()}"
    cfg = config(etcd_server)
    disco = EtcdDiscovery(EtcdDiscoveryConfig(endpoints=(dead, etcd_server.url), key_prefix=cfg.key_prefix))
    try:
        assert (await disco.discover()).candidates == ()
    finally:
        await disco.aclose()
    only_dead = EtcdDiscovery(EtcdDiscoveryConfig(endpoints=(dead,)))
    with pytest.raises(BackendUnavailableError):
        await only_dead.discover()
    await only_dead.aclose()
