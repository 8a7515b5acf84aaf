"""Cluster formation through discovery alone: nodes start with no seeds and no bootstrap call, and form
a full mesh because each registers in (or is listed by) a backend and joins what the backend lists.

Backends: real etcd (self-registration on leases), real dnsmasq (SRV records pointing at nodes started
on fixed ports), and the Consul double (self-registration with TTL checks).
"""

from __future__ import annotations

import uuid

import pytest
from harness import local_cluster, wait_for

from tests.servers.fixtures import SrvRecordSpec, free_port

pytestmark = pytest.mark.servers

SRV = "_rustydb._tcp.cluster.local"


def assert_no_static_seeds(cluster) -> None:
    for node in cluster.nodes.values():
        assert node.config.seeds == () and node.config.bootstrap_members == ()
        assert node.services["membership"].cluster_name is None  # nobody called bootstrap


def learned_via(cluster, node_id: str, backend: str) -> set[str]:
    learned = cluster.node(node_id).services["discovery"].learned
    return {k for k, v in learned.items() if v["backend"] == backend}


def discovery_edges_connect_everyone(cluster, backend: str) -> bool:
    """The graph "a learned b through ``backend``" spans every node: no node got in any other way."""
    ids = set(cluster.nodes)
    edges = {a: set() for a in ids}
    for a in ids:
        for b in learned_via(cluster, a, backend):
            edges[a].add(b)
            edges.setdefault(b, set()).add(a)
    reached, todo = set(), [min(ids)]
    while todo:
        cur = todo.pop()
        if cur not in reached:
            reached.add(cur)
            todo.extend(edges.get(cur, ()))
    return reached == ids


async def test_etcd_forms_a_full_mesh_without_seeds(tmp_path, etcd_server):
    section = {"etcd": {"endpoints": [etcd_server.url], "key_prefix": f"/rr-form-{uuid.uuid4().hex[:8]}/",
                        "lease_ttl_s": 5},
               "refresh_interval_s": 0.5}
    async with local_cluster(3, tmp_path, bootstrap=False, sections={"discovery": section}) as c:
        assert_no_static_seeds(c)
        await wait_for(c.fully_meshed, 20)
        assert discovery_edges_connect_everyone(c, "etcd")
        # A late joiner finds everyone the same way, and everyone finds it.
        await c.start_node("node4")
        await wait_for(c.fully_meshed, 20)
        assert all(n.peers["node4"].connected for k, n in c.nodes.items() if k != "node4")
        r = await c.client.get("/discovery/status?node=node4")
        status = r.json()
        learned = {p["node_id"]: p for p in status["learned_peers"]}
        # discovery brought node4 in (it had no seeds); SWIM gossip may teach it some peers first
        assert learned and set(learned) <= {"node1", "node2", "node3"}
        assert all(p["backend"] == "etcd" and p["connected"] and p["learned_at"] > 0
                   for p in learned.values())
        seen = {d["id"]: d for d in status["backends"]["etcd"]["discovered"]}
        assert set(seen) == {"node1", "node2", "node3", "node4"}
        assert seen["node2"]["address"] == c.node("node2").tcp_address


async def test_dns_srv_forms_a_full_mesh_without_seeds(tmp_path, dnsmasq_factory):
    ports = {f"node{i}": free_port() for i in (1, 2, 3)}
    dns = dnsmasq_factory([SrvRecordSpec(SRV, f"{n}.cluster.local", p) for n, p in ports.items()],
                          [(f"{n}.cluster.local", ["127.0.0.1"]) for n in ports], ttl=1)
    section = {"dns": {"nameservers": [dns.nameserver], "min_refresh_s": 0.2}, "refresh_interval_s": 0.5}
    async with local_cluster(0, tmp_path, bootstrap=False, sections={"discovery": section}) as c:
        for node_id, port in ports.items():
            node = await c.start_node(node_id, port=port)
            assert node.tcp_port == port
        assert_no_static_seeds(c)
        await wait_for(c.fully_meshed, 20)
        assert len(c.nodes) == 3 and discovery_edges_connect_everyone(c, "dns")
        status = (await c.client.get("/discovery/status?node=node2")).json()
        assert status["joined_backends"] == ["dns"] and status["health"] == "healthy"
        assert {d["id"]: d["address"] for d in status["backends"]["dns"]["discovered"]} == {
            n: f"127.0.0.1:{p}" for n, p in ports.items()}
        # Nobody registered anywhere: with DNS the records alone formed the cluster.
        assert all(b["registration"] is None for b in status["backends"].values())


async def test_consul_forms_a_full_mesh_without_seeds(tmp_path, consul_double):
    section = {"consul": {"address": consul_double.base_url}, "refresh_interval_s": 0.5}
    async with local_cluster(3, tmp_path, bootstrap=False, sections={"discovery": section}) as c:
        assert_no_static_seeds(c)
        await wait_for(c.fully_meshed, 20)
        for node_id in ("node1", "node2", "node3"):
            assert consul_double.status_of(f"rustydb-{node_id}") == "passing"
        assert discovery_edges_connect_everyone(c, "consul")
