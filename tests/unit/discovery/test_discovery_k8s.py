"""Kubernetes: pure object parsing, and KubernetesDiscovery against the HTTPS API-server double."""

import asyncio

import pytest

from rustyray.discovery import BackendResponseError, BackendUnavailableError, DiscoveryEventKind
from rustyray.discovery.k8s_records import (
    WatchExpiredError,
    apply_watch_event,
    nodes_from_endpoint_slices,
    nodes_from_endpoints,
    nodes_from_pods,
    selector_to_string,
)
from rustyray.discovery.kubernetes import KubernetesDiscovery, KubernetesDiscoveryConfig
from tests.servers.k8s_double import endpoint_slice, label_selector_matches, pod
from tests.servers.tls import make_self_signed_cert

NS = "database"


def test_slices_readiness_and_ports():
    slices = [
        endpoint_slice("s1", "rustydb", [("rustydb-0", "127.0.0.5", True), ("rustydb-1", "127.0.0.8", None)], 7100),
        endpoint_slice("s2", "rustydb", [("rustydb-2", "127.0.0.9", False)], 7100),
        {"addressType": "FQDN", "endpoints": [{"addresses": ["x.example"]}]},
    ]
    nodes = nodes_from_endpoint_slices(slices, port_name="swim")
    assert [(n.node_id, n.host, n.port, n.meta["ready"]) for n in nodes] == [
        ("rustydb-0", "127.0.0.5", 7100, True),
        ("rustydb-1", "127.0.0.8", 7100, True),  # unknown readiness reads as ready
        ("rustydb-2", "127.0.0.9", 7100, False),
    ]
    assert nodes_from_endpoint_slices(slices, port_name="other", default_port=9)[0].port == 9


def test_dual_stack_pod_is_one_candidate_preferring_ipv4():
    from rustyray.discovery.k8s_records import build_k8s_result

    slices = [
        endpoint_slice("v4", "rustydb", [("p0", "127.0.0.5", True)]),
        {**endpoint_slice("v6", "rustydb", [("p0", "::1", True)]), "addressType": "IPv6"},
    ]
    result = build_k8s_result(NS, "rustydb", nodes_from_endpoint_slices(slices))
    assert len(result.body["nodes"]) == 2
    assert [(c.node_id, c.host) for c in result.candidates] == [("p0", "127.0.0.5")]


def test_core_endpoints_and_pods():
    ep = {
        "subsets": [
            {
                "addresses": [{"ip": "127.0.0.1", "targetRef": {"name": "p0"}}],
                "notReadyAddresses": [{"ip": "127.0.0.2", "targetRef": {"name": "p1"}}],
                "ports": [{"name": "swim", "port": 7001}],
            }
        ]
    }
    assert [(n.node_id, n.port, n.meta["ready"]) for n in nodes_from_endpoints(ep)] == [
        ("p0", 7001, True),
        ("p1", 7001, False),
    ]
    pods = [pod("a-0", "127.0.0.1", {}, True), pod("a-1", None, {}, True), pod("a-2", "127.0.0.3", {}, False)]
    assert [(n.node_id, n.meta["ready"]) for n in nodes_from_pods(pods)] == [("a-0", True), ("a-2", False)]


def test_selector_string_and_double_matcher_agree():
    sel = {
        "matchLabels": {"app": "rustydb"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["db", "cache"]},
            {"key": "x", "operator": "DoesNotExist"},
        ],
    }
    text = selector_to_string(sel)
    assert text == "app=rustydb,tier in (db,cache),!x"
    assert label_selector_matches(text, {"app": "rustydb", "tier": "db"})
    assert not label_selector_matches(text, {"app": "rustydb", "tier": "web"})
    assert not label_selector_matches(text, {"app": "rustydb", "tier": "db", "x": "1"})
    with pytest.raises(BackendResponseError):
        selector_to_string({})


