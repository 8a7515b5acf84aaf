"""The node-side load generator: its tally, its request's checks, and the facade's loop over a fake service."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from rustyray.api_binding import invoke, request_type, to_wire
from rustyray.errors import DomainError, ErrorKind, unavailable
from rustyray.routing.api import MAX_PAYLOAD_BYTES, RoutingApi
from rustyray.routing.api_types import LoadRunRequest
from rustyray.routing.load_core import MAX_ERROR_KINDS, LoadTally, percentile
from rustyray.routing.load_runner import run_load
from rustyray.routing.send_core import Outcome


def test_percentile_is_nearest_rank():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0 and percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0 and percentile([], 0.5) is None
    assert percentile([1.0, 2.0], 0.0) == 1.0


def test_tally_counts_and_summarizes():
    t = LoadTally()
    for ms in (1.0, 2.0, 3.0, 4.0):
        t.record(True, ms)
    t.record(False, 0.0, "outbox_full")
    t.record(False, 0.0, "outbox_full")
    t.record(False, 0.0)
    s = t.summary(2.0)
    assert (s["sent"], s["acknowledged"], s["failed"]) == (7, 4, 3)
    assert s["acked_per_s"] == 2.0 and s["latency_p50_ms"] == 2.0 and s["latency_p99_ms"] == 4.0
    assert s["latency_max_ms"] == 4.0 and s["errors"] == {"outbox_full": 2, "failed": 1}
    assert LoadTally().summary(0.0)["acked_per_s"] == 0.0 and LoadTally().summary(1.0)["latency_p50_ms"] is None


def test_tally_keeps_a_bounded_sample_and_bounded_error_kinds():
    t = LoadTally(max_samples=100)
    for i in range(10_000):
        t.record(True, float(i))
    assert len(t.latencies_ms) == 100 and t.acknowledged == 10_000
    assert 2_000 < t.summary(1.0)["latency_p50_ms"] < 8_000  # a uniform sample, not the first 100
    for i in range(MAX_ERROR_KINDS + 5):
        t.record(False, 0.0, f"error {i}")
    assert len(t.errors) == MAX_ERROR_KINDS + 1 and t.errors["other"] == 5


@pytest.mark.parametrize("kwargs, field", [
    ({"target_node": ""}, "target_node"),
    ({"target_node": "node2", "seconds": 0}, "seconds"),
    ({"target_node": "node2", "seconds": 601}, "seconds"),
    ({"target_node": "node2", "seconds": "5"}, "seconds"),
    ({"target_node": "node2", "in_flight": 0}, "in_flight"),
    ({"target_node": "node2", "in_flight": 2.5}, "in_flight"),
    ({"target_node": "node2", "in_flight": True}, "in_flight"),
    ({"target_node": "node2", "in_flight": 5000}, "in_flight"),
    ({"target_node": "node2", "payload_bytes": -1}, "payload_bytes"),
])
def test_load_request_checks_name_the_field(kwargs, field):
    with pytest.raises(DomainError) as err:
        LoadRunRequest(**kwargs)
    assert err.value.kind is ErrorKind.UNPROCESSABLE and err.value.field == field


class _Routing:
    """The facade's view of the routing service: a node, the send core's ids, and ``route``."""

    def __init__(self, answer: Any) -> None:
        self.node = SimpleNamespace(node_id="node1", peers={"node2": object()})
        ids = itertools.count(1)
        self.sending = SimpleNamespace(source="node1", incarnation=7, next_id=lambda: next(ids))
        self.answer = answer
        self.requests: list[Any] = []
        self.outstanding = self.max_outstanding = 0

    async def route(self, req: Any) -> Outcome:
        self.requests.append(req)
        self.outstanding += 1
        self.max_outstanding = max(self.max_outstanding, self.outstanding)
        try:
            await asyncio.sleep(0.002)
            return self.answer(req)
        finally:
            self.outstanding -= 1

    async def run_load(self, make: Any, *, in_flight: int, seconds: float) -> tuple[float, dict[str, Any]]:
        return await run_load(self.route, make, in_flight=in_flight, seconds=seconds)  # as RoutingService does


def _api(answer: Any) -> tuple[RoutingApi, _Routing]:
    svc = _Routing(answer)
    return RoutingApi(svc), svc  # type: ignore[arg-type]


def test_load_run_is_a_typed_operation():
    assert request_type(RoutingApi.load_run) is LoadRunRequest


async def test_load_run_keeps_the_window_full_and_counts():
    api, svc = _api(lambda req: Outcome(req.target, "m", acknowledged=True, latency_ms=2.0))
    body = to_wire(await invoke(api.load_run, {"target_node": "node2", "seconds": 0.2, "in_flight": 4,
                                                "payload_bytes": 100}))
    assert svc.max_outstanding == 4 and body["sent"] == len(svc.requests) == body["acknowledged"] > 10
    assert body["failed"] == 0 and body["errors"] == {} and body["latency_p50_ms"] == 2.0
    assert body["node"] == "node1" and body["target_node"] == "node2" and body["delivery"] == "AtLeastOnce"
    assert body["data_bytes"] == len('{"pad":""}') + 100 and 0.2 <= body["elapsed_s"] < 1.0
    assert body["acked_per_s"] == pytest.approx(body["acknowledged"] / body["elapsed_s"], rel=0.01)
    assert all(r.idempotency_key is None and r.target == "node2" for r in svc.requests)


async def test_load_run_exactly_once_sends_distinct_keys():
    api, svc = _api(lambda req: Outcome(req.target, "m", acknowledged=True, latency_ms=1.0))
    await invoke(api.load_run, {"target_node": "node2", "seconds": 0.05, "in_flight": 3, "delivery": "ExactlyOnce"})
    keys = [r.idempotency_key for r in svc.requests]
    assert len(keys) == len(set(keys)) > 3 and all(k.startswith("load-node1-7-") for k in keys)


async def test_load_run_counts_failures_and_refusals():
    def answer(req: Any) -> Outcome:
        if len(svc.requests) % 3 == 0:
            raise unavailable("circuit open", "target_node")
        if len(svc.requests) % 3 == 1:
            return Outcome(req.target, "m", error="outbox full", error_code="outbox_full")
        return Outcome(req.target, "m", acknowledged=True, latency_ms=1.0)

    api, svc = _api(answer)
    body = to_wire(await invoke(api.load_run, {"target_node": "node2", "seconds": 0.1, "in_flight": 2}))
    assert body["sent"] == body["acknowledged"] + body["failed"] and body["acknowledged"] > 0
    assert set(body["errors"]) == {"outbox_full", "refused_unavailable"}


@pytest.mark.parametrize("kwargs, kind, field", [
    ({"target_node": "node9"}, ErrorKind.NOT_FOUND, "target_node"),
    ({"target_node": "node2", "delivery": "Sometimes"}, ErrorKind.UNPROCESSABLE, "delivery"),
    ({"target_node": "node2", "priority": "Urgent"}, ErrorKind.UNPROCESSABLE, "priority"),
    ({"target_node": "node2", "message_type": ""}, ErrorKind.UNPROCESSABLE, "message_type"),
    ({"target_node": "node2", "timeout_ms": 0}, ErrorKind.UNPROCESSABLE, "timeout_ms"),
    ({"target_node": "node2", "payload_bytes": MAX_PAYLOAD_BYTES}, ErrorKind.PAYLOAD_TOO_LARGE, "payload_bytes"),
    ({"target_node": "node2", "rate": 5}, ErrorKind.UNPROCESSABLE, "rate"),
])
async def test_load_run_refuses_bad_input_before_sending(kwargs, kind, field):
    api, svc = _api(lambda req: Outcome(req.target, "m", acknowledged=True))
    with pytest.raises(DomainError) as err:
        await invoke(api.load_run, {"seconds": 0.05, **kwargs})
    assert err.value.kind is kind and err.value.field == field and svc.requests == []
