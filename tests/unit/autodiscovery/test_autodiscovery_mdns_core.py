"""mDNS sans-I/O parts: TXT format, parsing, registry filtering, config validation."""

from __future__ import annotations

import pytest

from rustyray.autodiscovery.mdns_core import MdnsConfig, MdnsRegistry, build_txt, instance_name, parse_service


def test_txt_round_trip() -> None:
    txt = build_txt("node-7", {"tcp": 7000, "quic": 7001}, "prod")
    props = {k.encode(): v.encode() for k, v in txt.items()}
    node = parse_service(server="node-7.local.", addresses=["fe80::1", "127.0.0.1"], port=7000, properties=props)
    assert node is not None
    assert (node.hostname, node.ip, node.port, node.node_id, node.cluster) == (
        "node-7.local",
        "127.0.0.1",
        7000,
        "node-7",
        "prod",
    )
    assert node.ports == {"tcp": 7000, "quic": 7001}


@pytest.mark.parametrize(
    ("addresses", "port", "props"),
    [
        ([], 1, {b"node_id": b"a"}),
        (["127.0.0.1"], 1, {}),
        (["::1"], 1, {b"node_id": b"a"}),
        (["127.0.0.1"], 0, {b"node_id": b"a"}),
    ],
)
def test_foreign_or_incomplete_instances_are_not_peers(addresses: list[str], port: int, props: dict) -> None:
    assert parse_service(server=None, addresses=addresses, port=port, properties=props) is None


def test_registry_excludes_self_and_other_clusters() -> None:
    reg = MdnsRegistry("me", "prod")

    def mk(nid: str, cluster: str | None):
        txt = build_txt(nid, {}, cluster)
        return parse_service(server=None, addresses=["127.0.0.1"], port=1, properties=txt)

    assert not reg.update("i1", mk("me", "prod"))
    assert not reg.update("i2", mk("b", "staging"))
    assert reg.update("i3", mk("c", "prod"))
    assert [d["node_id"] for d in reg.discovered()] == ["c"]
    assert reg.remove("i3") is not None and reg.discovered() == []


def test_instance_names_are_single_labels() -> None:
    name = instance_name("host.example.com", "_rustydb._tcp.local.")
    assert name == "host-example-com._rustydb._tcp.local."
    assert len(instance_name("x" * 100, "_rustydb._tcp.local.").split(".")[0]) == 63


def test_config_validation() -> None:
    MdnsConfig().validate()
    MdnsConfig.local().validate()
    assert MdnsConfig().enabled is False
    with pytest.raises(ValueError, match="interfaces"):
        MdnsConfig(interfaces=("::1",)).validate()
    with pytest.raises(ValueError, match="service_type"):
        MdnsConfig(service_type="rustydb").validate()


def test_transport_addresses_prefer_the_txt_ports() -> None:
    from rustyray.autodiscovery.mdns_core import DiscoveredNode

    plain = DiscoveredNode(hostname="h", ip="127.0.0.1", port=7000, node_id="n")
    assert plain.transport_addresses() == ("127.0.0.1:7000", "")
    both = DiscoveredNode(hostname="h", ip="127.0.0.1", port=7000, node_id="n", ports={"tcp": 7100, "quic": 7101})
    assert both.transport_addresses() == ("127.0.0.1:7100", "127.0.0.1:7101")


def test_cluster_tag_carries_the_ca_fingerprint() -> None:
    from rustyray.autodiscovery.mdns_core import cluster_tag

    assert cluster_tag("prod", None) == "prod"
    tag = cluster_tag("prod", b"-----BEGIN CERTIFICATE-----")
    assert tag.startswith("prod~") and len(tag) == len("prod~") + 12
    assert tag != cluster_tag("prod", b"another CA") and tag == cluster_tag("prod", b"-----BEGIN CERTIFICATE-----")
