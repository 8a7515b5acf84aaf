"""Bounded heartbeat fan-out (``[health] monitored_by_nr_of_members``) on a live in-process 5-node cluster."""

from __future__ import annotations

import asyncio

import pytest
from harness import local_cluster, wait_for

from rustyray.api_binding import to_wire
from rustyray.health.monitor_ring import MonitorRing
from rustyray.protocol.control import Heartbeat

K = 2
IDS = [f"node{i}" for i in range(1, 6)]


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(5, tmp_path, sections={"health": {"monitored_by_nr_of_members": K}}) as c:
        yield c


def health(c, node_id):
    return c.node(node_id).services["health"]


async def test_each_node_heartbeats_and_watches_only_its_ring_neighbours(cluster):
    c = cluster
    ring = MonitorRing(IDS, K)
    for nid in IDS:
        assert health(c, nid).watch.watched == ring.monitored(nid)
        assert set(health(c, nid).heartbeat_targets()) == ring.targets(nid)
    await wait_for(lambda: all(len(health(c, n).monitor.status(0.0)) == K
                               and all(r.heartbeats >= 2 for r in health(c, n).monitor.status(0.0)) for n in IDS), 15)

    # On the wire: the heartbeats that arrive are exactly the ring's sender -> receiver pairs.
    seen: set[tuple[str, str]] = set()
    for nid in IDS:
        node = c.node(nid)
        inner = node.handlers[Heartbeat]

        def spy(ctx, msg, inner=inner, receiver=nid):
            seen.add((msg.node_id or ctx.peer_id, receiver))
            return inner(ctx, msg)

        node.handlers[Heartbeat] = spy
    await wait_for(lambda: seen == ring.pairs(), 5)
    await asyncio.sleep(1.5)  # more than one heartbeat interval: no other pair shows up
    assert seen == ring.pairs() and len(seen) == len(IDS) * K

    r = await c.client.get("/health/heartbeat/status")
    assert r.status_code == 200, r.text
    hb = r.json()
    assert set(hb) >= {"local_node", "interval_ms", "timeout_ms", "failed_after_ms", "peers"}
    assert hb["local_node"] == "node1" and {p["node_id"] for p in hb["peers"]} == ring.monitored("node1")
    assert all(p["status"] == "Healthy" and p["connected"] for p in hb["peers"])
    phi = (await c.client.get("/health/failure-detector/phi-values")).json()
    assert {p["node"] for p in phi["phi_values"]} == ring.monitored("node1")

    # A node node1 watches stops: node1 (one of its K monitors) sees it go Suspected; non-monitors never list it.
    victim = sorted(ring.monitored("node1"))[0]
    monitors = ring.monitors_of(victim)
    await c.node(victim).stop()

    def status_at(observer: str) -> str | None:
        rows = to_wire(health(c, observer).api.heartbeat_status())["peers"]
        return next((p["status"] for p in rows if p["node_id"] == victim), None)

    await wait_for(lambda: all(status_at(m) in ("Suspected", "Failed") for m in monitors), 15)
    for observer in set(IDS) - monitors - {victim}:
        assert status_at(observer) is None
