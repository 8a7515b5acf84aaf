"""The load balancer API's request and result dataclasses: the checks they make and the JSON they become."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from rustyray.api_binding import invoke, request_type, to_wire
from rustyray.errors import DomainError, ErrorKind
from rustyray.loadbalancer.api import LoadBalancerApi
from rustyray.loadbalancer.api_types import (
    NodeLoadRow,
    RateLimitRow,
    RateLimitSetRequest,
    RateLimitsReport,
    RetryConfigureRequest,
    SelectionResult,
    SelectRequest,
    StatsReport,
)


def _api() -> LoadBalancerApi:
    return LoadBalancerApi(SimpleNamespace(node=SimpleNamespace(node_id="n1")),  # type: ignore[arg-type]
                           clock=lambda: 0.0, wall_clock=lambda: 0.0)


@pytest.mark.parametrize("op, req", [
    ("select", SelectRequest), ("retry_configure", RetryConfigureRequest), ("rate_limit_set", RateLimitSetRequest),
])
def test_operations_with_arguments_take_their_request(op, req):
    assert request_type(getattr(_api(), op)) is req


@pytest.mark.parametrize("op", ["circuit_status", "retry", "rate_limits", "stats"])
def test_operations_without_arguments_stay_plain(op):
    assert request_type(getattr(_api(), op)) is None


@pytest.mark.parametrize("make", [
    lambda: RetryConfigureRequest("Fixed", 3, 10, 100, scope="everywhere"),
    lambda: RateLimitSetRequest("node2", 5, 1, scope="planet"),
])
def test_a_bad_scope_names_the_field(make):
    with pytest.raises(DomainError) as err:
        make()
    assert err.value.kind is ErrorKind.UNPROCESSABLE and err.value.field == "scope"


def test_a_misspelt_argument_is_refused_before_the_operation_runs():
    def rate_limit_set(req: RateLimitSetRequest) -> None:
        raise AssertionError("must not run")

    with pytest.raises(DomainError) as err:
        invoke(rate_limit_set, {"node": "n2", "requests_per_second": 1, "burst": 1})
    assert err.value.field == "burst"


def test_a_selection_leaves_out_what_its_strategy_did_not_set():
    plain = SelectionResult(selected_node="n1", strategy="RoundRobin", request_count=4)
    assert to_wire(plain) == {"selected_node": "n1", "strategy": "RoundRobin", "request_count": 4}
    skipped = SelectionResult(selected_node="n1", strategy="Adaptive", load_scores={"n1": 0.1},
                              skipped={"n2": "circuit_open"})
    assert to_wire(skipped) == {"selected_node": "n1", "strategy": "Adaptive", "load_scores": {"n1": 0.1},
                                "skipped": {"n2": "circuit_open"}}


def test_a_member_without_stats_or_report_is_only_its_id():
    report = StatsReport(node="n1", nodes=[
        NodeLoadRow(node="n1", active_connections=0, in_flight=0, latency_ewma_ms=0.0, error_rate=0.0,
                    cpu_load=0.2, mem_load=0.3, load_score=0.1, reported_at="2026-01-01T00:00:00Z"),
        NodeLoadRow(node="n2"),
    ])
    assert to_wire(report) == {"node": "n1", "nodes": [
        {"node": "n1", "active_connections": 0, "in_flight": 0, "latency_ewma_ms": 0.0, "error_rate": 0.0,
         "cpu_load": 0.2, "mem_load": 0.3, "load_score": 0.1, "reported_at": "2026-01-01T00:00:00Z"},
        {"node": "n2"},
    ]}


def test_rate_limit_rows_nest_as_objects():
    report = RateLimitsReport(node="n1", limits=[RateLimitRow("n2", 5, 2, 0.0)], refused={"rate_limited": 1})
    assert to_wire(report) == {"node": "n1", "limits": [{"node": "n2", "rps": 5, "burst": 2, "retry_after_sec": 0.0}],
                               "refused": {"rate_limited": 1}}
