"""Real servers and HTTP doubles for the discovery tests, as importable helpers and pytest fixtures.

Every server binds 127.0.0.1 on a free port and is stopped by its fixture. etcd and dnsmasq are real
Debian binaries (``scripts/install_test_servers.sh`` installs them); moto runs its real server in a
thread. Consul, Kubernetes, Azure and GCP are doubles in this package. To use the fixtures from a
conftest: ``from tests.servers.fixtures import *  # noqa: F403``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.servers.azure_double import AzureDouble
from tests.servers.consul_double import ConsulDouble
from tests.servers.gcp_double import GcpDouble
from tests.servers.k8s_double import K8sDouble

INSTALL_HINT = "run scripts/install_test_servers.sh (installs Debian etcd-server and dnsmasq-base)"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that was free on 127.0.0.1 a moment ago (TCP by default)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(n: int) -> int:
    """A base port such that base .. base+n-1 are free for TCP and UDP on 127.0.0.1 right now."""
    for _ in range(200):
        base = free_port()
        if base + n >= 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + n):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free block of ports on 127.0.0.1")


def free_dual_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (for DNS servers)."""
    for _ in range(50):
        port = free_port()
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", port))
            return port
    raise RuntimeError("no free TCP+UDP port on 127.0.0.1")


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path is None:
        raise RuntimeError(f"{name} is not installed: {INSTALL_HINT}")
    return path


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} in {timeout_s}s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


class EtcdServer:
    """A single-member etcd on loopback client/peer ports with a throwaway data dir."""

    def __init__(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="rr-etcd-"))
        self.client_port = free_port()
        self.peer_port = free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> EtcdServer:
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = self._dir / "etcd.log"
        cmd = [
            _binary("etcd"),
            "--name", "default",
            "--data-dir", str(self._dir / "data"),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
            "--listen-metrics-urls", "",
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        _wait_tcp(self.client_port, self._proc, log)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # listening is not serving: wait for a leader
            with (
                contextlib.suppress(OSError, ValueError),
                urllib.request.urlopen(self.url + "/health", timeout=1) as resp,
            ):
                if json.loads(resp.read()).get("health") == "true":
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"etcd not healthy: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        _stop(self._proc)
        shutil.rmtree(self._dir, ignore_errors=True)


@dataclass(frozen=True)
class SrvRecordSpec:
    """One ``--srv-host`` line: ``_service._proto.domain`` -> target:port."""

    name: str
    target: str
    port: int
    priority: int = 0
    weight: int = 0


class DnsmasqServer:
    """dnsmasq serving only the given SRV and host records (no upstream, no /etc/hosts) on loopback."""

    def __init__(
        self,
        srv: Sequence[SrvRecordSpec] = (),
        hosts: Sequence[tuple[str, Sequence[str]]] = (),
        ttl: int = 30,
        local_domains: Sequence[str] = ("cluster.local",),
    ) -> None:
        self.local_domains = list(local_domains)
        self._dir = Path(tempfile.mkdtemp(prefix="rr-dnsmasq-"))
        self.port = free_dual_port()
        self.srv = list(srv)
        self.hosts = list(hosts)
        self.ttl = ttl
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def nameserver(self) -> str:
        """The ``nameservers`` entry for DnsDiscoveryConfig."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> DnsmasqServer:
        cmd = [
            _binary("dnsmasq"),
            "--no-daemon",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--conf-file=/dev/null",
            "--log-facility=-",
            f"--local-ttl={self.ttl}",
            f"--pid-file={self._dir / 'dnsmasq.pid'}",
        ]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        for r in self.srv:
            cmd.append(f"--srv-host={r.name},{r.target},{r.port},{r.priority},{r.weight}")
        for name, addresses in self.hosts:
            cmd.append(f"--host-record={name},{','.join(addresses)}")
        for domain in self.local_domains:  # answer NXDOMAIN/NODATA there instead of REFUSED (no upstream)
            cmd.append(f"--local=/{domain}/")
        log = self._dir / "dnsmasq.log"
        self._proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        _wait_tcp(self.port, self._proc, log)
        return self

    def restart(
        self, srv: Sequence[SrvRecordSpec], hosts: Sequence[tuple[str, Sequence[str]]], ttl: int | None = None
    ) -> None:
        """Serve a new record set on the same port (dnsmasq cannot change SRV records on SIGHUP)."""
        _stop(self._proc)
        self.srv, self.hosts = list(srv), list(hosts)
        if ttl is not None:
            self.ttl = ttl
        self.start()

    def stop(self) -> None:
        _stop(self._proc)
        shutil.rmtree(self._dir, ignore_errors=True)


class MotoServer:
    """moto's real HTTP server in a thread on 127.0.0.1; ``reset()`` wipes its state between tests."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""

    def start(self) -> MotoServer:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=5):
            pass

    def stop(self) -> None:
        self._server.stop()


class FakeClock:
    """A settable clock for doubles and adapters that take ``clock=``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- pytest fixtures ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def etcd_server() -> Iterator[EtcdServer]:
    """A fresh etcd per test module (tests isolate themselves by key prefix)."""
    server = EtcdServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dnsmasq_factory() -> Iterator[type[DnsmasqServer]]:
    """Call with (srv, hosts, ttl, local_domains) to start dnsmasq servers; all are stopped after the test."""
    started: list[DnsmasqServer] = []

    def make(
        srv: Sequence[SrvRecordSpec] = (),
        hosts: Sequence[tuple[str, Sequence[str]]] = (),
        ttl: int = 30,
        local_domains: Sequence[str] = ("cluster.local",),
    ) -> DnsmasqServer:
        server = DnsmasqServer(srv, hosts, ttl, local_domains).start()
        started.append(server)
        return server

    try:
        yield make  # type: ignore[misc]
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def consul_double(fake_clock: FakeClock) -> AsyncIterator[ConsulDouble]:
    """Consul agent double driven by ``fake_clock`` (advance it to expire TTL checks)."""
    double = ConsulDouble(clock=fake_clock, reap_interval_s=0.02)
    await double.start()
    try:
        yield double
    finally:
        await double.stop()


@pytest_asyncio.fixture
async def k8s_double(tmp_path: Path) -> AsyncIterator[K8sDouble]:
    """HTTPS API-server double; token "test-token", CA bundle at ``double.cert_path``."""
    double = K8sDouble("test-token", tmp_path / "k8s-tls")
    await double.start()
    try:
        yield double
    finally:
        await double.stop()


@pytest_asyncio.fixture
async def azure_double() -> AsyncIterator[AzureDouble]:
    double = AzureDouble("azure-test-token")
    await double.start()
    try:
        yield double
    finally:
        await double.stop()


@pytest_asyncio.fixture
async def gcp_double() -> AsyncIterator[GcpDouble]:
    double = GcpDouble("gcp-test-token")
    await double.start()
    try:
        yield double
    finally:
        await double.stop()


__all__ = [
    "DnsmasqServer",
    "EtcdServer",
    "FakeClock",
    "MotoServer",
    "SrvRecordSpec",
    "azure_double",
    "consul_double",
    "dnsmasq_factory",
    "etcd_server",
    "fake_clock",
    "free_port",
    "free_port_block",
    "gcp_double",
    "k8s_double",
    "moto_server",
]
