"""The health facade's typed contract: requests built from the routes' keyword arguments, results that
serialise to the keys the API has always returned, and errors naming the field."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rustyray.api_binding import invoke, request_type, to_wire
from rustyray.errors import DomainError, ErrorKind
from rustyray.health.api import HealthApi
from rustyray.health.api_types import (
    AddCheckRequest,
    ProbeRequest,
    RecoveryStatusRequest,
    RecoveryTriggerRequest,
    RemoveCheckRequest,
)


def _api(**svc: Any) -> HealthApi:
    node = SimpleNamespace(node_id="node1", peers={"node2": SimpleNamespace(connected=False)})
    return HealthApi(SimpleNamespace(node=node, **svc), clock=lambda: 0.0)  # type: ignore[arg-type]


def test_operations_with_arguments_take_their_request_type() -> None:
    api = _api()
    assert request_type(api.add_check) is AddCheckRequest
    assert request_type(api.remove_check) is RemoveCheckRequest
    assert request_type(api.probe) is ProbeRequest
    assert request_type(api.recovery_trigger) is RecoveryTriggerRequest
    assert request_type(api.recovery_status) is RecoveryStatusRequest
    assert request_type(api.checks) is None


async def test_remove_check_keeps_the_wire_shape_and_names_check_id() -> None:
    removed: set[str] = set()

    async def remove_check(check_id: str) -> bool:
        if check_id in removed:
            return False
        removed.add(check_id)
        return True

    api = _api(checker=SimpleNamespace(remove_check=remove_check))
    body = to_wire(await invoke(api.remove_check, {"check_id": "c1"}))
    assert body == {"success": True, "check_id": "c1", "removed": True}
    with pytest.raises(DomainError) as err:
        await invoke(api.remove_check, {"check_id": "c1"})
    assert (err.value.kind, err.value.field) == (ErrorKind.NOT_FOUND, "check_id")


def test_unknown_strategy_is_blamed_before_the_node() -> None:
    with pytest.raises(DomainError) as err:
        invoke(_api().recovery_trigger, {"node_id": "node9", "strategy": "Sometimes"})
    assert (err.value.kind, err.value.field) == (ErrorKind.UNPROCESSABLE, "strategy")


def test_recovery_of_an_unknown_node_names_node_id() -> None:
    with pytest.raises(DomainError) as err:
        invoke(_api().recovery_trigger, {"node_id": "node9"})
    assert (err.value.kind, err.value.field) == (ErrorKind.NOT_FOUND, "node_id")


async def test_unreachable_peer_probes_dead() -> None:
    async def request_probes(node_id: str) -> Any:
        raise ConnectionError("refused")

    api = _api(request_probes=request_probes)
    body = to_wire(await invoke(api.probe, {"node_id": "node2"}))
    assert body == {"node": "node2", "liveness": "Dead", "readiness": "NotReady", "startup": "Unknown",
                    "reason": "unreachable from node1: refused", "observed_by": "node1"}


def test_phi_values_serialise_to_their_wire_json() -> None:
    row = SimpleNamespace(node_id="node2", phi=1.23456, status=SimpleNamespace(value="Alive"))
    monitor = SimpleNamespace(config=SimpleNamespace(phi=SimpleNamespace(threshold=8.0)))
    result = _api(peer_rows=lambda now: [row], monitor=monitor).phi_values()
    assert result.phi_values[0].phi == 1.235
    assert to_wire(result) == {"local_node": "node1", "threshold": 8.0,
                               "phi_values": [{"node": "node2", "phi": 1.235, "status": "Alive"}]}
