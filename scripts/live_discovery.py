"""Issue 7's "done when", reproducibly: a 5-node ``rustyray.launch --config`` against real servers.

Starts on 127.0.0.1 only: Debian's etcd and dnsmasq (SRV records for the five nodes' fixed ports),
moto's EC2 server (a VPC in 127.0.0.0/16, so instance addresses are loopback ones) and the HTTP
doubles under ``tests/servers`` for the services that cannot run here (Consul agent, Kubernetes API
server, Azure and GCP compute APIs). Writes one TOML naming all of them, with mDNS, UDP broadcast on
127.255.255.255, beacons, Serf and anti-entropy switched on, runs
``python -m rustyray.launch --nodes 5 --config ... --state-dir ...`` as a user would, waits for the
cluster to form through etcd (no seed list), calls every discovery and autodiscovery endpoint
(NETWORKING-020 to 030) and prints what each answered. Everything is stopped at the end.

    python scripts/live_discovery.py [--http-port 18080] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402
import httpx  # noqa: E402

from tests.servers.azure_double import AzureDouble  # noqa: E402
from tests.servers.consul_double import ConsulDouble  # noqa: E402
from tests.servers.fixtures import (  # noqa: E402
    DnsmasqServer,
    EtcdServer,
    MotoServer,
    SrvRecordSpec,
    free_port_block,
)
from tests.servers.gcp_double import GcpDouble  # noqa: E402
from tests.servers.k8s_double import K8sDouble, endpoint_slice  # noqa: E402

NODES = [f"node{i}" for i in range(1, 6)]
SRV = "_rustydb._tcp.cluster.local"


def say(msg: str) -> None:
    print(f"[live-discovery] {msg}", flush=True)


class DoubleLoop:
    """The aiohttp doubles on one event loop in a thread (the launch subprocess reaches them by TCP)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def toml_value(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, bool) else ("true" if v else "false")


