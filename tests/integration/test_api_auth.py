"""The management API's tokens (serve_apps.auth) on a live in-process cluster.

Reads are open here as on a loopback bind (the harness's policy); every mutating
endpoint needs the admin token; a wrong token is refused even where none is needed;
a cluster whose reads are closed answers nothing without a token but ``/healthz``.
Refusals are 401/403 JSON naming ``authorization`` and counted in ``/metrics``.
"""

from __future__ import annotations

import pytest
from harness import ADMIN_HEADERS, READ_TOKEN, harness_auth, local_cluster, prom_sample

from serve_apps.app import build_app

pytestmark = pytest.mark.asyncio

SEND = {"target_node": "node2", "message_type": "Heartbeat", "data": {"n": 1}, "delivery": "AtLeastOnce"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(2, tmp_path) as c:
        yield c


def _refused(r, status: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == "authorization" and body["status"] == status and "authorization" in body["error"]


async def _failures(cluster, reason: str) -> float:
    r = await cluster.client.get("/metrics")
    return prom_sample(r.text, "rustyray_api_auth_failures_total", reason=reason) or 0.0


async def test_mutations_need_the_admin_token_reads_are_open_on_loopback(cluster):
    async with cluster.client_with() as anon, cluster.client_with(READ) as reader, \
            cluster.client_with({"Authorization": "Bearer wrong"}) as wrong:
        assert (await anon.get("/nodes")).status_code == 200
        assert (await reader.get("/nodes")).status_code == 200
        r = await anon.post("/protocol/encode", json={"message_type": "Heartbeat",
                                                    "data": {"node_id": "node1", "timestamp": 1, "seq": 2}})
        assert r.status_code == 200, r.text  # a POST that only computes is a read

        r = await anon.post("/routing/send", json=SEND)
        _refused(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")
        _refused(await reader.post("/routing/send", json=SEND), 403)
        _refused(await wrong.get("/nodes"), 401)  # a wrong token is an error even where none is needed
        _refused(await anon.post("/membership/leave", json={}), 401)
        assert cluster.node("node1").running and cluster.node("node2").running

    r = await cluster.client.post("/routing/send", json=SEND)  # the admin client
    assert r.status_code == 200 and r.json()["acknowledged"] is True, r.text


async def test_refusals_are_counted_in_metrics(cluster):
    before = {k: await _failures(cluster, k) for k in ("missing", "invalid", "forbidden")}
    async with cluster.client_with() as anon, cluster.client_with(READ) as reader, \
            cluster.client_with({"Authorization": "Bearer wrong"}) as wrong:
        await anon.post("/routing/send", json=SEND)
        await anon.post("/routing/send", json=SEND)
        await wrong.get("/stats")
        await reader.delete("/security/acl/rules/acl-1")
    after = {k: await _failures(cluster, k) for k in before}
    assert after["missing"] == before["missing"] + 2
    assert after["invalid"] == before["invalid"] + 1
    assert after["forbidden"] == before["forbidden"] + 1


async def test_graphql_mutations_need_admin_queries_do_not(cluster):
    query = {"query": "{ peers { nodeId } }"}
    leave = {"query": "mutation { leaveCluster { success nodeId } }"}
    async with cluster.client_with() as anon, cluster.client_with(READ) as reader:
        r = await anon.post("/graphql", json=query)
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        _refused(await anon.post("/graphql", json=leave), 401)
        _refused(await reader.post("/graphql", json=leave), 403)
        # a document with two operations and no operationName is judged as its worst
        both = {"query": "query A { peers { nodeId } } mutation B { leaveCluster { success } }"}
        _refused(await reader.post("/graphql", json=both), 403)
    assert all(n.running for n in cluster.nodes.values())


async def test_closed_reads_need_a_token_but_healthz_stays_open(cluster):
    import httpx

    app = build_app(cluster.gateway, harness_auth(read_open=False))

    def client(headers):
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test", headers=headers)

    async with client({}) as anon, client(READ) as reader, client(ADMIN_HEADERS) as admin:
        _refused(await anon.get("/api/v1/network/nodes"), 401)
        _refused(await anon.get("/metrics"), 401)
        _refused(await anon.post("/api/v1/network/graphql", json={"query": "{ peers { nodeId } }"}), 401)
        assert (await anon.get("/healthz")).status_code == 200
        assert (await reader.get("/api/v1/network/nodes")).status_code == 200
        assert (await admin.get("/api/v1/network/nodes")).status_code == 200
