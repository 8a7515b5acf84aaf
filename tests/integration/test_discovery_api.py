"""Discovery endpoints (NETWORKING-020..024) live: 3-node in-process clusters against real etcd, dnsmasq
and moto on 127.0.0.1, and the Consul / Kubernetes / Azure / GCP doubles.

Joining is switched off (``join = []``) wherever candidates are not our nodes: nothing ever dials an
instance, pod or foreign address; the formation tests live in test_discovery_formation.py.
"""

from __future__ import annotations

import asyncio
import uuid

import boto3
import pytest
from harness import local_cluster

from tests.servers.fixtures import SrvRecordSpec, free_port
from tests.servers.k8s_double import endpoint_slice

pytestmark = pytest.mark.servers

SRV = "_rustydb._tcp.cluster.local"
REGION = "us-east-1"
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": REGION}


def etcd_table(etcd_server) -> dict:
    prefix = f"/rr-api-{uuid.uuid4().hex[:8]}/"
    return {"endpoints": [etcd_server.url], "key_prefix": prefix, "lease_ttl_s": 5}


async def get_json(client, path: str, status: int = 200) -> dict:
    r = await client.get(path)
    assert r.status_code == status, r.text
    return r.json()


# -- not configured / misconfigured / failing -----------------------------------------------------
async def test_unconfigured_misconfigured_and_failing_backends_say_how_to_fix(tmp_path):
    async with local_cluster(1, tmp_path) as c:
        for path, table in [("/discovery/dns/nodes", "[discovery.dns]"),
                            ("/discovery/kubernetes/nodes", "[discovery.kubernetes]"),
                            ("/discovery/consul/nodes", "[discovery.consul]"),
                            ("/discovery/etcd/nodes", "[discovery.etcd]"),
                            ("/discovery/cloud/aws/nodes", "[discovery.aws]"),
                            ("/discovery/cloud/azure/nodes", "[discovery.azure]"),
                            ("/discovery/cloud/gcp/nodes", "[discovery.gcp]")]:
            body = await get_json(c.client, path, 503)
            assert "not configured" in body["error"] and table in body["error"], (path, body)
            assert "nodes" not in body and "instances" not in body
        r = await c.client.post("/discovery/consul/register",
                                json={"node_id": "n9", "address": "127.0.0.1", "port": 7000})
        assert r.status_code == 503 and "[discovery.consul]" in r.json()["error"]
        body = await get_json(c.client, "/discovery/cloud/digitalocean/nodes", 404)
        assert body["field"] == "provider" and "digitalocean" in body["error"]

        status = await get_json(c.client, "/discovery/status")
        assert status["configured"] == [] and status["health"] == "not_configured"
        assert set(status["backends"]) == {"dns", "etcd", "consul", "kubernetes", "aws", "azure", "gcp"}
        for name, b in status["backends"].items():
            assert b["configured"] is False and f"[discovery.{name}]" in b["hint"]
        init = (await c.client.post("/manager/initialize")).json()
        assert {x["name"]: x["status"] for x in init["components"]}["discovery"] == "not_configured"

        dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the backend is unavailable
        await c.start_node("node2", sections={"discovery": {
            "etcd": {"endpoints": ["ftp://nope"]},
            "consul": {"address": dead, "request_timeout_s": 1.0},
            "join": [], "refresh_interval_s": 60}})
        body = await get_json(c.client, "/discovery/etcd/nodes?node=node2", 409)
        assert "misconfigured" in body["error"] and "endpoints" in body["error"]
        body = await get_json(c.client, "/discovery/consul/nodes?node=node2", 503)
        assert "failed" in body["error"] and dead in body["error"]
        status = await get_json(c.client, "/discovery/status?node=node2")
        assert status["health"] == "degraded"
        assert status["backends"]["consul"]["registration_error"] is not None  # self-registration failed
        assert status["backends"]["consul"]["failures"] == 1
        assert status["backends"]["etcd"]["error"] and status["backends"]["etcd"]["configured"] is False
        init = (await c.client.post("/manager/initialize?node=node2")).json()
        assert {x["name"]: x["status"] for x in init["components"]}["discovery"] == "degraded"

        await c.start_node("node3", sections={"discovery": {"refresh_interval_s": -1, "colour": "blue"}})
        status = await get_json(c.client, "/discovery/status?node=node3")
        assert status["health"] == "degraded" and "colour" in status["config_error"]


