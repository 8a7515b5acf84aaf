"""``launch --config`` forms the cluster through a discovery backend, on a real Ray cluster.

The TOML names one backend and no seeds. ``rustyray.launch.start`` (what the CLI runs) then starts
the node actors with no member list: each registers in (etcd) or is listed by (DNS SRV) the backend,
joins what it lists, and Raft bootstraps once the expected number of members see each other. Both
servers are real (Debian's etcd and dnsmasq on loopback). One Ray instance for the module; each
test starts and stops its own launch in it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serve_apps.auth import admin_headers
from tests.servers.fixtures import DnsmasqServer, SrvRecordSpec, free_port, free_port_block

ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.ray, pytest.mark.servers]

NODES = ("node1", "node2", "node3")


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, namespace="rustyray", log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def launched(config: Path, state_dir: Path, *extra: str) -> Iterator[tuple[dict[str, Any], httpx.Client]]:
    from rustyray import launch

    port = free_port()
    args = launch.parse_args(["--nodes", str(len(NODES)), "--http-port", str(port), "--no-dashboard",
                              "--config", str(config), "--state-dir", str(state_dir), *extra])
    try:
        summary = launch.start(args)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1/network", timeout=30,
                          headers=admin_headers(summary["state_dir"])) as client:
            yield summary, client
    finally:
        launch.shutdown(False)


def _wait(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(0.25)
    raise TimeoutError(f"condition not met in time (last: {last!r})")


def _formed(client: httpx.Client) -> dict[str, Any]:
    """Raft has a leader over all three and SWIM sees all three Alive, on every node."""
    for node in NODES:
        raft = client.get("/membership/raft/status", params={"node": node}).json()
        if sorted(raft.get("members", [])) != list(NODES) or raft.get("leader") not in NODES:
            return {}
    states = {n["node_id"]: n["state"] for n in client.get("/nodes").json()["nodes"]}
    return raft if states == dict.fromkeys(NODES, "Alive") else {}


def _learned_through(client: httpx.Client, backend: str) -> dict[str, set[str]]:
    out = {}
    for node in NODES:
        status = client.get("/discovery/status", params={"node": node}).json()
        assert status["joined_backends"] == [backend], status
        out[node] = {p["node_id"] for p in status["learned_peers"] if p["backend"] == backend}
    return out


def _spans(edges: dict[str, set[str]]) -> bool:
    reached, todo = set(), [NODES[0]]
    while todo:
        cur = todo.pop()
        if cur in reached:
            continue
        reached.add(cur)
        todo += [b for b in edges.get(cur, ())] + [a for a, bs in edges.items() if cur in bs]
    return reached == set(NODES)


def test_launch_forms_the_cluster_through_etcd(ray_session, etcd_server, tmp_path):
    prefix = f"/rr-launch-{uuid.uuid4().hex[:8]}/"
    config = tmp_path / "etcd.toml"
    config.write_text(f'[discovery]\nrefresh_interval_s = 0.5\n\n[discovery.etcd]\n'
                      f'endpoints = ["{etcd_server.url}"]\nkey_prefix = "{prefix}"\nlease_ttl_s = 5\n')
    with launched(config, tmp_path / "state") as (summary, client):
        raft = _wait(lambda: _formed(client))
        assert raft["commit_index"] >= 1
        body = client.get("/discovery/etcd/nodes").json()
        assert [n["id"] for n in body["nodes"]] == list(NODES)
        addresses = {n["node_id"]: n["address"] for n in summary["nodes"]}
        assert {n["id"]: n["address"] for n in body["nodes"]} == addresses
        assert len({n["lease_id"] for n in body["nodes"]}) == 3 and body["revision"] > 0
        # nobody was given a member list: the etcd listing is how every node got in
        assert _spans(_learned_through(client, "etcd"))
        # the registrations are live data: a stopped node's key goes away with its lease revoked
        r = client.post("/membership/leave", json={"node_id": "node3"})
        assert r.status_code == 200, r.text
        _wait(lambda: [n["id"] for n in client.get("/discovery/etcd/nodes").json()["nodes"]] == ["node1", "node2"],
              30)


def test_launch_forms_the_cluster_through_dns_srv(ray_session, tmp_path):
    base = free_port_block(2 * len(NODES))
    srv = "_rustydb._tcp.cluster.local"
    records = [SrvRecordSpec(srv, f"{n}.cluster.local", base + 2 * i) for i, n in enumerate(NODES)]
    dns = DnsmasqServer(records, [(f"{n}.cluster.local", ["127.0.0.1"]) for n in NODES], ttl=1).start()
    try:
        config = tmp_path / "dns.toml"
        config.write_text(f'[discovery]\nrefresh_interval_s = 0.5\n\n[discovery.dns]\nservice_name = "rustydb"\n'
                          f'domain = "cluster.local"\nnameservers = ["{dns.nameserver}"]\nmin_refresh_s = 0.2\n')
        with launched(config, tmp_path / "state", "--base-port", str(base)) as (summary, client):
            assert [n["address"] for n in summary["nodes"]] == [f"127.0.0.1:{base + 2 * i}" for i in range(3)]
            _wait(lambda: _formed(client))
            body = client.get("/discovery/dns/nodes").json()
            assert body["discovery_method"] == "DNS-SRV"
            assert sorted((n["id"], n["address"], n["port"]) for n in body["discovered_nodes"]) == [
                (n, "127.0.0.1", base + 2 * i) for i, n in enumerate(NODES)]
            assert _spans(_learned_through(client, "dns"))
            status = client.get("/discovery/status", params={"node": "node2"}).json()
            assert all(b["registration"] is None for b in status["backends"].values())  # DNS alone
    finally:
        dns.stop()
