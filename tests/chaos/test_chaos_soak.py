"""Chaos soak, short form (about 2 minutes): 5 node actors on Ray under steady load, one killed every 10 s.

The module owns its Ray instance (``ray.init(num_cpus=2)`` in-process, then ``launch.start`` exactly as the
CLI does) and stops everything at the end, like tests/integration/test_ray_cluster.py, so the two can run
in one pytest session one after the other. Run it under the shared lock:
``flock /tmp/rustyray-ray.lock python -m pytest tests/chaos -m chaos -q``.

The soak itself is ``bench/chaos.py`` (the long form is ``python bench/chaos.py --minutes 10``): routed
ChaosRecord sends with AtLeastOnce and ExactlyOnce (client retries reuse the idempotency key), broadcasts
and API reads, while kills alternate SIGKILL and ``ray.kill(no_restart=False)`` and every 4th kill is for
good followed by a join of a fresh node and a leave of the dead one. Acknowledged messages are checked
against each target's durable record (node_dir/records.jsonl, written before the ack).
"""

from __future__ import annotations

import dataclasses

import pytest

ray = pytest.importorskip("ray")

from bench.chaos import SoakConfig, _free_port, print_table, run_soak, start_cluster, stop_cluster  # noqa: E402

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(600)]  # the module fixture runs ~3 min

CHAOS = SoakConfig(duration_s=90.0, kill_interval_s=10.0, replace_every=4, settle_s=8.0, seed=7)
HEALTHY_BOUND_S = 30.0
"""Every killed node (or its replacement) must be Healthy again within this (typically 1.5 to 4 s)."""
RSS_BOUND_MB = 400.0
"""No node actor above this RSS (a node is about 125 MB on Ray 2.60 / Python 3.11)."""
RSS_GROWTH_BOUND_MB = 64.0
"""Second-half peak RSS of a node at most this above its first-half peak."""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("chaos-state")
    port = _free_port()
    try:
        summary = start_cluster(5, state_dir, port)
        nodes = [n["node_id"] for n in summary["nodes"]]
        cfg = dataclasses.replace(CHAOS, rss_bound_mb=RSS_BOUND_MB, rss_growth_bound_mb=RSS_GROWTH_BOUND_MB)
        rep = run_soak(f"http://127.0.0.1:{port}/api/v1/network", state_dir, nodes, cfg)
        print_table(rep)  # shown by pytest when a test fails (or with -s)
        yield rep
    finally:
        stop_cluster()


def test_chaos_really_happened_under_load(report):
    kills = report["kills"]
    assert kills["total"] >= 8 and kills.get("replace", 0) >= 2
    assert kills.get("sigkill", 0) >= 2 and kills.get("ray_kill", 0) >= 2
    m = report["messages"]
    assert m["sends_acknowledged"] >= 300 and m["broadcasts"] >= 30
    assert m["sends_by_delivery"]["ExactlyOnce"] >= 100 and m["sends_by_delivery"]["AtLeastOnce"] >= 100
    assert report["departed"] and all(n not in report["nodes_at_end"] for n in report["departed"])


def test_no_acknowledged_message_is_lost(report):
    assert report["acknowledged_lost"] == 0, report["lost_examples"]


def test_exactly_once_never_processes_twice(report):
    assert report["exactly_once_duplicates"] == 0, report["exactly_once_duplicate_examples"]


def test_every_killed_node_is_healthy_again_within_the_bound(report):
    rec = report["recovery"]
    assert rec["unrecovered"] == []
    assert rec["recovered"] == rec["kills"]
    assert rec["healthy_after_any_kill_s"]["max"] <= HEALTHY_BOUND_S, rec["events"]


def test_node_memory_stays_bounded(report):
    mem = report["memory"]
    assert sum(1 for n in mem["nodes"].values() if n["samples"] >= 10) >= 5  # sampled all along
    assert mem["peak_mb"] <= RSS_BOUND_MB, mem["nodes"]
    assert mem["max_growth_mb"] <= RSS_GROWTH_BOUND_MB, mem["nodes"]


def test_api_failures_are_only_unavailable_nodes(report):
    """During chaos a request to a node that is down is a 503 naming it; anything else is a defect."""
    kinds = report["api"]["failure_kinds"]
    unexpected = {k: v for k, v in kinds.items() if " 503: node '<node>' " not in k}
    assert not unexpected, kinds