# -- etcd (NETWORKING-023) ------------------------------------------------------------------------
async def test_etcd_lists_self_registered_nodes_with_leases_and_drops_a_leaver(tmp_path, etcd_server):
    table = etcd_table(etcd_server)
    section = {"etcd": table, "refresh_interval_s": 1.0}
    async with local_cluster(3, tmp_path, sections={"discovery": section}) as c:
        body = await get_json(c.client, "/discovery/etcd/nodes")
        assert [n["id"] for n in body["nodes"]] == ["node1", "node2", "node3"]
        for n in body["nodes"]:
            assert n["address"] == c.node(n["id"]).tcp_address
            assert isinstance(n["lease_id"], int) and n["lease_id"] > 0
        assert len({n["lease_id"] for n in body["nodes"]}) == 3
        first_revision = body["revision"]
        assert isinstance(first_revision, int) and first_revision > 0
        assert (await get_json(c.client, "/discovery/etcd/nodes?node=node3"))["nodes"] == body["nodes"]

        status = await get_json(c.client, "/discovery/status?node=node2")
        etcd = status["backends"]["etcd"]
        assert status["configured"] == ["etcd"] and status["joined_backends"] == ["etcd"]
        leases = {n["id"]: n["lease_id"] for n in body["nodes"]}
        assert etcd["registration"]["lease_id"] == leases["node2"]
        assert etcd["registration"]["key"] == table["key_prefix"] + "node2"
        seen = {d["id"]: d for d in etcd["discovered"]}
        assert seen["node1"]["quic_address"] == c.node("node1").quic_address
        assert etcd["last_success_at"] is not None and status["health"] == "healthy"

        await c.node("node3").stop()  # graceful leave revokes the lease and deletes the key
        body = await get_json(c.client, "/discovery/etcd/nodes")
        assert [n["id"] for n in body["nodes"]] == ["node1", "node2"]
        assert body["revision"] > first_revision
        await c.start_node("node4", sections={"discovery": {"etcd": table}})
        body = await get_json(c.client, "/discovery/etcd/nodes")
        assert [n["id"] for n in body["nodes"]] == ["node1", "node2", "node4"]


# -- Consul (NETWORKING-022) ----------------------------------------------------------------------
async def test_consul_register_appears_and_bad_bodies_name_the_field(tmp_path, consul_double):
    section = {"consul": {"address": consul_double.base_url, "tags": ["database"]}, "join": []}
    async with local_cluster(3, tmp_path, sections={"discovery": section}) as c:
        body = await get_json(c.client, "/discovery/consul/nodes")
        assert body["service"] == "rustydb"
        assert {n["id"]: n["port"] for n in body["nodes"]} == {f"node{i}": c.node(f"node{i}").tcp_port
                                                              for i in (1, 2, 3)}
        index = body["consul_index"]

        r = await c.client.post("/discovery/consul/register", json={
            "service_name": "rustydb", "node_id": "node9", "address": "127.0.0.9", "port": 5432,
            "tags": ["database", "primary"]})
        assert r.status_code == 200, r.text
        reg = r.json()
        assert reg["registered"] is True and reg["service_id"] == "rustydb-node9"
        assert reg["consul_index"] > index
        body = await get_json(c.client, "/discovery/consul/nodes?node=node2")  # another node sees it too
        node9 = next(n for n in body["nodes"] if n["id"] == "node9")
        assert node9["address"] == "127.0.0.9" and node9["port"] == 5432
        assert set(node9["tags"]) == {"database", "primary"}

        for bad, field in [({"node_id": "n", "address": "127.0.0.1", "port": 0}, "port"),
                           ({"node_id": "n", "address": "127.0.0.1", "port": 70000}, "port"),
                           ({"address": "127.0.0.1", "port": 1}, "node_id"),
                           ({"node_id": "a/b", "address": "127.0.0.1", "port": 1}, "node_id"),
                           ({"node_id": "n", "port": 1}, "address"),
                           ({"node_id": "n", "address": "127.0.0.1", "port": 1, "tags": "x"}, "tags"),
                           ({"node_id": "n", "address": "127.0.0.1", "port": 1, "colour": 1}, "colour")]:
            r = await c.client.post("/discovery/consul/register", json=bad)
            assert r.status_code == 422 and r.json()["field"] == field, (bad, r.text)
        for bad, field in [({"node_id": "n", "address": "127.0.0.1:80", "port": 1}, "address"),
                           ({"service_name": "other", "node_id": "n", "address": "127.0.0.1", "port": 1},
                            "service_name")]:
            r = await c.client.post("/discovery/consul/register", json=bad)
            assert r.status_code == 422 and r.json()["field"] == field, (bad, r.text)

        assert (await c.client.delete("/discovery/consul/register/node9")).json()["deregistered"] is True
        await c.node("node2").stop()  # graceful leave deregisters node2
        body = await get_json(c.client, "/discovery/consul/nodes")
        assert sorted(n["id"] for n in body["nodes"]) == ["node1", "node3"]
        assert consul_double.status_of("rustydb-node2") is None


