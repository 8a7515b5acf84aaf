"""Shared value objects, address helpers, config loading and the backend registry."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.discovery import (
    BackendMisconfiguredError,
    BackendNotConfiguredError,
    Candidate,
    DiscoveryEventKind,
    DiscoveryRegistry,
    UnknownBackendError,
    diff_candidates,
)
from rustyray.discovery.dns_srv import DnsDiscovery, DnsDiscoveryConfig
from rustyray.discovery.model import join_host_port, split_host_port
from rustyray.errors import ErrorKind


def c(node: str, host: str = "127.0.0.1", port: int = 7000) -> Candidate:
    return Candidate(node, host, port)


def test_diff_reports_joins_leaves_and_moves():
    old = [c("a"), c("b"), c("m", port=7001)]
    new = [c("b"), c("m", port=7002), c("z")]
    events = [(e.kind, e.candidate.node_id, e.candidate.port) for e in diff_candidates(old, new)]
    assert events == [
        (DiscoveryEventKind.LEAVE, "a", 7000),
        (DiscoveryEventKind.LEAVE, "m", 7001),
        (DiscoveryEventKind.JOIN, "m", 7002),
        (DiscoveryEventKind.JOIN, "z", 7000),
    ]


def test_diff_ignores_meta_only_changes():
    assert diff_candidates([Candidate("a", "h", 1, {"x": 1})], [Candidate("a", "h", 1, {"x": 2})]) == []


def test_candidate_is_hashable_despite_dict_meta():
    assert len({Candidate("a", "h", 1, {"k": [1]}), Candidate("a", "h", 1, {"k": [1]})}) == 1


@settings(max_examples=80)
@given(
    host=st.one_of(st.ip_addresses().map(str), st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)),
    port=st.integers(1, 65535),
)
def test_join_split_roundtrip(host, port):
    assert split_host_port(join_host_port(host, port)) == (host, port)


@pytest.mark.parametrize(
    "text,expected",
    [("127.0.0.1:15353", ("127.0.0.1", 15353)), ("[::1]:53", ("::1", 53)), ("::1", ("::1", 9)), ("ns", ("ns", 9))],
)
def test_split_with_default(text, expected):
    assert split_host_port(text, default_port=9) == expected


@pytest.mark.parametrize("bad", ["h:0", "h:70000", "h:x", "[::1", ":53", "h"])
def test_split_rejects(bad):
    with pytest.raises(ValueError):
        split_host_port(bad)


def test_registry_builds_configured_backend_lazily():
    reg = DiscoveryRegistry.from_dict(
        {"dns": {"service_name": "rustydb", "domain": "cluster.local", "nameservers": ["127.0.0.1:15353"]}}
    )
    assert reg.configured() == ["dns"]
    config = reg.config("dns")
    assert config == DnsDiscoveryConfig(nameservers=("127.0.0.1:15353",))
    backend = reg.get("dns")
    assert isinstance(backend, DnsDiscovery)
    assert reg.get("dns") is backend


def test_registry_explains_unconfigured_backend():
    reg = DiscoveryRegistry.from_dict({})
    with pytest.raises(BackendNotConfiguredError) as info:
        reg.get("consul")
    assert info.value.kind is ErrorKind.UNAVAILABLE
    assert "[discovery.consul]" in str(info.value)
    assert reg.status()["consul"] == {"configured": False, "error": None, "hint": reg.hint("consul")}


def test_registry_reports_invalid_table_with_field_name_and_keeps_others():
    reg = DiscoveryRegistry.from_dict(
        {"etcd": {"lease_ttl_s": 1}, "consul": {"address": "http://127.0.0.1:8500"}, "method": "etcd"}
    )
    assert reg.configured() == ["consul"]
    with pytest.raises(BackendMisconfiguredError) as info:
        reg.get("etcd")
    assert info.value.kind is ErrorKind.CONFLICT
    assert "lease_ttl_s" in info.value.reason and "discovery.etcd" in info.value.reason


def test_registry_rejects_unknown_fields_and_names():
    reg = DiscoveryRegistry.from_dict({"dns": {"domian": "x"}})
    with pytest.raises(BackendMisconfiguredError, match="domian"):
        reg.get("dns")
    with pytest.raises(UnknownBackendError):
        reg.get("zookeeper")


def test_registry_converts_toml_tables_to_tag_pairs():
    reg = DiscoveryRegistry.from_dict({"aws": {"region": "eu-west-1", "tag_filters": {"cluster": "prod"}}})
    assert reg.config("aws").tag_filters == (("cluster", "prod"),)


@pytest.mark.parametrize(
    "name,table",
    [
        ("dns", {"protocol": "sctp"}),
        ("dns", {"nameservers": ["127.0.0.1:99999"]}),
        ("etcd", {"endpoints": ["127.0.0.1:2379"]}),
        ("consul", {"check_ttl_s": 0}),
        ("kubernetes", {"default_port": 0}),
        ("aws", {"region": "us-east-1"}),
        ("azure", {"subscription_id": "s"}),
        ("gcp", {"project": "p", "zone": "z", "instance_group": "g", "access_token": "t", "port": 0}),
    ],
)
def test_every_config_validates(name, table):
    reg = DiscoveryRegistry.from_dict({name: table})
    with pytest.raises(BackendMisconfiguredError):
        reg.get(name)


def test_registry_maps_construction_errors_to_misconfigured(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    reg = DiscoveryRegistry.from_dict({"kubernetes": {"namespace": "database"}})
    with pytest.raises(BackendMisconfiguredError, match="KUBERNETES_SERVICE_HOST"):
        reg.get("kubernetes")
