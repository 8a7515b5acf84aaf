"""``GET /metrics`` (and ``/api/v1/network/metrics``): every node's counters in Prometheus text format.

At scrape time the route asks every node for ``manager.metric_samples`` (its
counters and labelled samples in one call) and its info, in parallel and with a
timeout, then renders them through a custom ``prometheus_client`` collector built
from ``rustyray.ray_edge.metrics.METRICS``, the same table the in-actor Ray exporter
uses, plus the labelled families of ``rustyray.manager.samples``. A node that does not answer is
reported as ``rustyray_node_up{node=...} 0`` instead of failing the scrape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from rustyray.ray_edge.metrics import METRICS, node_values, spec_for
from serve_apps.common import gateway

router = APIRouter()

SCRAPE_TIMEOUT_S = 5.0  # per node; a slower node counts as down for this scrape


class NodeStatsCollector:
    """A one-scrape collector over values already fetched: ``{node_id: values | None}``."""

    def __init__(self, nodes: dict[str, dict[str, float] | None],
                 samples: dict[str, list[dict[str, Any]]] | None = None) -> None:
        self.nodes = nodes
        self.samples = samples or {}

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("rustyray_node_up", "1 if the node answered this scrape", labels=["node"])
        for node_id, values in self.nodes.items():
            up.add_metric([node_id], 1.0 if values is not None else 0.0)
        yield up
        keys = [m.key for m in METRICS]
        keys += sorted({k for v in self.nodes.values() if v for k in v} - set(keys))
        for key in keys:
            spec = spec_for(key)
            cls = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            family = cls(spec.name, spec.help, labels=["node"])
            for node_id, values in self.nodes.items():
                if values is not None and key in values:
                    family.add_metric([node_id], values[key])
            if family.samples:
                yield family
        yield from self._labelled()

    def _labelled(self) -> Iterator[Metric]:
        """Families of the nodes' labelled samples (``rustyray.manager.samples``), node label first."""
        families: dict[str, Metric] = {}
        for node_id, rows in self.samples.items():
            for row in rows:
                name, labels = row["name"], row["labels"]
                family = families.get(name)
                if row["kind"] == "histogram":
                    if family is None:
                        family = families[name] = HistogramMetricFamily(name, row["help"], labels=["node"])
                    value = row["value"]
                    buckets = [(floatToGoString(le), count) for le, count in value["buckets"]]
                    family.add_metric([node_id], buckets, sum_value=value["sum"])
                else:
                    keys = sorted(labels)
                    if family is None:
                        family = families[name] = GaugeMetricFamily(name, row["help"], labels=["node", *keys])
                    family.add_metric([node_id, *(labels[k] for k in keys)], row["value"])
        yield from families.values()


async def _node_values(gw: Any, node_id: str) -> tuple[dict[str, float] | None, list[dict[str, Any]]]:
    try:
        scraped, info = await asyncio.wait_for(
            asyncio.gather(gw.call(node_id, "manager", "metric_samples"), gw.info(node_id, SCRAPE_TIMEOUT_S)),
            SCRAPE_TIMEOUT_S)
    except Exception:
        return None, []
    return node_values(scraped["stats"], info), scraped["samples"]


class AuthFailuresCollector:
    """The API replica's own refusals (``serve_apps.auth``): not a node's counter, so no node label."""

    REASONS = ("missing", "invalid", "forbidden")

    def __init__(self, failures: Any) -> None:
        self.failures = failures

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("rustyray_api_auth_failures", "API requests refused for their token, by reason "
                                     "(missing, invalid: 401; forbidden: 403), since this API replica started",
                                     labels=["reason"])
        for reason in self.REASONS:
            family.add_metric([reason], float(self.failures.get(reason, 0)))
        yield family


async def scrape(gw: Any, auth: Any = None) -> bytes:
    ids = await gw.node_ids()
    answers = await asyncio.gather(*(_node_values(gw, n) for n in ids))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeStatsCollector({n: a[0] for n, a in zip(ids, answers, strict=True)},
                                         {n: a[1] for n, a in zip(ids, answers, strict=True)}))
    if auth is not None:
        registry.register(AuthFailuresCollector(auth.failures))
    return generate_latest(registry)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
async def metrics(request: Request) -> Response:
    auth = getattr(request.app.state, "auth", None)
    return Response(await scrape(gateway(request), auth), media_type=CONTENT_TYPE_LATEST)


def mount(app: FastAPI) -> None:
    """Also serve it at the conventional root path, where Prometheus looks by default."""
    app.add_api_route("/metrics", metrics, methods=["GET"], response_class=Response, include_in_schema=False)
