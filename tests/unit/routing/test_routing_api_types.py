"""The routing API's typed operations: their requests' own checks and the facade's fault injection."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rustyray.api_binding import invoke, request_type, to_wire
from rustyray.errors import DomainError, ErrorKind
from rustyray.routing.api import RoutingApi
from rustyray.routing.api_types import FaultInjectionRequest, QuorumRequest, ScatterGatherRequest


@pytest.mark.parametrize("op, req", [
    ("scatter_gather", ScatterGatherRequest), ("quorum", QuorumRequest), ("fault_injection", FaultInjectionRequest),
])
def test_typed_operations_take_their_request(op, req):
    assert request_type(getattr(RoutingApi(_Routing()), op))  # type: ignore[arg-type] is req


@pytest.mark.parametrize("kwargs, field", [
    ({"drop": 1.5}, "drop"), ({"duplicate": -0.1}, "duplicate"), ({"delay": "x"}, "delay"),
    ({"drop": 0.6, "delay": 0.6}, "drop"),
])
def test_fault_probabilities_are_checked_naming_the_field(kwargs, field):
    with pytest.raises(DomainError) as err:
        FaultInjectionRequest(**kwargs)
    assert err.value.kind is ErrorKind.UNPROCESSABLE and err.value.field == field


class _Routing:
    def __init__(self) -> None:
        self.node = SimpleNamespace(node_id="node1")
        self.calls: list[tuple[Any, ...]] = []

    def inject_faults(self, drop: float, duplicate: float, delay: float, seed: int | None, *,
                      enabled: bool) -> dict[str, int] | None:
        self.calls.append((drop, duplicate, delay, seed, enabled))
        return {"dropped": 3} if len(self.calls) > 1 else None


def test_fault_injection_reports_the_new_settings_and_the_old_counters():
    svc = _Routing()
    api = RoutingApi(svc)  # type: ignore[arg-type]
    first = to_wire(invoke(api.fault_injection, {"drop": 0.25, "seed": 7}))
    assert first == {"node": "node1", "enabled": True, "drop": 0.25, "duplicate": 0.0, "delay": 0.0, "seed": 7,
                     "previous_counters": None}
    off = to_wire(invoke(api.fault_injection, {}))
    assert off["enabled"] is False and off["previous_counters"] == {"dropped": 3}
    assert svc.calls == [(0.25, 0.0, 0.0, 7, True), (0.0, 0.0, 0.0, None, False)]
