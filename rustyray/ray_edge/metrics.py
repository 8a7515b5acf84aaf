"""Node counters as metrics: one table for both exporters.

``METRICS`` names every value a node reports (``Node.stats_snapshot()`` and
``Node.info()``) as a Prometheus metric. Two exporters read it:

- the management API's ``GET /metrics`` (``serve_apps/routes/metrics.py``) asks every
  node at scrape time and renders the text format with ``prometheus_client``;
- ``RayMetricsExporter`` here runs inside each node actor and pushes the same values
  every few seconds through ``ray.util.metrics`` (``Counter``/``Gauge`` tagged
  ``node``), so they appear in the Ray dashboard and on Ray's own Prometheus
  endpoint. Ray prefixes custom metrics with ``ray_`` and suffixes counters with
  ``_total``: ``rustyray_messages_sent`` is scraped there as
  ``ray_rustyray_messages_sent_total{node="node1"}``.

Ray counters only accept positive increments, while nodes report running totals,
so the exporter remembers the last total it pushed and adds the difference (a
total that went down means the counter restarted: the new total is the increment).
Importing this module does not import ``ray``; the exporter imports
``ray.util.metrics`` when it starts, and never lets a metrics failure hurt the node.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from rustyray.node import Node

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 5.0  # how often a node actor pushes its values to Ray's metrics agent
PREFIX = "rustyray_"


@dataclass(frozen=True, slots=True)
class MetricSpec:
    key: str  # key in the node's flattened report (see node_values)
    name: str  # Prometheus name; counters without the ``_total`` the exporters add
    kind: Literal["counter", "gauge"]
    help: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("messages_sent", "rustyray_messages_sent", "counter", "Messages sent to peers"),
    MetricSpec("messages_received", "rustyray_messages_received", "counter", "Messages received"),
    MetricSpec("bytes_sent", "rustyray_bytes_sent", "counter", "Bytes written on all connections (TLS too)"),
    MetricSpec("bytes_received", "rustyray_bytes_received", "counter", "Bytes read on all connections"),
    MetricSpec("connection_errors", "rustyray_connection_errors", "counter", "Failed dials, broken links"),
    MetricSpec("protocol_errors", "rustyray_protocol_errors", "counter", "Connections closed on bad frames"),
    MetricSpec("handshake_refusals", "rustyray_handshake_refusals", "counter",
               "Inbound connections refused by an admission filter or the handshake"),
    MetricSpec("active_connections", "rustyray_active_connections", "gauge", "Open connections (TCP, QUIC)"),
    MetricSpec("avg_latency_ms", "rustyray_request_latency_ms", "gauge",
               "Mean request round-trip time over the recent window, milliseconds"),
    MetricSpec("p50_latency_ms", "rustyray_request_latency_p50_ms", "gauge",
               "Median request round-trip time over the recent window, milliseconds"),
    MetricSpec("p99_latency_ms", "rustyray_request_latency_p99_ms", "gauge",
               "99th percentile request round-trip time over the recent window, milliseconds"),
    MetricSpec("peers_connected", "rustyray_peers_connected", "gauge", "Peers with a live connection"),
    MetricSpec("peers_known", "rustyray_peers_known", "gauge", "Peers this node knows of"),
    MetricSpec("incarnation", "rustyray_incarnation", "gauge", "Restarts of this node's state directory"),
    MetricSpec("uptime_s", "rustyray_uptime_seconds", "gauge", "Seconds since the node started"),
)
BY_KEY: dict[str, MetricSpec] = {m.key: m for m in METRICS}


def spec_for(key: str) -> MetricSpec:
    """The spec of a reported value; a value the table does not name yet is exported as a gauge."""
    spec = BY_KEY.get(key)
    if spec is not None:
        return spec
    name = PREFIX + re.sub(r"[^a-zA-Z0-9_]", "_", key)
    return MetricSpec(key, name, "gauge", f"{key} as the node reports it")


def node_values(stats: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Flatten a node's stats snapshot and info into ``key -> number`` (non-numbers are skipped)."""
    merged: dict[str, Any] = dict(stats)
    if info:
        merged["peers_connected"] = len(info.get("connected_peers", ()))
        merged["peers_known"] = len(info.get("known_peers", ()))
        for key in ("incarnation", "uptime_s"):
            if key in info:
                merged[key] = info[key]
    return {k: float(v) for k, v in merged.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


class RayMetricsExporter:
    """Pushes one node's values into ``ray.util.metrics`` instruments (one per metric, tagged ``node``)."""

    def __init__(self, node_id: str, metrics_module: Any = None) -> None:
        if metrics_module is None:
            from ray.util import metrics as metrics_module
        self.node_id = node_id
        self._metrics = metrics_module
        self._instruments: dict[str, Any] = {}
        self._totals: dict[str, float] = {}  # last total pushed per counter
        self._latency_seen = 0  # node.stats.latency_count at the last push
        self._histogram: Any = None

    def _instrument(self, spec: MetricSpec) -> Any:
        inst = self._instruments.get(spec.key)
        if inst is None:
            cls = self._metrics.Counter if spec.kind == "counter" else self._metrics.Gauge
            inst = cls(spec.name, description=spec.help, tag_keys=("node",))
            inst.set_default_tags({"node": self.node_id})
            self._instruments[spec.key] = inst
        return inst

    def export(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            spec = spec_for(key)
            inst = self._instrument(spec)
            if spec.kind == "gauge":
                inst.set(value)
                continue
            last = self._totals.get(key, 0.0)
            delta = value - last if value >= last else value
            if delta > 0:
                inst.inc(delta)
            self._totals[key] = value

    def export_samples(self, samples: list[dict[str, Any]]) -> None:
        """Labelled gauges as Ray gauges tagged ``node`` plus their own labels (histograms elsewhere)."""
        for row in samples:
            if row["kind"] == "histogram":
                continue
            labels = row["labels"]
            inst = self._instruments.get(row["name"])
            if inst is None:
                inst = self._metrics.Gauge(row["name"], description=row["help"], tag_keys=("node", *sorted(labels)))
                inst.set_default_tags({"node": self.node_id})
                self._instruments[row["name"]] = inst
            inst.set(float(row["value"]), tags=dict(labels))

    def export_latencies(self, node: Node) -> None:
        """Observe the request latencies recorded since the last push in a Ray histogram (seconds).

        Ray histograms only take observations, so the exporter replays the new values from the
        node's recent-latency window; more than a window's worth in one interval keeps the newest.
        """
        stats = node.stats
        new = stats.latency_count - self._latency_seen
        self._latency_seen = stats.latency_count
        if new <= 0:
            return
        if self._histogram is None:
            bounds = [b / 1000.0 for b in stats.LATENCY_BUCKETS_MS if b != float("inf")]
            self._histogram = self._metrics.Histogram(
                "rustyray_request_latency_seconds", description="Request round-trip time, seconds",
                boundaries=bounds, tag_keys=("node",))
            self._histogram.set_default_tags({"node": self.node_id})
        window = stats.latencies_ms
        for ms in list(window)[-min(new, len(window)):]:
            self._histogram.observe(ms / 1000.0)

    async def run(self, node: Node, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        await node.ready.wait()
        while node.running:
            try:
                self.export(node_values(node.stats_snapshot(), node.info()))
                self.export_samples(node.metric_samples())
                self.export_latencies(node)
            except Exception:
                log.exception("exporting metrics of %s to Ray failed", node.node_id)
            await asyncio.sleep(interval_s)


def start_ray_metrics(node: Node, interval_s: float = DEFAULT_INTERVAL_S) -> asyncio.Task[Any] | None:
    """Start the exporter as a task of ``node`` (cancelled on stop); None if Ray metrics are unusable."""
    try:
        exporter = RayMetricsExporter(node.node_id)
    except Exception as exc:  # no ray, or metrics disabled: the node runs without them
        log.warning("Ray metrics export disabled on %s: %s", node.node_id, exc)
        return None
    return node.spawn(exporter.run(node, interval_s), name="ray-metrics")
