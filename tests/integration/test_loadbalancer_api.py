"""Load-balancer endpoints (NETWORKING-037..043) against a live in-process 3-node cluster."""

from __future__ import annotations

import re
import time

import pytest
from harness import local_cluster, wait_for

from rustyray.errors import DomainError
from rustyray.loadbalancer.retry import RetryStrategy
from serve_apps.errors import http_status

SECTIONS = {"loadbalancer": {"load_poll_interval_sec": 0.2,
                             "circuit_breaker": {"failure_threshold": 3, "open_timeout_sec": 2.0}}}
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture
async def cluster(tmp_path):
    async with local_cluster(3, tmp_path, sections=SECTIONS) as c:
        yield c


def lb(cluster, node_id="node1"):
    return cluster.node(node_id).services["loadbalancer"]


async def select(cluster, **body):
    r = await cluster.client.post("/loadbalancer/select", json=body)
    assert r.status_code == 200, r.text
    return r.json()


async def test_round_robin_cycles_exactly_through_live_members(cluster):
    picks = [await select(cluster, strategy="RoundRobin") for _ in range(6)]
    assert [p["selected_node"] for p in picks] == ["node1", "node2", "node3"] * 2
    counts = [p["request_count"] for p in picks]
    assert counts == list(range(counts[0], counts[0] + 6))
    await cluster.node("node3").stop()
    await wait_for(lambda: "node3" not in cluster.node("node1").live_members())
    picks = [(await select(cluster, strategy="RoundRobin"))["selected_node"] for _ in range(4)]
    assert sorted(picks) == ["node1", "node1", "node2", "node2"]
    assert picks[0] != picks[1] and picks[1] != picks[2]


async def test_least_connections_follows_real_pool_connections(cluster):
    body = await select(cluster, strategy="LeastConnections", available_nodes=["node2", "node3"])
    assert body["node_connections"] == {"node2": 1, "node3": 1}
    assert body["selected_node"] == "node2"  # tie broken by id
    r = await cluster.client.post("/pool/warmup", json={"node": "node2", "target_size": 3})
    assert r.json()["established"] == 3
    body = await select(cluster, strategy="LeastConnections", available_nodes=["node2", "node3"])
    assert body["node_connections"] == {"node2": 3, "node3": 1} and body["selected_node"] == "node3"
    await cluster.client.post("/pool/warmup", json={"node": "node3", "target_size": 4})
    body = await select(cluster, strategy="LeastConnections", available_nodes=["node2", "node3"])
    assert body["node_connections"] == {"node2": 3, "node3": 4} and body["selected_node"] == "node2"
    real = sum(1 for c in cluster.node("node1").connections.values()
               if c.peer_node_id == "node3" and c.outbound and not c.is_closed)
    assert real == 4


async def test_consistent_hash_is_stable_per_key_and_spreads_keys(cluster):
    first = await select(cluster, strategy="ConsistentHash", routing_key="user_12345")
    again = await select(cluster, strategy="ConsistentHash", routing_key="user_12345")
    assert first == again and isinstance(first["hash_value"], int)
    owners = {(await select(cluster, strategy="ConsistentHash", routing_key=f"user_{i}"))["selected_node"]
              for i in range(40)}
    assert owners == {"node1", "node2", "node3"}


async def test_adaptive_scores_use_reported_load_and_send_outcomes(cluster):
    service = lb(cluster)
    await wait_for(lambda: set(service.reports) == {"node1", "node2", "node3"})
    stats = (await cluster.client.get("/loadbalancer/stats")).json()
    assert {n["node"] for n in stats["nodes"] if "reported_at" in n} == {"node1", "node2", "node3"}
    for _ in range(2):  # slow failures below the breaker threshold
        service.before_send("node2")
        service.after_send("node2", False, 400.0)
    picks = [await select(cluster, strategy="Adaptive") for _ in range(15)]
    scores = picks[-1]["load_scores"]
    assert set(scores) == {"node1", "node2", "node3"}
    assert scores["node2"] > max(scores["node1"], scores["node3"]) + 20
    assert "node2" not in {p["selected_node"] for p in picks}  # two choices never pick the worst


async def test_open_circuit_removes_node_until_it_recovers(cluster):
    service = lb(cluster)
    for _ in range(3):
        service.before_send("node2")
        service.after_send("node2", False, 5.0)
    status = (await cluster.client.get("/loadbalancer/circuit-breaker/status")).json()
    rows = {c["node"]: c for c in status["circuits"]}
    assert set(rows) == {"node1", "node2", "node3"}
    assert rows["node2"]["state"] == "Open" and rows["node2"]["failure_count"] == 3
    assert ISO_UTC.match(rows["node2"]["opened_at"])
    assert rows["node1"] == {"node": "node1", "state": "Closed", "failure_count": 0}
    with pytest.raises(DomainError) as err:
        service.before_send("node2")
    assert http_status(err.value) == 503 and err.value.field == "target_node"
    picks = [await select(cluster, strategy="RoundRobin") for _ in range(4)]
    assert {p["selected_node"] for p in picks} == {"node1", "node3"}
    assert picks[0]["skipped"] == {"node2": "circuit Open"}
    await wait_for(lambda: service.breakers.get("node2").can_attempt(time.monotonic()), 6)
    service.before_send("node2")  # the half-open trial
    service.after_send("node2", True, 1.0)
    status = (await cluster.client.get("/loadbalancer/circuit-breaker/status")).json()
    assert {c["node"]: c["state"] for c in status["circuits"]}["node2"] == "Closed"
    picks = [(await select(cluster, strategy="RoundRobin"))["selected_node"] for _ in range(3)]
    assert sorted(picks) == ["node1", "node2", "node3"]


