"""FormationCore (sans-I/O): which backends, how answers merge, whom to join, what failures record."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.discovery.formation import FormationCore, Learn, Probe
from rustyray.discovery.model import Candidate, DiscoveryEvent, DiscoveryEventKind
from rustyray.discovery.schedule import Job, JobKind

SELF = "127.0.0.1:7000"


@dataclass
class FakePeer:
    connected: bool = False
    tcp_address: str = ""


@dataclass
class FakeNode:
    node_id: str = "node1"
    tcp_address: str = SELF
    peers: dict[str, FakePeer] = field(default_factory=dict)


def cand(node_id: str, port: int, **meta) -> Candidate:
    return Candidate(node_id, "127.0.0.1", port, meta)


@dataclass(frozen=True)
class Settings:
    """The service keys the core reads, with the service's defaults."""

    register: bool = True
    join: tuple[str, ...] | None = None
    watch: bool = True


def core(*configured: str, **config) -> FormationCore:
    return FormationCore("node1", Settings(**config), configured)


def test_which_backends_register_join_and_are_followed():
    c = core("gcp", "dns", "consul", "etcd", "kubernetes")
    assert c.configured == ["dns", "etcd", "consul", "kubernetes", "gcp"]  # registry order
    assert c.registration_targets() == ["etcd", "consul"]
    assert c.joined_backends() == c.configured
    assert c.loop_jobs() == [Job(JobKind.POLL, "dns"), Job(JobKind.POLL, "etcd"), Job(JobKind.WATCH, "etcd"),
                             Job(JobKind.POLL, "consul"), Job(JobKind.WATCH, "consul"),
                             Job(JobKind.POLL, "kubernetes"), Job(JobKind.WATCH, "kubernetes"),
                             Job(JobKind.POLL, "gcp")]
    c = core("dns", "etcd", register=False, watch=False, join=("etcd", "aws"))
    assert c.registration_targets() == [] and c.joined_backends() == ["etcd"]
    assert c.loop_jobs() == [Job(JobKind.POLL, "etcd")]
    assert core("etcd", join=()).loop_jobs() == []


def test_a_round_replaces_the_sightings_keeping_first_seen_times():
    c, node = core("etcd", join=()), FakeNode()
    assert c.round_succeeded("etcd", [cand("a", 1), cand("b", 2)], 10.0, node) == []  # not joined: no actions
    c.round_succeeded("etcd", [cand("b", 2), cand("c", 3)], 20.0, node)
    seen = {k: (s.first_seen_at, s.last_seen_at) for k, s in c.state["etcd"].seen.items()}
    assert seen == {"b": (10.0, 20.0), "c": (20.0, 20.0)}
    assert c.state["etcd"].last_success_at == 20.0 and c.learned == {}


def test_whom_to_join():
    c = core("etcd")
    node = FakeNode(peers={"up": FakePeer(True, "127.0.0.1:1"), "known": FakePeer(False, "127.0.0.1:2"),
                           "moved": FakePeer(False, "127.0.0.1:9")})
    listing = [cand("me-elsewhere", 7000), cand("node1", 7777), cand("up", 5), cand("known", 2),
               cand("moved", 3), cand("new", 4, quic_address="127.0.0.1:8004")]
    actions = c.round_succeeded("etcd", listing, 5.0, node)
    assert actions == [Learn("moved", "127.0.0.1:3"), Learn("new", "127.0.0.1:4", "127.0.0.1:8004")]
    assert c.learned["new"] == {"node_id": "new", "backend": "etcd", "address": "127.0.0.1:4", "learned_at": 5.0}
    c.round_succeeded("etcd", [cand("new", 44)], 9.0, node)
    assert c.learned["new"]["learned_at"] == 5.0 and c.learned["new"]["address"] == "127.0.0.1:4"  # first wins


