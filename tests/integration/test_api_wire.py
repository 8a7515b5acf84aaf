"""The API's node calls on the nodes' mTLS API channel, on a real Ray cluster (``serve_apps.wire_gateway``).

Values must move when the cluster moves, on the wire path: counters grow after sends, a restarted node is
re-dialled at its new channel port, a node killed for good is shown not alive and answers 503 when asked
for by name, while the fronted API keeps answering. Which path answered is read from the replica's
``WireGateway.stats``.
"""

from __future__ import annotations

import os
import socket
import time

import httpx
import pytest

from serve_apps.auth import admin_headers

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.ray


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout=60.0, interval=0.25):
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # the cluster may still be settling
            last_exc, value = exc, None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"condition not met in {timeout}s; last exception: {last_exc!r}")


def _paths() -> dict[str, int]:
    from ray import serve

    return serve.get_deployment_handle("NetworkAPI", app_name="rustyray").gateway_stats.remote().result()


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


def test_counters_move_on_the_wire_path(cluster):
    _, client = cluster
    for node in ("node1", "node2", "node3"):  # dial every node's channel
        assert client.get("/stats", params={"node": node}).status_code == 200
    before = _paths()
    assert before["wire_setups"] >= 3
    s1 = client.get("/stats").json()
    for i in range(5):
        r = client.post("/routing/send", json={"target_node": "node2", "message_type": "Heartbeat", "data": {"i": i}})
        assert r.status_code == 200, r.text
    s2 = client.get("/stats").json()
    assert s2["node"] == s1["node"] and s2["messages_sent"] >= s1["messages_sent"] + 5
    after = _paths()
    # 5 sends and the second /stats at least (the first may be the ?node=node1 read's 50 ms snapshot)
    assert after["wire_calls"] >= before["wire_calls"] + 6 and after["ray_calls"] == before["ray_calls"]
    bad = client.post("/routing/send", json={"target_node": "node9", "message_type": "Heartbeat"})
    assert bad.status_code == 404 and "node9" in bad.json()["error"]  # the DomainError's kind came through


def test_a_restarted_node_is_redialled_and_its_new_incarnation_shows(cluster):
    _, client = cluster
    before = {n["node_id"]: n for n in client.get("/nodes").json()["nodes"]}["node2"]
    pid = ray.get(ray.get_actor("node2", namespace="rustyray").info.remote())["pid"]
    setups = _paths()["wire_setups"]
    os.kill(pid, 9)

    def restarted():
        nodes = {n["node_id"]: n for n in client.get("/nodes").json()["nodes"]}
        return nodes["node2"]["incarnation"] not in (None, before["incarnation"]) and nodes["node2"]

    after = _wait(restarted, timeout=90)
    assert after["incarnation"] > before["incarnation"]
    # the new actor's channel (a new port) is dialled: at once, or after retry_wire_after_s when the first
    # try came while it was still starting (Ray calls answer meanwhile)
    _wait(lambda: client.get("/stats", params={"node": "node2"}).status_code == 200
          and _paths()["wire_setups"] > setups, timeout=30)
    paths = _paths()
    assert client.get("/transport/connections", params={"node": "node2"}).status_code == 200  # no snapshot read
    now = _paths()
    assert now["wire_calls"] > paths["wire_calls"] and now["ray_calls"] == paths["ray_calls"]


def test_a_node_killed_for_good_is_not_alive_and_answers_503(cluster):
    _, client = cluster
    ray.kill(ray.get_actor("node3", namespace="rustyray"), no_restart=True)

    def gone():
        nodes = {n["node_id"]: n for n in client.get("/nodes").json()["nodes"]}
        return nodes["node3"]["state"] != "Alive" and nodes["node3"]["address"] is None and nodes

    nodes = _wait(gone, timeout=30)
    assert nodes["node1"]["state"] == "Alive" and nodes["node1"]["address"] is not None
    r = client.get("/stats", params={"node": "node3"})
    assert r.status_code == 503 and r.json()["field"] == "node"
    assert client.get("/stats").status_code == 200  # fronted by a live node