# -- DNS, Kubernetes, AWS, Azure, GCP (NETWORKING-020, 021, 024) ----------------------------------
@pytest.fixture
def aws(moto_server):
    moto_server.reset()
    ec2 = boto3.client("ec2", endpoint_url=moto_server.url, **CREDS)
    vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]  # instance addresses are loopback ones
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]
    image = ec2.describe_images()["Images"][0]["ImageId"]

    def run(count: int, cluster: str) -> list[str]:
        tags = [{"ResourceType": "instance", "Tags": [{"Key": "rustyray-cluster", "Value": cluster}]}]
        resp = ec2.run_instances(ImageId=image, MinCount=count, MaxCount=count, SubnetId=subnet["SubnetId"],
                                 TagSpecifications=tags)
        return [i["InstanceId"] for i in resp["Instances"]]

    yield moto_server.url, run
    ec2.close()


async def test_dns_kubernetes_and_cloud_backends_follow_their_sources(
        tmp_path, dnsmasq_factory, k8s_double, aws, azure_double, gcp_double):
    dns = dnsmasq_factory(
        [SrvRecordSpec(SRV, "db1.cluster.local", 5432), SrvRecordSpec(SRV, "db2.cluster.local", 5433)],
        [("db1.cluster.local", ["127.0.0.11"]), ("db2.cluster.local", ["127.0.0.12"])], ttl=1)
    await k8s_double.apply("endpointslices", "database", endpoint_slice(
        "rustydb-a", "rustydb", [("rustydb-0", "127.0.0.5", True), ("rustydb-1", "127.0.0.8", False)]))
    moto_url, run_instances = aws
    mine = run_instances(2, "prod")
    run_instances(1, "staging")
    azure_double.add_vm("sub", "rg", "rustydb-vmss", 0, "127.0.2.1", zone="1")
    gcp_double.add_instance("proj", "us-central1-a", "rustydb-ig", "vm-0", "127.0.3.1")
    section = {
        "join": [],
        "dns": {"nameservers": [dns.nameserver], "min_refresh_s": 0.2},
        "kubernetes": {"namespace": "database", "service": "rustydb", "api_server": k8s_double.base_url,
                       "token": "test-token", "ca_path": str(k8s_double.cert_path)},
        "aws": {"region": REGION, "endpoint_url": moto_url, "access_key_id": "testing",
                "secret_access_key": "testing", "tag_filters": {"rustyray-cluster": "prod"}},
        "azure": {"subscription_id": "sub", "resource_group": "rg", "scale_set": "rustydb-vmss",
                  "access_token": "azure-test-token", "base_url": azure_double.base_url},
        "gcp": {"project": "proj", "zone": "us-central1-a", "instance_group": "rustydb-ig",
                "access_token": "gcp-test-token", "base_url": gcp_double.base_url},
    }
    async with local_cluster(3, tmp_path, sections={"discovery": section}) as c:
        body = await get_json(c.client, "/discovery/dns/nodes")
        assert body["discovery_method"] == "DNS-SRV" and body["ttl_seconds"] == 1
        assert body["discovered_nodes"] == [{"id": "db1", "address": "127.0.0.11", "port": 5432},
                                            {"id": "db2", "address": "127.0.0.12", "port": 5433}]
        dns.restart([SrvRecordSpec(SRV, "db3.cluster.local", 5434)], [("db3.cluster.local", ["127.0.0.13"])])

        async def dns_ids() -> list[str]:
            return [n["id"] for n in (await get_json(c.client, "/discovery/dns/nodes"))["discovered_nodes"]]

        for _ in range(60):  # the cached answer lives for its 1 s TTL
            if await dns_ids() == ["db3"]:
                break
            await asyncio.sleep(0.1)
        assert await dns_ids() == ["db3"]

        body = await get_json(c.client, "/discovery/kubernetes/nodes")
        assert body == {"namespace": "database", "service": "rustydb",
                        "nodes": [{"pod": "rustydb-0", "ip": "127.0.0.5", "ready": True},
                                  {"pod": "rustydb-1", "ip": "127.0.0.8", "ready": False}]}
        await k8s_double.apply("endpointslices", "database", endpoint_slice(
            "rustydb-a", "rustydb", [("rustydb-0", "127.0.0.5", True), ("rustydb-1", "127.0.0.8", True)]))
        body = await get_json(c.client, "/discovery/kubernetes/nodes?node=node2")
        assert [n["ready"] for n in body["nodes"]] == [True, True]

        body = await get_json(c.client, "/discovery/cloud/aws/nodes")
        assert body["provider"] == "AWS" and body["region"] == REGION
        assert sorted(i["instance_id"] for i in body["instances"]) == sorted(mine)
        for inst in body["instances"]:
            assert inst["private_ip"].startswith("127.0.1.") and inst["az"] == "us-east-1a"
        mine += run_instances(1, "prod")
        body = await get_json(c.client, "/discovery/cloud/AWS/nodes")
        assert sorted(i["instance_id"] for i in body["instances"]) == sorted(mine)

        body = await get_json(c.client, "/discovery/cloud/azure/nodes")
        assert body["provider"] == "Azure" and [i["private_ip"] for i in body["instances"]] == ["127.0.2.1"]
        azure_double.add_vm("sub", "rg", "rustydb-vmss", 1, "127.0.2.2", zone="2")
        body = await get_json(c.client, "/discovery/cloud/azure/nodes")
        assert [i["private_ip"] for i in body["instances"]] == ["127.0.2.1", "127.0.2.2"]

        body = await get_json(c.client, "/discovery/cloud/gcp/nodes")
        assert body["provider"] == "GCP" and [i["instance_id"] for i in body["instances"]] == ["vm-0"]
        gcp_double.add_instance("proj", "us-central1-a", "rustydb-ig", "vm-1", "127.0.3.2")
        body = await get_json(c.client, "/discovery/cloud/gcp/nodes")
        assert [i["private_ip"] for i in body["instances"]] == ["127.0.3.1", "127.0.3.2"]

        status = await get_json(c.client, "/discovery/status")
        assert status["configured"] == ["dns", "kubernetes", "aws", "azure", "gcp"]
        assert status["joined_backends"] == [] and status["learned_peers"] == []
        assert status["backends"]["etcd"]["configured"] is False and status["backends"]["etcd"]["hint"]
        assert [d["id"] for d in status["backends"]["gcp"]["discovered"]] == ["vm-0", "vm-1"]
        assert status["backends"]["dns"]["rounds"] >= 3 and status["health"] == "healthy"
        for node in c.nodes.values():  # nothing dialled an instance, pod or DNS address
            assert set(node.peers) <= {"node1", "node2", "node3"}
