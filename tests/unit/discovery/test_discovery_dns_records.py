"""Pure DNS-SRV logic: answers -> NETWORKING-020 body, ordering, TTL, and the TTL cache."""

import dns.rdata
import dns.rdataclass
import dns.rdatatype
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.discovery.dns_records import (
    AddressRecord,
    DnsCache,
    SrvRecord,
    build_dns_result,
    node_id_from_target,
    parse_nameserver,
    srv_query_name,
    srv_records_from_rdata,
)


def a(name: str, ip: str, ttl: int = 300) -> AddressRecord:
    return AddressRecord(name, ip, ttl, ":" in ip)


def test_query_name_follows_rfc2782():
    assert srv_query_name("rustydb", "tcp", "cluster.local.") == "_rustydb._tcp.cluster.local."


def test_nameserver_entries_may_carry_a_port():
    assert parse_nameserver("127.0.0.1:15353") == ("127.0.0.1", 15353)
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)


def test_node_id_is_first_label():
    assert node_id_from_target("Node1.Cluster.Local.") == "node1"


def test_srv_rdata_conversion():
    rd = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SRV, "10 5 7000 Node1.cluster.local.")
    assert srv_records_from_rdata([rd], 42) == [SrvRecord(10, 5, 7000, "node1.cluster.local", 42)]


def test_result_body_matches_seed_shape_and_min_ttl():
    srv = [
        SrvRecord(0, 0, 5432, "node2.cluster.local", 300),
        SrvRecord(0, 0, 5432, "node1.cluster.local", 300),
    ]
    addrs = {
        "node1.cluster.local": [a("node1.cluster.local", "127.0.0.11", 120)],
        "node2.cluster.local": [a("node2.cluster.local", "127.0.0.12", 600)],
    }
    result = build_dns_result(srv, addrs)
    assert result.as_response() == {
        "discovered_nodes": [
            {"id": "node1", "address": "127.0.0.11", "port": 5432},
            {"id": "node2", "address": "127.0.0.12", "port": 5432},
        ],
        "discovery_method": "DNS-SRV",
        "ttl_seconds": 120,
    }
    assert [(x.node_id, x.host, x.port) for x in result.candidates] == [
        ("node1", "127.0.0.11", 5432),
        ("node2", "127.0.0.12", 5432),
    ]


def test_priority_then_weight_order_and_family_preference():
    srv = [
        SrvRecord(20, 0, 1, "c.d", 60),
        SrvRecord(10, 1, 1, "b.d", 60),
        SrvRecord(10, 9, 1, "a2.d", 60),
    ]
    addrs = {
        "a2.d": [a("a2.d", "::1"), a("a2.d", "127.0.0.2")],
        "b.d": [a("b.d", "127.0.0.3")],
        "c.d": [a("c.d", "::1")],
    }
    v4 = build_dns_result(srv, addrs)
    assert [(x.node_id, x.host) for x in v4.candidates] == [("a2", "127.0.0.2"), ("b", "127.0.0.3"), ("c", "::1")]
    v6 = build_dns_result(srv, addrs, prefer_ipv6=True)
    assert v6.candidates[0].host == "::1"
    assert v6.candidates[0].meta["addresses"] == ["::1", "127.0.0.2"]


def test_targets_without_addresses_are_dropped_and_dot_means_unavailable():
    srv = [SrvRecord(0, 0, 1, "ghost.d", 30), SrvRecord(0, 0, 1, "real.d", 50)]
    result = build_dns_result(srv, {"real.d": [a("real.d", "127.0.0.1", 40)]})
    assert [x.node_id for x in result.candidates] == ["real"]
    assert result.body["ttl_seconds"] == 30
    none = build_dns_result([SrvRecord(0, 0, 0, "", 77)], {})
    assert none.candidates == () and none.body["ttl_seconds"] == 77


@settings(max_examples=60)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 86400), st.integers(0, 86400)), min_size=1, max_size=8))
def test_ttl_is_min_over_every_record_used(rows):
    srv, addrs = [], {}
    for i, (prio, srv_ttl, a_ttl) in enumerate(rows):
        target = f"n{i}.d"
        srv.append(SrvRecord(prio, 0, 7000 + i, target, srv_ttl))
        addrs[target] = [a(target, f"127.0.0.{i + 1}", a_ttl)]
    result = build_dns_result(srv, addrs)
    assert result.body["ttl_seconds"] == min(min(r[1], r[2]) for r in rows)
    prios = [x.meta["priority"] for x in result.candidates]
    assert prios == sorted(prios)
    assert len(result.candidates) == len(rows)


def test_cache_expires_after_ttl_with_floor_and_ceiling():
    result = build_dns_result([SrvRecord(0, 0, 1, "n.d", 30)], {"n.d": [a("n.d", "127.0.0.1", 30)]})
    cache = DnsCache(min_refresh_s=5, max_refresh_s=20)
    assert cache.get(0.0) is None
    assert cache.store(result, 100.0) == 120.0  # 30 s TTL clamped to the 20 s ceiling
    assert cache.get(119.9) is result
    assert cache.get(120.0) is None
    zero = build_dns_result([SrvRecord(0, 0, 1, "n.d", 0)], {"n.d": [a("n.d", "127.0.0.1", 0)]})
    assert cache.store(zero, 200.0) == 205.0  # TTL 0 floored
    cache.invalidate()
    assert cache.get(200.0) is None