def test_watch_event_folding():
    state: dict = {}
    assert (
        apply_watch_event(state, {"type": "ADDED", "object": {"metadata": {"name": "a", "resourceVersion": "5"}}})
        == "5"
    )
    apply_watch_event(state, {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "6"}}})
    assert list(state) == ["a"]
    apply_watch_event(state, {"type": "DELETED", "object": {"metadata": {"name": "a", "resourceVersion": "7"}}})
    assert state == {}
    with pytest.raises(WatchExpiredError):
        apply_watch_event(state, {"type": "ERROR", "object": {"code": 410, "message": "too old"}})


def make(double, **kw) -> KubernetesDiscovery:
    config = KubernetesDiscoveryConfig(
        namespace=NS,
        service="rustydb",
        api_server=double.base_url,
        token="test-token",
        ca_path=str(double.cert_path),
        port_name="swim",
        **kw,
    )
    return KubernetesDiscovery(config)


async def seed_slices(double):
    await double.apply(
        "endpointslices",
        NS,
        endpoint_slice("rustydb-abc", "rustydb", [("rustydb-0", "127.0.0.5", True), ("rustydb-1", "127.0.0.8", True)]),
    )
    await double.apply(
        "endpointslices", NS, endpoint_slice("rustydb-def", "rustydb", [("rustydb-2", "127.0.0.9", False)])
    )
    await double.apply("endpointslices", NS, endpoint_slice("other-x", "other", [("other-0", "127.0.0.77", True)]))
    await double.apply(
        "endpointslices", "elsewhere", endpoint_slice("rustydb-zzz", "rustydb", [("z", "127.0.0.78", True)])
    )


async def test_endpoint_slices_over_tls_with_label_selector(k8s_double):
    await seed_slices(k8s_double)
    disco = make(k8s_double)
    try:
        result = await disco.discover()
        assert result.as_response() == {
            "namespace": NS,
            "service": "rustydb",
            "nodes": [
                {"pod": "rustydb-0", "ip": "127.0.0.5", "ready": True},
                {"pod": "rustydb-1", "ip": "127.0.0.8", "ready": True},
                {"pod": "rustydb-2", "ip": "127.0.0.9", "ready": False},
            ],
        }
        assert [c.node_id for c in result.candidates] == ["rustydb-0", "rustydb-1"]
        assert disco.source == "endpointslices"
        assert k8s_double.requests[-1][1]["labelSelector"] == "kubernetes.io/service-name=rustydb"
    finally:
        await disco.aclose()


async def test_falls_back_to_core_endpoints(tmp_path):
    from tests.servers.k8s_double import K8sDouble

    double = K8sDouble("test-token", tmp_path, serve_endpoint_slices=False)
    await double.start()
    disco = make(double)
    try:
        await double.apply(
            "endpoints",
            NS,
            {
                "metadata": {"name": "rustydb"},
                "subsets": [
                    {
                        "addresses": [{"ip": "127.0.0.5", "targetRef": {"kind": "Pod", "name": "rustydb-0"}}],
                        "notReadyAddresses": [{"ip": "127.0.0.6", "targetRef": {"kind": "Pod", "name": "rustydb-1"}}],
                        "ports": [{"name": "swim", "port": 7000}],
                    }
                ],
            },
        )
        await double.apply(
            "endpoints", NS, {"metadata": {"name": "other"}, "subsets": [{"addresses": [{"ip": "127.0.0.9"}]}]}
        )
        result = await disco.discover()
        assert disco.source == "endpoints"
        assert result.body["nodes"] == [
            {"pod": "rustydb-0", "ip": "127.0.0.5", "ready": True},
            {"pod": "rustydb-1", "ip": "127.0.0.6", "ready": False},
        ]
    finally:
        await disco.aclose()
        await double.stop()


