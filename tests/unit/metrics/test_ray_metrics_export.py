"""Translation of node counters into ray.util.metrics instruments (with a fake metrics module)."""

from __future__ import annotations

import asyncio
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.ray_edge.metrics import METRICS, RayMetricsExporter, node_values, spec_for, start_ray_metrics


class FakeMetric:
    def __init__(self, name, description="", tag_keys=None):
        assert tag_keys[0] == "node"
        self.name, self.description, self.tag_keys = name, description, tag_keys
        self.default_tags: dict[str, str] = {}
        self.calls: list[tuple[str, float]] = []

    def set_default_tags(self, tags):
        assert set(tags) <= set(self.tag_keys)
        self.default_tags = dict(tags)
        return self


class FakeCounter(FakeMetric):
    def inc(self, value=1.0, tags=None):
        if value <= 0:  # the real Counter refuses this too
            raise ValueError(f"value must be >0, got {value}")
        self.calls.append(("inc", value))

    @property
    def total(self):
        return sum(v for _, v in self.calls)


class FakeGauge(FakeMetric):
    def set(self, value, tags=None):
        if tags:
            assert set(tags) | set(self.default_tags) == set(self.tag_keys)  # Ray refuses missing tags
        self.calls.append(("set", value, dict(tags)) if tags else ("set", value))


class FakeHistogram(FakeMetric):
    def __init__(self, name, description="", boundaries=None, tag_keys=None):
        super().__init__(name, description, tag_keys)
        assert boundaries and boundaries == sorted(boundaries)
        self.boundaries = boundaries

    def observe(self, value, tags=None):
        self.calls.append(("observe", value))


def fake_module():
    return types.SimpleNamespace(Counter=FakeCounter, Gauge=FakeGauge, Histogram=FakeHistogram)


STATS = {"node": "node1", "messages_sent": 10, "messages_received": 7, "bytes_sent": 1000,
         "bytes_received": 900, "active_connections": 4, "connection_errors": 1, "avg_latency_ms": 2.5,
         "p50_latency_ms": 2.0, "p99_latency_ms": 9.0, "protocol_errors": 0, "handshake_refusals": 0}
INFO = {"node_id": "node1", "incarnation": 3, "uptime_s": 12.5, "running": True,
        "connected_peers": ["node2", "node3"], "known_peers": ["node2", "node3", "node4"]}


def test_node_values_flattens_stats_and_info_and_drops_non_numbers():
    values = node_values(STATS, INFO)
    assert "node" not in values and "running" not in values
    assert values["messages_sent"] == 10 and values["peers_connected"] == 2 and values["peers_known"] == 3
    assert values["incarnation"] == 3 and values["uptime_s"] == 12.5


def test_names_follow_prometheus_conventions():
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    for m in METRICS:
        assert m.name.startswith("rustyray_") and not m.name.endswith("_total")
    assert spec_for("avg_latency_ms").name == "rustyray_request_latency_ms"
    assert spec_for("bytes_sent").kind == "counter" and spec_for("active_connections").kind == "gauge"
    assert spec_for("queue.depth").name == "rustyray_queue_depth"  # new values still export, sanitised


def test_export_creates_tagged_instruments_and_pushes_deltas():
    ex = RayMetricsExporter("node1", fake_module())
    ex.export(node_values(STATS, INFO))
    sent = ex._instruments["messages_sent"]
    assert isinstance(sent, FakeCounter) and sent.name == "rustyray_messages_sent"
    assert sent.default_tags == {"node": "node1"} and sent.total == 10
    gauge = ex._instruments["active_connections"]
    assert isinstance(gauge, FakeGauge) and gauge.calls == [("set", 4.0)]
    ex.export(node_values({**STATS, "messages_sent": 15, "active_connections": 2}, INFO))
    assert sent.calls == [("inc", 10.0), ("inc", 5.0)]
    assert gauge.calls[-1] == ("set", 2.0)
    errors = ex._instruments["protocol_errors"]
    assert errors.calls == []  # a zero total never calls inc (Ray refuses non-positive increments)


def test_a_total_that_goes_down_is_a_counter_restart():
    ex = RayMetricsExporter("n", fake_module())
    ex.export({"messages_sent": 100.0})
    ex.export({"messages_sent": 30.0})
    assert ex._instruments["messages_sent"].calls == [("inc", 100.0), ("inc", 30.0)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=20))
