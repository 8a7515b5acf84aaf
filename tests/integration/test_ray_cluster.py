"""End to end on a real Ray cluster: node actors in a placement group, the Serve API, restarts.

One Ray instance for the module (``ray.init(num_cpus=2)`` in-process), three node
actors started by ``rustyray.launch.start`` exactly as the CLI does, the API on a
free loopback port, and everything stopped at the end.
"""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest
from harness import prom_sample

from serve_apps.auth import admin_headers

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout=60.0, interval=0.25):
    """Poll ``predicate`` until it returns a truthy value; on timeout, report the last exception it raised."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # the cluster may still be settling: keep polling, remember why
            last_exc, value = exc, None
        if value:
            return value
        time.sleep(interval)
    if last_exc is not None:
        raise TimeoutError(f"condition not met in {timeout}s; last exception: {last_exc!r}") from last_exc
    raise TimeoutError(f"condition not met in {timeout}s (predicate stayed falsy, no exception)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from rustyray import launch

    ray.init(num_cpus=2, include_dashboard=False, namespace="rustyray", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    port = _free_port()
    args = launch.parse_args(["--nodes", "3", "--http-port", str(port), "--no-dashboard",
                              "--state-dir", str(tmp_path_factory.mktemp("state"))])
    try:
        summary = launch.start(args)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1/network", timeout=30,
                              headers=admin_headers(summary["state_dir"]))
        yield summary, client
        client.close()
    finally:
        launch.shutdown(False)
        ray.shutdown()


def test_nodes_are_placed_by_one_placement_group(cluster):
    from ray.util import placement_group_table

    table = [pg for pg in placement_group_table().values() if pg["name"] == "rustyray-pg"]
    assert len(table) == 1 and table[0]["state"] == "CREATED" and len(table[0]["bundles"]) == 3


def test_api_lists_live_nodes_from_the_actors(cluster):
    summary, client = cluster
    body = client.get("/nodes").json()
    assert {n["node_id"] for n in body["nodes"]} == {"node1", "node2", "node3"}
    addresses = {n["node_id"]: n["address"] for n in summary["nodes"]}
    for n in body["nodes"]:
        assert n["address"] == addresses[n["node_id"]] and n["state"] == "Alive"


def test_connect_encode_handshake_and_stats_live(cluster):
    _, client = cluster
    nodes = {n["node_id"]: n for n in client.get("/nodes").json()["nodes"]}
    host, port = nodes["node2"]["address"].rsplit(":", 1)
    r = client.post("/transport/tcp/connect", json={"host": host, "port": int(port), "node_id": "node2"}).json()
    assert r["success"] and r["encrypted"], r
    qhost, qport = nodes["node3"]["quic_address"].rsplit(":", 1)
    r = client.post("/transport/quic/connect", json={"host": qhost, "port": int(qport), "node_id": "node3"}).json()
    assert r["success"] and r["protocol"] == "QUIC", r
    assert client.post("/protocol/encode", json={"message_type": "Heartbeat", "compression": "lz4",
                                                 "data": {"node_id": "node1", "timestamp": 1}}).status_code == 200
    assert client.post("/protocol/handshake", json={"node_id": "x", "protocol_version": 1,
                                                    "capabilities": ["lz4"]}).json()["accepted"]
    s1 = client.get("/stats").json()
    s2 = _wait(lambda: (s := client.get("/stats").json())["messages_sent"] > s1["messages_sent"] and s)
    assert s2["bytes_sent"] > s1["bytes_sent"]
    assert client.get("/stats", params={"node": "node7"}).status_code == 404


def _ray_metric(text: str, name: str, **labels: str) -> float | None:
    """A sample of Ray's Prometheus text whose labels include ``labels`` (Ray adds its own)."""
    return prom_sample(text, name, exact=False, **labels)


def test_node_metrics_reach_rays_prometheus_endpoint(cluster):
    """The actors push through ray.util.metrics: Ray's own exporter serves them, ``ray_`` prefixed."""
    node = next(n for n in ray.nodes() if n["Alive"])
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"

    def scrape() -> str:
        return httpx.get(url, timeout=10).text

    wanted = [("ray_rustyray_messages_sent_total", {"node": "node2"}),
              ("ray_rustyray_members", {"node": "node1", "state": "Alive"}),
              ("ray_rustyray_raft_term", {"node": "node3"}),
              ("ray_rustyray_phi", {"node": "node1", "peer": "node2"}),
              ("ray_rustyray_circuit_breaker_state", {"node": "node2", "peer": "node1", "state": "Closed"}),
              ("ray_rustyray_pool_connections", {"node": "node1", "peer": "node3", "state": "idle"}),
              ("ray_rustyray_active_connections", {"node": "node3"})]

    def scrape_with_nodes() -> str | None:
        """A scrape once every node's exporter has pushed once (each pushes on its own period)."""
        text = scrape()
        return text if all(_ray_metric(text, name, **labels) is not None for name, labels in wanted) else None

    first = _wait(scrape_with_nodes, 90)
    for name, labels in wanted:
        assert _ray_metric(first, name, **labels) is not None, (name, labels)
    assert _ray_metric(first, "ray_rustyray_raft_term", node="node3") >= 1
    # counters keep moving (heartbeats, probes): a later scrape shows more messages
    sent = _ray_metric(first, "ray_rustyray_messages_sent_total", node="node2")
    _wait(lambda: _ray_metric(scrape(), "ray_rustyray_messages_sent_total", node="node2") > sent, 90)


def test_killed_node_actor_restarts_and_reconnects(cluster):
    _, client = cluster
    actor = ray.get_actor("node2", namespace="rustyray")
    before = ray.get(actor.info.remote())
    os.kill(before["pid"], 9)

    def back():
        info = ray.get(ray.get_actor("node2", namespace="rustyray").info.remote(), timeout=5)
        return info if info["pid"] != before["pid"] and len(info["connected_peers"]) == 2 else None

    info = _wait(back, timeout=90)
    assert info["incarnation"] == before["incarnation"] + 1
    assert info["address"] == before["address"]  # same port after the restart
    r = client.get("/stats", params={"node": "node2"})
    assert r.status_code == 200


def test_a_node_killed_for_good_is_suspected_then_dead_and_leadership_moves(cluster):
    _, client = cluster
    raft = client.get("/membership/raft/status").json()
    victim = raft["leader"]
    observer = next(n for n in ("node1", "node2", "node3") if n != victim)
    ray.kill(ray.get_actor(victim, namespace="rustyray"), no_restart=True)
    seen: list[str] = []

    def dead():
        swim = client.get("/membership/swim/status", params={"node": observer}).json()
        state = {m["node"]: m["status"] for m in swim["members"]}[victim]
        if not seen or seen[-1] != state:
            seen.append(state)
        return state == "Dead"

    _wait(dead, timeout=30, interval=0.1)
    assert "Suspect" in seen and seen[-1] == "Dead"
    after = _wait(lambda: (r := client.get("/membership/raft/status", params={"node": observer}).json())["leader"]
                  not in (None, victim) and r, timeout=20)
    assert after["term"] > raft["term"]
    # the API keeps answering, fronted by a live node
    assert client.get("/stats").status_code == 200
    # the dead member can be removed from the configuration by the API
    r = client.post("/membership/leave", json={"node_id": victim, "reason": "dead"})
    assert r.status_code == 200 and r.json()["success"]
    assert victim not in client.get("/membership/raft/status", params={"node": observer}).json()["members"]

