"""Real sockets on loopback only: UDP broadcast to 127.255.255.255, beacons, mDNS on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket

from rustyray.autodiscovery.beacon import BeaconConfig, BeaconCore
from rustyray.autodiscovery.beacon_runner import BeaconRunner
from rustyray.autodiscovery.broadcast import BroadcastDiscovery
from rustyray.autodiscovery.broadcast_core import BroadcastConfig, NodeIdentity
from rustyray.autodiscovery.mdns import MdnsDiscovery
from rustyray.autodiscovery.mdns_core import MdnsConfig

SECRET = b"0123456789abcdef-cluster-secret"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_announce_counts_listeners_of_the_same_cluster_only() -> None:
    port = free_udp_port()
    cfg = BroadcastConfig.local("prod", SECRET, port)
    nodes = [BroadcastDiscovery.create(cfg, NodeIdentity(f"n{i}", f"127.0.0.1:{7000 + i}")) for i in range(3)]
    intruder = BroadcastDiscovery.create(BroadcastConfig.local("other", SECRET, port), NodeIdentity("x", "x:1"))
    wrong_key = BroadcastDiscovery.create(
        BroadcastConfig.local("prod", b"a-different-secret!!", port), NodeIdentity("y", "y:1")
    )
    everyone = [*nodes, intruder, wrong_key]
    for n in everyone:
        await n.start()
    try:
        assert nodes[0].unicast_address[0] == "127.0.0.1"
        result = await nodes[0].announce(wait_s=0.5)
        assert result == {"broadcast_sent": True, "listeners_notified": 2}
        assert {c.node_id for c in nodes[0].core.candidates} == {"n1", "n2"}
        assert [c.node_id for c in nodes[1].core.candidates] == ["n0"]
        assert nodes[1].core.candidates.get("n0").tcp_addr == "127.0.0.1:7000"
        assert len(intruder.core.candidates) == 0 and intruder.core.stats["dropped"] == 1
        assert len(wrong_key.core.candidates) == 0 and wrong_key.core.stats["dropped"] == 1
    finally:
        for n in everyone:
            await n.close()


async def test_beacon_runner_over_the_broadcast_sockets() -> None:
    port = free_udp_port()
    cfg = BroadcastConfig.local("prod", SECRET, port)
    a = BroadcastDiscovery.create(cfg, NodeIdentity("a", "127.0.0.1:7000"))
    b = BroadcastDiscovery.create(cfg, NodeIdentity("b", "127.0.0.1:7001"))
    bcfg = BeaconConfig(enabled=True, interval_ms=50, ttl_ms=200)
    expired: list[str] = []
    ra = BeaconRunner(BeaconCore(bcfg, a.core), a)
    rb = BeaconRunner(BeaconCore(bcfg, b.core), b, on_expired=expired.extend)
    await a.start()
    await b.start()
    try:
        ra.start()
        rb.start()
        async with asyncio.timeout(5):
            while rb.status()["beacons_received"] < 3:
                await asyncio.sleep(0.02)
        st = rb.status()
        assert [c["node_id"] for c in st["candidates"]] == ["a"]
        assert st["candidates"][0]["expires_in_ms"] <= 200
        ra.stop()  # a goes silent; b expires it after the TTL
        async with asyncio.timeout(5):
            while "a" not in expired:
                await asyncio.sleep(0.02)
        assert rb.status()["candidates"] == []
    finally:
        ra.stop()
        rb.stop()
        await a.close()
        await b.close()


async def test_mdns_two_zeroconf_instances_find_each_other_on_loopback() -> None:
    cfg = MdnsConfig.local(cluster_name="prod")
    a = MdnsDiscovery(cfg, node_id="node-a", port=7100, ports={"tcp": 7100, "quic": 7101})
    b = MdnsDiscovery(cfg, node_id="node-b", port=7200, ports={"tcp": 7200})
    await asyncio.gather(a.start(), b.start())
    try:
        for d in (a, b):  # every mDNS packet leaves through loopback only
            assert d._azc is not None
            assert d._azc.zeroconf.engine._listen_socket is None  # no wildcard (0.0.0.0) socket
            for sender in d._azc.zeroconf.engine.senders:
                sock = sender.sock
                assert sock.getsockname()[0] == "127.0.0.1"
                mcast_if = sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4)
                assert socket.inet_ntoa(mcast_if) == "127.0.0.1"
        found_by_b = await b.wait_for("node-a", timeout=10)
        found_by_a = await a.wait_for("node-b", timeout=10)
        assert (found_by_b.ip, found_by_b.port, found_by_b.ports) == ("127.0.0.1", 7100, {"tcp": 7100, "quic": 7101})
        assert found_by_a.as_dict() == {
            "hostname": "node-b.local",
            "ip": "127.0.0.1",
            "port": 7200,
            "node_id": "node-b",
        }
        st = b.status()
        assert st["service_type"] == "_rustydb._tcp"
        assert [n["node_id"] for n in st["discovered_nodes"]] == ["node-a"]  # never itself
        await a.stop()  # goodbye packets remove a from b's list
        async with asyncio.timeout(10):
            while b.discovered():
                await asyncio.sleep(0.05)
    finally:
        await a.stop()
        await b.stop()


async def test_mdns_disabled_by_default_opens_nothing() -> None:
    d = MdnsDiscovery(MdnsConfig(), node_id="n", port=1)
    await d.start()
    assert not d.running
    assert d.status() == {"enabled": False, "service_type": "_rustydb._tcp", "discovered_nodes": []}