async def test_rate_limit_applies_cluster_wide_and_refuses_sends(cluster):
    r = await cluster.client.post("/loadbalancer/rate-limit/set",
                                  json={"node": "node2", "requests_per_second": 0.01, "burst_size": 2})
    body = r.json()
    assert {k: body[k] for k in ("applied", "node", "rps", "burst")} == \
        {"applied": True, "node": "node2", "rps": 0.01, "burst": 2}
    assert sorted(body["applied_nodes"]) == ["node1", "node2", "node3"]
    limits = (await cluster.client.get("/loadbalancer/rate-limit", params={"node": "node3"})).json()
    assert [(x["node"], x["burst"]) for x in limits["limits"]] == [("node2", 2)]
    service = lb(cluster)
    for _ in range(2):
        service.before_send("node2")
        service.after_send("node2", True, 1.0)
    with pytest.raises(DomainError) as err:
        service.before_send("node2")
    assert (http_status(err.value), err.value.field) == (429, "target_node")
    assert "rate limited" in err.value.message
    picks = [await select(cluster, strategy="RoundRobin") for _ in range(4)]
    assert "node2" not in {p["selected_node"] for p in picks}
    assert picks[0]["skipped"] == {"node2": "rate limited"}
    with pytest.raises(DomainError):  # node3 got the same limit: its own bucket for node2 empties too
        for _ in range(3):
            lb(cluster, "node3").before_send("node2")
    assert (await cluster.client.get("/loadbalancer/rate-limit")).json()["refused"]["rate_limited"] >= 1
    if "routing" in cluster.node("node1").services:
        send = {"target_node": "node2", "message_type": "QueryRequest", "data": {"query": "x"}}
        r = await cluster.client.post("/routing/send", json=send)
        assert r.status_code == 429 and r.json()["field"] == "target_node"


async def test_retry_policy_is_live_on_every_member(cluster):
    r = await cluster.client.post("/loadbalancer/retry/configure", json={
        "strategy": "ExponentialBackoff", "max_attempts": 3, "initial_delay_ms": 100, "max_delay_ms": 5000})
    body = r.json()
    assert body["configured"] is True and body["strategy"] == "ExponentialBackoff"
    for node_id in ("node1", "node2", "node3"):
        policy = lb(cluster, node_id).retry_policy
        assert policy.strategy is RetryStrategy.EXPONENTIAL_BACKOFF and policy.max_attempts == 3
        assert policy.initial_delay_ms == 100 and policy.max_delay_ms == 5000
    r = await cluster.client.post("/loadbalancer/retry/configure", params={"node": "node2"}, json={
        "strategy": "Fixed", "max_attempts": 5, "initial_delay_ms": 50, "max_delay_ms": 50, "scope": "node"})
    assert r.json()["applied_nodes"] == ["node2"]
    assert lb(cluster, "node2").retry_policy.strategy is RetryStrategy.FIXED
    assert lb(cluster, "node1").retry_policy.strategy is RetryStrategy.EXPONENTIAL_BACKOFF
    assert (await cluster.client.get("/loadbalancer/retry")).json()["strategy"] == "ExponentialBackoff"


@pytest.mark.parametrize("path,body,status,field", [
    ("/loadbalancer/select", {"strategy": "Random"}, 422, "strategy"),
    ("/loadbalancer/select", {"strategy": "ConsistentHash"}, 422, "routing_key"),
    ("/loadbalancer/select", {"strategy": "RoundRobin", "available_nodes": []}, 422, "available_nodes"),
    ("/loadbalancer/select", {"strategy": "RoundRobin", "available_nodes": ["node2", "node9"]}, 404,
     "available_nodes"),
    ("/loadbalancer/rate-limit/set", {"node": "node2", "requests_per_second": 0, "burst_size": 5}, 422,
     "requests_per_second"),
    ("/loadbalancer/rate-limit/set", {"node": "node2", "requests_per_second": 10, "burst_size": -1}, 422,
     "burst_size"),
    ("/loadbalancer/rate-limit/set", {"node": "node9", "requests_per_second": 10, "burst_size": 5}, 404,
     "node"),
    ("/loadbalancer/retry/configure", {"strategy": "Sometimes", "max_attempts": 3, "initial_delay_ms": 1,
                                       "max_delay_ms": 2}, 422, "strategy"),
    ("/loadbalancer/retry/configure", {"strategy": "Fixed", "max_attempts": 0, "initial_delay_ms": 1,
                                       "max_delay_ms": 2}, 422, "max_attempts"),
    ("/loadbalancer/retry/configure", {"strategy": "Fixed", "max_attempts": 2, "initial_delay_ms": 900,
                                       "max_delay_ms": 100}, 422, "initial_delay_ms"),
])
async def test_bad_input_is_refused_naming_the_field(cluster, path, body, status, field):
    r = await cluster.client.post(path, json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field
    assert lb(cluster).limits == {}


async def test_service_select_raises_the_same_errors_for_direct_callers(cluster):
    """The routing service calls ``select`` without pydantic in front: the service validates too."""
    for args, field in [(("Random",), "strategy"), (("ConsistentHash", None, None), "routing_key"),
                        (("RoundRobin", ["node7"]), "available_nodes")]:
        with pytest.raises(DomainError) as err:
            lb(cluster).select(*args)
        assert err.value.field == field and http_status(err.value) in (404, 422)