def test_exported_counter_equals_the_reported_total_when_totals_only_grow(steps):
    totals = sorted(steps)
    ex = RayMetricsExporter("n", fake_module())
    for t in totals:
        ex.export({"bytes_sent": float(t)})
    counter = ex._instruments["bytes_sent"]
    assert counter.total == totals[-1]


async def test_the_exporter_task_runs_while_the_node_runs_and_stops_with_it(monkeypatch):
    import rustyray.ray_edge.metrics as metrics_mod

    class FakeNode:
        node_id = "node9"
        running = True

        def __init__(self):
            self.ready = asyncio.Event()
            self.tasks = []

        def stats_snapshot(self):
            return dict(STATS)

        def info(self):
            return dict(INFO)

        def spawn(self, coro, *, name=""):
            task = asyncio.ensure_future(coro)
            self.tasks.append(task)
            return task

    exporters = []
    real = metrics_mod.RayMetricsExporter

    def make(node_id):
        exporters.append(real(node_id, fake_module()))
        return exporters[-1]

    monkeypatch.setattr(metrics_mod, "RayMetricsExporter", make)
    node = FakeNode()
    task = start_ray_metrics(node, interval_s=0.01)
    assert task is node.tasks[0]
    await asyncio.sleep(0.05)
    assert exporters[0]._instruments == {}  # waits for the node to be ready
    node.ready.set()
    for _ in range(100):
        if exporters[0]._instruments:
            break
        await asyncio.sleep(0.01)
    assert exporters[0]._instruments["messages_sent"].total == 10
    node.running = False
    await asyncio.wait_for(task, 1)


def test_start_without_ray_metrics_leaves_the_node_alone(monkeypatch):
    import rustyray.ray_edge.metrics as metrics_mod

    def broken(node_id):
        raise ImportError("no ray here")

    monkeypatch.setattr(metrics_mod, "RayMetricsExporter", broken)
    node = types.SimpleNamespace(node_id="n", spawn=lambda *a, **k: pytest.fail("must not spawn"))
    assert start_ray_metrics(node) is None


def test_module_import_does_not_import_ray():
    import subprocess
    import sys

    code = "import sys, rustyray.ray_edge.metrics; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_the_real_ray_metrics_module_accepts_our_calls():
    """Instruments can be created and recorded without a running Ray (records are dropped until it runs)."""
    ex = RayMetricsExporter("node1")
    ex.export(node_values(STATS, INFO))
    ex.export(node_values({**STATS, "messages_sent": 11}, INFO))
    from ray.util import metrics

    assert isinstance(ex._instruments["messages_sent"], metrics.Counter)
    assert isinstance(ex._instruments["active_connections"], metrics.Gauge)


def test_labelled_samples_become_gauges_tagged_with_node_and_their_labels():
    ex = RayMetricsExporter("node1", fake_module())
    rows = [{"name": "rustyray_phi", "kind": "gauge", "help": "h", "labels": {"peer": "node2"}, "value": 0.5},
            {"name": "rustyray_phi", "kind": "gauge", "help": "h", "labels": {"peer": "node3"}, "value": 9.0},
            {"name": "rustyray_request_latency_seconds", "kind": "histogram", "help": "h", "labels": {},
             "value": {"buckets": [], "sum": 0, "count": 0}}]
    ex.export_samples(rows)
    phi = ex._instruments["rustyray_phi"]
    assert phi.tag_keys == ("node", "peer") and phi.default_tags == {"node": "node1"}
    assert phi.calls == [("set", 0.5, {"peer": "node2"}), ("set", 9.0, {"peer": "node3"})]
    assert "rustyray_request_latency_seconds" not in ex._instruments  # histograms are observed, not set


def test_latencies_are_replayed_once_into_a_ray_histogram():
    from rustyray.node import NodeStats

    node = types.SimpleNamespace(stats=NodeStats())
    ex = RayMetricsExporter("node1", fake_module())
    ex.export_latencies(node)
    assert ex._histogram is None  # nothing recorded yet: no instrument
    for ms in (1.0, 2.0, 3.0):
        node.stats.record_latency(ms)
    ex.export_latencies(node)
    hist = ex._histogram
    assert [v for _, v in hist.calls] == [0.001, 0.002, 0.003]
    assert float("inf") not in hist.boundaries and hist.boundaries[0] == 0.0005
    node.stats.record_latency(40.0)
    ex.export_latencies(node)
    ex.export_latencies(node)  # nothing new: nothing observed twice
    assert [v for _, v in hist.calls] == [0.001, 0.002, 0.003, 0.04]