async def test_statefulset_pods_via_its_selector(k8s_double):
    await k8s_double.apply(
        "statefulsets", NS, {"metadata": {"name": "rustydb"}, "spec": {"selector": {"matchLabels": {"app": "rustydb"}}}}
    )
    for i, ready in enumerate([True, True, False]):
        await k8s_double.apply("pods", NS, pod(f"rustydb-{i}", f"127.0.0.{10 + i}", {"app": "rustydb"}, ready))
    await k8s_double.apply("pods", NS, pod("web-0", "127.0.0.50", {"app": "web"}, True))
    disco = make(k8s_double, statefulset="rustydb")
    try:
        result = await disco.discover()
        assert [(n["pod"], n["ready"]) for n in result.body["nodes"]] == [
            ("rustydb-0", True),
            ("rustydb-1", True),
            ("rustydb-2", False),
        ]
        assert result.candidates[0].port == 7000
        assert k8s_double.requests[-1][1]["labelSelector"] == "app=rustydb"
    finally:
        await disco.aclose()


async def test_wrong_token_and_wrong_ca_fail(k8s_double, tmp_path):
    await seed_slices(k8s_double)
    bad_token = KubernetesDiscovery(
        KubernetesDiscoveryConfig(
            namespace=NS, api_server=k8s_double.base_url, token="nope", ca_path=str(k8s_double.cert_path)
        )
    )
    other_ca, _ = make_self_signed_cert(tmp_path / "other")
    bad_ca = KubernetesDiscovery(
        KubernetesDiscoveryConfig(
            namespace=NS, api_server=k8s_double.base_url, token="test-token", ca_path=str(other_ca)
        )
    )
    try:
        with pytest.raises(BackendResponseError) as info:
            await bad_token.discover()
        assert info.value.status == 401
        with pytest.raises(BackendUnavailableError):
            await bad_ca.discover()
    finally:
        await bad_token.aclose()
        await bad_ca.aclose()


async def test_in_cluster_config_reads_env_and_token_file(k8s_double, tmp_path, monkeypatch):
    await seed_slices(k8s_double)
    token_file = tmp_path / "token"
    token_file.write_text("test-token\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(k8s_double._server.port))
    config = KubernetesDiscoveryConfig.in_cluster(
        namespace=NS, token_path=str(token_file), ca_path=str(k8s_double.cert_path)
    )
    assert config.resolved_api_server() == f"https://127.0.0.1:{k8s_double._server.port}"
    disco = KubernetesDiscovery(config)
    try:
        assert len((await disco.discover()).candidates) == 2
    finally:
        await disco.aclose()


async def test_watch_follows_readiness_and_relists_after_410(k8s_double):
    await seed_slices(k8s_double)
    disco = make(k8s_double, watch_timeout_s=30)
    stream = disco.watch()

    async def next_events(n):
        return [await asyncio.wait_for(anext(stream), 5) for _ in range(n)]

    try:
        first = await next_events(2)
        assert [(e.kind, e.candidate.node_id) for e in first] == [
            (DiscoveryEventKind.JOIN, "rustydb-0"),
            (DiscoveryEventKind.JOIN, "rustydb-1"),
        ]
        await k8s_double.apply(
            "endpointslices", NS, endpoint_slice("rustydb-def", "rustydb", [("rustydb-2", "127.0.0.9", True)])
        )
        (joined,) = await next_events(1)
        assert (joined.kind, joined.candidate.node_id) == (DiscoveryEventKind.JOIN, "rustydb-2")
        await k8s_double.delete("endpointslices", NS, "rustydb-abc")
        left = await next_events(2)
        assert [(e.kind, e.candidate.node_id) for e in left] == [
            (DiscoveryEventKind.LEAVE, "rustydb-0"),
            (DiscoveryEventKind.LEAVE, "rustydb-1"),
        ]
        # History is lost while the watch is down: the reconnecting watch gets 410, re-lists, and diffs.
        await k8s_double.lose_history(
            "endpointslices", NS, endpoint_slice("rustydb-def", "rustydb", [("rustydb-2", "127.0.0.9", False)])
        )
        (gone,) = await next_events(1)
        assert (gone.kind, gone.candidate.node_id) == (DiscoveryEventKind.LEAVE, "rustydb-2")
        assert k8s_double.gone_count == 1
    finally:
        await stream.aclose()
        await disco.aclose()
