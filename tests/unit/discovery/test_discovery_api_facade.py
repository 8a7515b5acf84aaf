"""DiscoveryApi: input validation and the response contract, over a stand-in service (no node, no loops)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rustyray.api_binding import invoke, to_wire
from rustyray.discovery.api import DiscoveryApi, api_error, is_host
from rustyray.discovery.api_types import (
    CloudNodesRequest,
    ConsulRegisterRequest,
    DiscoveryStatus,
    EtcdNode,
    EtcdNodes,
)
from rustyray.discovery.errors import BackendNotConfiguredError, BackendUnavailableError
from rustyray.discovery.formation import FormationCore
from rustyray.discovery.model import Candidate, DiscoveryResult
from rustyray.discovery.registry import DiscoveryRegistry
from rustyray.errors import DomainError


class StandIn:
    """The parts of DiscoveryService the facade uses; ``discover`` answers from ``answers``."""

    def __init__(self, section: dict, answers: dict | None = None) -> None:
        self.node = SimpleNamespace(node_id="node1", tcp_address="127.0.0.1:7000", peers={})
        self.config = SimpleNamespace(refresh_interval_s=10.0, register=True, join=None, watch=True)
        self.config_error = None
        self.registry = DiscoveryRegistry.from_dict(section)
        self.core = FormationCore("node1", self.config, self.registry.configured())
        self.answers = answers or {}
        self.asked: list[str] = []
        self.api = DiscoveryApi(self)

    def joined_backends(self) -> list[str]:
        return self.core.joined_backends()

    def health(self) -> tuple[str, str]:
        return self.core.health(self.registry.status(), self.config_error)

    async def discover(self, name: str) -> DiscoveryResult:
        self.asked.append(name)
        self.registry.check(name)
        answer = self.answers[name]
        if isinstance(answer, Exception):
            raise answer
        return answer


CONSUL = {"consul": {"address": "http://127.0.0.1:1"}}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"node_id": "", "address": "127.0.0.1", "port": 7000}, "node_id"),
    ({"node_id": "a/b", "address": "127.0.0.1", "port": 7000}, "node_id"),
    ({"node_id": "n9", "address": "127.0.0.1:7000", "port": 7000}, "address"),
    ({"node_id": "n9", "address": "bad host", "port": 7000}, "address"),
    ({"node_id": "n9", "address": "127.0.0.1", "port": 0}, "port"),
    ({"node_id": "n9", "address": "127.0.0.1", "port": True}, "port"),
    ({"node_id": "n9", "address": "127.0.0.1", "port": 7000, "service_name": "other"}, "service_name"),
])
async def test_consul_register_names_the_bad_field(kwargs, field):
    svc = StandIn(CONSUL)
    with pytest.raises(DomainError) as info:
        await svc.api.consul_register(ConsulRegisterRequest(**kwargs))
    assert info.value.field == field
    await svc.registry.aclose()


async def test_consul_register_without_consul_says_how_to_configure_it():
    with pytest.raises(DomainError) as info:
        await StandIn({}).api.consul_register(ConsulRegisterRequest("n9", "127.0.0.1", 7000))
    assert "[discovery.consul]" in str(info.value) and info.value.field is None


async def test_cloud_nodes_checks_the_provider_and_lowercases_it():
    body = {"provider": "aws", "region": "r", "instances": []}
    svc = StandIn({}, {"aws": DiscoveryResult("aws", (), body)})
    with pytest.raises(DomainError) as info:
        await invoke(svc.api.cloud_nodes, {"provider": "digitalocean"})
    assert info.value.field == "provider" and "digitalocean" in str(info.value)
    with pytest.raises(DomainError):  # aws is not configured here: the registry's error
        await svc.api.cloud_nodes(CloudNodesRequest("AWS"))
    assert svc.asked == ["aws"]


async def test_nodes_return_the_body_and_map_backend_failures():
    body = {"nodes": [{"id": "n2", "address": "127.0.0.1:2", "lease_id": 7}], "revision": 3}
    svc = StandIn({"etcd": {"endpoints": ["http://127.0.0.1:1"]}, "dns": {}},
                  {"etcd": DiscoveryResult("etcd", (Candidate("n2", "127.0.0.1", 2),), body),
                   "dns": BackendUnavailableError("no answer")})
    got = await svc.api.etcd_nodes()
    assert got == EtcdNodes(nodes=[EtcdNode("n2", "127.0.0.1:2", 7)], revision=3)
    assert to_wire(got) == body
    with pytest.raises(DomainError) as info:
        await svc.api.dns_nodes()
    assert str(info.value) == "discovery backend 'dns' failed: no answer"


async def test_status_shape_and_refresh_records_errors_without_raising():
    svc = StandIn({"dns": {}}, {"dns": BackendUnavailableError("no answer")})
    result = await svc.api.refresh()
    assert isinstance(result, DiscoveryStatus)
    status = to_wire(result)
    assert svc.asked == ["dns"]
    assert status["configured"] == ["dns"] and status["joined_backends"] == ["dns"]
    assert set(status["backends"]) == {"dns", "etcd", "consul", "kubernetes", "aws", "azure", "gcp"}
    dns = status["backends"]["dns"]
    assert dns["configured"] is True and dns["joined"] is True and dns["registration"] is None
    assert status["learned_peers"] == [] and status["node"] == "node1"


def test_api_error_and_is_host():
    err = api_error("etcd", BackendNotConfiguredError("etcd", "add [discovery.etcd]"))
    assert "not configured" in str(err) and "add [discovery.etcd]" in str(err)
    assert is_host("127.0.0.1") and is_host("::1") and is_host("node1.cluster.local")
    assert not is_host("127.0.0.1:7000") and not is_host("a b") and not is_host(7)