def write_toml(path: Path, tables: dict[str, dict[str, Any]]) -> None:
    lines = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        for k, v in table.items():
            if isinstance(v, dict):
                inner = ", ".join(f"{ik} = {toml_value(iv)}" for ik, iv in v.items())
                lines.append(f"{k} = {{ {inner} }}")
            else:
                lines.append(f"{k} = {toml_value(v)}")
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> int:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request log lines
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--http-port", type=int, default=18080)
    ap.add_argument("--json", default=None, help="write the endpoint answers here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rr-live-discovery-"))
    base = free_port_block(2 * len(NODES))
    servers: list[Any] = []
    doubles = DoubleLoop()
    launch = None
    results: list[dict[str, Any]] = []
    try:
        say("starting etcd, dnsmasq and moto on 127.0.0.1 ...")
        etcd = EtcdServer().start()
        servers.append(etcd)
        dns = DnsmasqServer([SrvRecordSpec(SRV, f"{n}.cluster.local", base + 2 * i) for i, n in enumerate(NODES)],
                            [(f"{n}.cluster.local", ["127.0.0.1"]) for n in NODES], ttl=5).start()
        servers.append(dns)
        moto = MotoServer().start()
        servers.append(moto)
        ec2 = boto3.client("ec2", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        vpc = ec2.create_vpc(CidrBlock="127.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="127.0.1.0/24")["Subnet"]["SubnetId"]
        image = ec2.describe_images()["Images"][0]["ImageId"]
        ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2, SubnetId=subnet, TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "rustyray-cluster", "Value": "prod"}]}])

        say("starting the Consul, Kubernetes, Azure and GCP doubles on 127.0.0.1 ...")
        consul = ConsulDouble()
        k8s = K8sDouble("live-token", work / "k8s-tls")
        azure = AzureDouble("azure-token")
        gcp = GcpDouble("gcp-token")
        for d in (consul, k8s, azure, gcp):
            doubles.run(d.start())
        doubles.run(k8s.apply("endpointslices", "database", endpoint_slice(
            "rustydb-a", "rustydb", [("rustydb-0", "127.0.0.5", True), ("rustydb-1", "127.0.0.8", False)])))
        azure.add_vm("sub", "rg", "rustydb-vmss", 0, "127.0.2.1", zone="1")
        gcp.add_instance("proj", "us-central1-a", "rustydb-ig", "vm-0", "127.0.3.1")

        config = work / "cluster.toml"
        broadcast_port = free_port_block(1)
        write_toml(config, {
            "discovery": {"join": ["etcd"], "refresh_interval_s": 1.0},
            "discovery.etcd": {"endpoints": [etcd.url], "key_prefix": "/rustyray/live/", "lease_ttl_s": 5},
            "discovery.dns": {"service_name": "rustydb", "domain": "cluster.local", "nameservers": [dns.nameserver]},
            "discovery.consul": {"address": consul.base_url, "tags": ["database"]},
            "discovery.kubernetes": {"namespace": "database", "service": "rustydb", "api_server": k8s.base_url,
                                     "token": "live-token", "ca_path": str(k8s.cert_path)},
            "discovery.aws": {"region": "us-east-1", "endpoint_url": moto.url, "access_key_id": "testing",
                              "secret_access_key": "testing", "tag_filters": {"rustyray-cluster": "prod"}},
            "discovery.azure": {"subscription_id": "sub", "resource_group": "rg", "scale_set": "rustydb-vmss",
                                "access_token": "azure-token", "base_url": azure.base_url},
            "discovery.gcp": {"project": "proj", "zone": "us-central1-a", "instance_group": "rustydb-ig",
                              "access_token": "gcp-token", "base_url": gcp.base_url},
            "autodiscovery.mdns": {"enabled": True, "interfaces": ["127.0.0.1"]},
            "autodiscovery.broadcast": {"enabled": True, "broadcast_address": "127.255.255.255",
                                        "port": broadcast_port},
            "autodiscovery.beacon": {"enabled": True, "interval_ms": 1000, "ttl_ms": 5000},
            "autodiscovery.serf": {"enabled": True},
            "autodiscovery.anti_entropy": {"enabled": True},
        })
        say(f"config: {config}")
        cmd = [sys.executable, "-m", "rustyray.launch", "--nodes", str(len(NODES)), "--config", str(config),
               "--state-dir", str(work / "state"), "--http-port", str(args.http_port), "--base-port", str(base),
               "--no-dashboard"]
        say("$ " + " ".join(cmd))
        log = (work / "launch.log").open("w")
        launch = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        api = f"http://127.0.0.1:{args.http_port}/api/v1/network"
        client = httpx.Client(base_url=api, timeout=30, trust_env=False)
        deadline = time.monotonic() + 240
        while True:
            if launch.poll() is not None:
                raise RuntimeError(f"launch exited {launch.returncode}: {(work / 'launch.log').read_text()[-3000:]}")
            try:
                raft = client.get("/membership/raft/status").json()
                if len(raft.get("members", [])) == len(NODES) and raft.get("leader"):
                    break
            except (httpx.HTTPError, ValueError):  # not up yet, or Serve's "path not found" before deploy
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("the cluster did not form through etcd")
            time.sleep(1)
        say(f"formed through etcd: Raft leader {raft['leader']}, members {raft['members']}")

        calls = [
            ("020", "GET", "/discovery/dns/nodes", None),
            ("021", "GET", "/discovery/kubernetes/nodes", None),
            ("022", "POST", "/discovery/consul/register",
             {"service_name": "rustydb", "node_id": "node9", "address": "127.0.0.9", "port": 5432,
              "tags": ["database", "primary"]}),
            ("022", "GET", "/discovery/consul/nodes", None),
            ("023", "GET", "/discovery/etcd/nodes", None),
            ("024", "GET", "/discovery/cloud/aws/nodes", None),
            ("024", "GET", "/discovery/cloud/azure/nodes", None),
            ("024", "GET", "/discovery/cloud/gcp/nodes", None),
            ("--", "GET", "/discovery/status", None),
            ("025", "GET", "/autodiscovery/gossip/state", None),
            ("026", "GET", "/autodiscovery/mdns/discovered", None),
            ("027", "POST", "/autodiscovery/broadcast/announce",
             {"broadcast_address": "127.255.255.255", "port": broadcast_port}),
            ("028", "GET", "/autodiscovery/beacon/status", None),
            ("029", "GET", "/autodiscovery/serf/members", None),
            ("029", "POST", "/autodiscovery/serf/event", {"name": "deploy", "payload": "v2", "coalesce": True}),
            ("029", "POST", "/autodiscovery/serf/query", {"name": "ping", "payload": "", "timeout_ms": 1000}),
            ("030", "POST", "/autodiscovery/anti-entropy/sync", {"target_node": "node2"}),
        ]
        time.sleep(6)  # a few beacon intervals and mDNS announcements
        for spec, method, path, body in calls:
            r = client.request(method, path, json=body)
            try:
                answer = r.json()
            except ValueError:
                answer = r.text
            results.append({"spec": spec, "method": method, "path": path, "status": r.status_code,
                            "answer": answer})
            text = json.dumps(answer)
            print(f"  {spec}  {r.status_code}  {method:4} {path:40} {text[:150]}{'...' if len(text) > 150 else ''}")
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        bad = [r for r in results if r["status"] >= 400]
        say(f"{len(results) - len(bad)}/{len(results)} endpoints answered 2xx")
        return 1 if bad else 0
    finally:
        if launch is not None and launch.poll() is None:
            os.killpg(launch.pid, signal.SIGTERM)
            try:
                launch.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(launch.pid, signal.SIGKILL)
        for d in ("consul", "k8s", "azure", "gcp"):
            obj = locals().get(d)
            if obj is not None:
                try:
                    doubles.run(obj.stop())
                except Exception as exc:  # keep stopping the rest
                    say(f"stopping {d}: {exc}")
        doubles.close()
        for s in servers:
            s.stop()
        say(f"stopped; logs in {work}")


if __name__ == "__main__":
    raise SystemExit(main())