def test_one_listing_learns_a_node_once():
    c = core("dns")
    assert c.round_succeeded("dns", [cand("a", 1), cand("a", 1)], 1.0, FakeNode()) == [Learn("a", "127.0.0.1:1")]


def test_watch_events_add_and_drop_sightings():
    c, node = core("consul"), FakeNode()
    join = DiscoveryEvent(DiscoveryEventKind.JOIN, cand("a", 1))
    assert c.watch_event("consul", join, 3.0, node) == [Learn("a", "127.0.0.1:1")]
    assert c.watch_event("consul", DiscoveryEvent(DiscoveryEventKind.LEAVE, cand("a", 1)), 4.0, node) == []
    st_ = c.state["consul"]
    assert st_.seen == {} and st_.watch_events == 2 and st_.last_event_at == 4.0
    assert "a" in c.learned  # discovery only adds: removal is membership's business


def test_cloud_candidates_are_probed_once_per_address():
    c, node = core("aws"), FakeNode(peers={"x": FakePeer(False, "127.0.0.1:2")})
    listing = [cand("i-1", 1), cand("i-2", 2), cand("i-self", 7000)]
    assert c.round_succeeded("aws", listing, 1.0, node) == [Probe("aws", cand("i-1", 1))]
    assert c.round_succeeded("aws", listing, 2.0, node) == []  # still dialling
    c.probe_ended("aws", cand("i-1", 1), 3.0, error="refused")
    assert c.state["aws"].last_error == "dial i-1 at 127.0.0.1:1: refused" and c.state["aws"].last_error_at == 3.0
    assert c.round_succeeded("aws", listing, 4.0, node) == [Probe("aws", cand("i-1", 1))]
    c.probe_ended("aws", cand("i-1", 1), 5.0, answered="node7")
    assert c.learned["node7"] == {"node_id": "node7", "backend": "aws", "address": "127.0.0.1:1",
                                  "instance_id": "i-1", "learned_at": 5.0}
    c.round_succeeded("aws", listing, 6.0, node)
    c.probe_ended("aws", cand("i-1", 1), 7.0, answered="node1")  # it was us after all
    c.round_succeeded("aws", listing, 8.0, node)
    c.probe_ended("aws", cand("i-1", 1), 9.0)  # the dial was cancelled: nothing but the address freed
    assert "node1" not in c.learned and c.probing == set()


def test_failures_make_a_backend_failing_until_it_next_succeeds():
    c = core("dns", "etcd")
    c.round_started("dns", 1.0)
    c.round_failed("dns", "timed out", 2.0)
    dns = c.state["dns"]
    assert (dns.rounds, dns.failures, dns.last_attempt_at, dns.last_error) == (1, 1, 1.0, "timed out")
    assert dns.failing and c.health({}, None) == ("degraded", "dns: timed out")
    c.round_started("dns", 3.0)
    c.round_succeeded("dns", [cand("a", 1)], 4.0, FakeNode())
    assert not dns.failing and dns.last_error == "timed out"  # kept for the status page
    c.watch_failed("etcd", "feed broke", 5.0)
    assert c.state["etcd"].last_error == "watch: feed broke" and c.health({}, None)[0] == "degraded"


def test_registration_record():
    c = core("etcd", "consul")
    assert c.registration_failed("etcd", "refused") == "registration failed: refused"
    assert c.state["etcd"].failing and c.registered_backends() == []
    c.registered("etcd", {"key": "/k/node1"}, 12.0)
    c.registered("consul", {"id": "rustydb-node1"}, 13.0)
    assert c.state["etcd"].registration == {"key": "/k/node1", "registered_at": 12.0}
    assert c.state["etcd"].registration_error is None and c.registered_backends() == ["etcd", "consul"]
    c.deregistered("etcd")
    assert c.registered_backends() == ["consul"]


