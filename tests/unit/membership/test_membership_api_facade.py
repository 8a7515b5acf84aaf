"""The membership facade's typed contract: requests built from the routes' keyword arguments, results
that serialise to the keys the API has always returned, and errors naming the field."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rustyray.api_binding import invoke, request_type, to_wire
from rustyray.errors import DomainError, ErrorKind
from rustyray.membership.api import MembershipApi
from rustyray.membership.api_types import (
    BootstrapRequest,
    BootstrapResult,
    EventsRequest,
    LeaveRequest,
    RemoveRequest,
)
from rustyray.membership.formation import BootstrapOutcome, bootstrap_report


class _Log:
    seq = 3

    def after(self, cursor: int) -> list[dict[str, Any]]:
        return [{"seq": s, "type": "NodeJoined"} for s in range(cursor + 1, self.seq + 1)]


def _api(**svc: Any) -> MembershipApi:
    service = SimpleNamespace(node=SimpleNamespace(node_id="node1"), **svc)
    return MembershipApi(service, wall_clock=lambda: 0.0)  # type: ignore[arg-type]


def test_operations_with_arguments_take_their_request_type() -> None:
    api = _api()
    assert request_type(api.events) is EventsRequest
    assert request_type(api.bootstrap) is BootstrapRequest
    assert request_type(api.leave) is LeaveRequest
    assert request_type(api.remove) is RemoveRequest
    assert request_type(api.members) is None


async def test_events_keeps_the_wire_shape() -> None:
    api = _api(event_log=_Log())
    body = to_wire(await invoke(api.events, {"cursor": 1, "timeout_s": 0.0}))
    assert body == {"events": [{"seq": 2, "type": "NodeJoined"}, {"seq": 3, "type": "NodeJoined"}],
                    "cursor": 3, "node": "node1"}


async def test_unexpected_argument_names_the_field() -> None:
    with pytest.raises(DomainError) as err:
        await invoke(_api(event_log=_Log()).events, {"after": 1})
    assert (err.value.kind, err.value.field) == (ErrorKind.UNPROCESSABLE, "after")


async def test_bootstrap_of_a_member_is_a_conflict_on_initial_nodes() -> None:
    api = _api(raft=SimpleNamespace(started=True), cluster_name="c", cluster_id="id")
    with pytest.raises(DomainError) as err:
        await api.bootstrap(BootstrapRequest(cluster_name="c", members={"node1": {"address": "a:1"}}))
    assert (err.value.kind, err.value.field) == (ErrorKind.CONFLICT, "initial_nodes")


async def test_bootstrap_replication_factor_is_checked_against_the_members() -> None:
    api = _api(raft=SimpleNamespace(started=False))
    req = BootstrapRequest(cluster_name="c", members={"node1": {"address": "a:1"}}, replication_factor=2)
    with pytest.raises(DomainError) as err:
        await api.bootstrap(req)
    assert (err.value.kind, err.value.field) == (ErrorKind.UNPROCESSABLE, "replication_factor")


def test_bootstrap_result_is_the_report_field_for_field() -> None:
    report = bootstrap_report(BootstrapOutcome("c", "cid", ("node1", "node2"), {"node2": "timeout"}, "node1",
                                               None, 1.0))
    assert to_wire(BootstrapResult.from_report(report)) == report


async def test_remove_failure_names_node_id() -> None:
    async def change(_: Any) -> Any:
        return SimpleNamespace(ok=False, error="no leader", members=[])

    api = _api(formation=SimpleNamespace(change=change))
    with pytest.raises(DomainError) as err:
        await invoke(api.remove, {"node_id": "node3"})
    assert (err.value.kind, err.value.field) == (ErrorKind.CONFLICT, "node_id")


def _raft_api(raft: Any) -> MembershipApi:
    return _api(raft=raft, raft_config=SimpleNamespace(election_tick=10, tick_interval=0.1),
                cluster_name=None, cluster_id=None, config_log=[])


def test_raft_status_before_start_keeps_the_placeholder_keys() -> None:
    placeholder = {"state": "NotStarted", "term": 0, "leader": None, "members": [], "commit_index": 0,
                   "applied_index": 0}
    body = to_wire(_raft_api(SimpleNamespace(started=False, status=lambda: dict(placeholder))).raft_status())
    assert body == {**placeholder, "node": "node1", "cluster_name": None, "cluster_id": None,
                    "election_timeout_ms": [1000, 2000], "configuration_log": []}


def test_raft_status_once_started_is_the_core_status_and_the_cluster() -> None:
    core = {"id": "node1", "role": "Leader", "term": 2, "leader": "node1", "members": ["node1"],
            "commit_index": 4, "applied_index": 4, "last_index": 4, "vote": "node1", "state": "Leader"}
    body = to_wire(_raft_api(SimpleNamespace(started=True, status=lambda: dict(core))).raft_status())
    assert body == {**core, "node": "node1", "cluster_name": None, "cluster_id": None,
                    "election_timeout_ms": [1000, 2000], "configuration_log": []}