def test_health_texts():
    assert core().health({}, None)[0] == "not_configured"
    assert "[discovery.etcd]" in core().health({}, None)[1]
    assert core().health({"etcd": {"error": "bad endpoints"}}, None) == ("degraded", "etcd: bad endpoints")
    assert core().health({}, "colour is unknown") == ("degraded", "colour is unknown")
    c = core("dns", "etcd")
    assert c.health({}, None) == ("healthy", "dns: not queried yet; etcd: not queried yet")
    c.round_succeeded("etcd", [cand("a", 1), cand("b", 2)], 1.0, FakeNode())
    c.registered("etcd", {}, 1.0)
    assert c.health({}, None) == ("healthy", "dns: not queried yet; etcd: 2 nodes, registered")


def test_learned_peers_say_whether_they_are_connected():
    c = core("dns")
    c.round_succeeded("dns", [cand("b", 2), cand("a", 1)], 1.0, FakeNode())
    view = c.learned_peers(FakeNode(peers={"a": FakePeer(True, "127.0.0.1:1")}))
    assert [(p["node_id"], p["connected"]) for p in view] == [("a", True), ("b", False)]


def test_status_view_of_a_backend():
    c = core("dns")
    c.round_started("dns", 1.0)
    c.round_succeeded("dns", [cand("a", 1, quic_address="127.0.0.1:9")], 2.0, FakeNode())
    view = c.state["dns"].view()
    assert list(view) == ["registration_error", "rounds", "failures", "watch_events", "last_attempt_at",
                          "last_success_at", "last_event_at", "last_error", "last_error_at", "discovered"]
    assert view["discovered"] == [{"id": "a", "address": "127.0.0.1:1", "first_seen_at": 2.0, "last_seen_at": 2.0,
                                   "quic_address": "127.0.0.1:9"}]


# -- properties over random event sequences ----------------------------------------------------------
NODES = st.sampled_from(["node1", "n2", "n3", "n4"])
PORTS = st.sampled_from([7000, 7001, 7002])
CANDIDATES = st.builds(lambda n, p: cand(n, p), NODES, PORTS)
STEPS = st.lists(st.tuples(st.sampled_from(["round", "join", "leave", "probe_end", "connect"]),
                           st.sampled_from(["etcd", "aws"]), st.lists(CANDIDATES, max_size=4),
                           st.booleans()), max_size=30)


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_formation_invariants(steps):
    c, node = core("etcd", "aws"), FakeNode()
    now = 0.0
    first_learned: dict[str, float] = {}
    for kind, name, cands, flag in steps:
        now += 1.0
        before = set(c.probing)
        if kind == "round":
            actions = c.round_succeeded(name, cands, now, node)
        elif kind in ("join", "leave") and cands:
            ev = DiscoveryEvent(DiscoveryEventKind.JOIN if kind == "join" else DiscoveryEventKind.LEAVE, cands[0])
            actions = c.watch_event(name, ev, now, node)
        elif kind == "probe_end" and c.probing:
            address = sorted(c.probing)[0]
            c.probe_ended("aws", cand("i", int(address.rsplit(":", 1)[1])), now,
                          answered=cands[0].node_id if cands and flag else None)
            actions = []
        elif kind == "connect" and cands:
            node.peers[cands[0].node_id] = FakePeer(flag, cands[0].address)
            actions = []
        else:
            actions = []
        probes = [a.candidate.address for a in actions if isinstance(a, Probe)]
        assert len(probes) == len(set(probes)) and not set(probes) & before  # one dial per address at a time
        assert set(probes) <= c.probing
        for a in actions:
            address = a.address if isinstance(a, Learn) else a.candidate.address
            assert address != node.tcp_address
            if isinstance(a, Learn):
                assert a.node_id != node.node_id and name != "aws"
        assert "node1" not in c.learned
        for node_id, entry in c.learned.items():
            assert first_learned.setdefault(node_id, entry["learned_at"]) == entry["learned_at"]
        for state in c.state.values():
            assert all(s.first_seen_at <= s.last_seen_at for s in state.seen.values())
