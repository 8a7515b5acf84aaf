"""The error boundary: domain errors map to HTTP through one table; a bug is a 500, never a 422."""

from __future__ import annotations

import asyncio
import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from harness import ADMIN_HEADERS, harness_auth

from rustyray.api_binding import bind_call, invoke, request_type, to_wire
from rustyray.errors import DomainError, ErrorKind, not_found, too_many_requests, unprocessable
from rustyray.node import Node
from rustyray.pool.api_types import WarmupRequest, WarmupResult
from serve_apps.app import build_app
from serve_apps.errors import HTTP_STATUS, error_body, http_status
from serve_apps.gateway import LocalGateway, NodeUnavailable, RayGateway

REPO = Path(__file__).resolve().parents[3]


class FakeHealth:
    """Stands in for the health service: the routes call it by these names."""

    def api_checks(self) -> dict[str, Any]:
        return {"checks": len(None)}  # type: ignore[arg-type]  # a bug: TypeError inside the operation

    def api_remove_check(self, rule_id: str) -> dict[str, Any]:  # the route passes check_id: a name mismatch
        return {"removed": rule_id}

    async def api_aggregate(self) -> dict[str, Any]:
        raise DomainError(ErrorKind.CONFLICT, "aggregation is disabled", "health")

    async def api_heartbeat_status(self) -> dict[str, Any]:
        raise too_many_requests("slow down", "node")


class FakeNode:
    """Just enough of a node for ``LocalGateway``; ``call_api`` is the real ``Node.call_api``."""

    node_id = "node1"
    running = True
    call_api = Node.call_api

    def __init__(self) -> None:
        self.services = {"health": FakeHealth()}

    def info(self) -> dict[str, Any]:
        return {"node_id": self.node_id}


@pytest.fixture
async def client():
    app = build_app(LocalGateway({"node1": FakeNode()}), harness_auth())
    # raise_app_exceptions=False: as under uvicorn, the 500 handler's answer is what the client sees
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test/api/v1/network",
                                 headers=ADMIN_HEADERS) as c:
        yield c


# ------------------------------------------------------------------ through the app


async def test_a_type_error_inside_an_operation_is_a_500_with_the_traceback_logged(client, caplog):
    with caplog.at_level(logging.ERROR, logger="rustyray.api"):
        r = await client.get("/health/checks")
    assert r.status_code == 500
    body = r.json()
    assert body["status"] == 500 and "TypeError" in body["error"] and "field" not in body
    logged = [rec for rec in caplog.records if rec.name == "rustyray.api"]
    assert logged and logged[0].exc_info is not None and logged[0].exc_info[0] is TypeError


async def test_an_unknown_argument_is_a_422_naming_the_field(client):
    r = await client.delete("/health/checks/c1")
    assert r.status_code == 422
    body = r.json()
    assert body["field"] == "check_id" and body["status"] == 422
    assert "unexpected argument 'check_id'" in body["error"] and "'rule_id'" in body["error"]


async def test_domain_errors_answer_the_table_status(client):
    r = await client.get("/health/aggregate")
    assert (r.status_code, r.json()) == (409, {"error": "aggregation is disabled", "status": 409, "field": "health"})
    r = await client.get("/health/heartbeat/status")
    assert (r.status_code, r.json()["field"]) == (429, "node")


async def test_the_local_gateway_lets_an_unexpected_exception_propagate():
    gw = LocalGateway({"node1": FakeNode()})
    with pytest.raises(TypeError):
        await gw.call("node1", "health", "checks")
    with pytest.raises(DomainError) as err:
        await gw.call("node1", "health", "remove_check", check_id="c1")
    assert (err.value.kind, err.value.field) == (ErrorKind.UNPROCESSABLE, "check_id")


# ------------------------------------------------------------------ the Ray path (no cluster: the logic only)


def _actor_call(call_api) -> tuple[Any, ...]:
    from rustyray.ray_edge.actor import NodeActor

    async def run() -> tuple[Any, ...]:
        boot = asyncio.get_running_loop().create_future()
        boot.set_result(None)
        actor = SimpleNamespace(_boot=boot, node=SimpleNamespace(call_api=call_api))
        return await NodeActor.__ray_metadata__.modified_class.call(actor, "health", "checks", {})

    return asyncio.run(run())


def test_the_actor_tags_domain_errors_by_kind_and_anything_else_as_internal(caplog):
    async def refuse(service, method, kwargs):
        raise not_found("no health check 'c1'", "check_id")

    async def bug(service, method, kwargs):
        raise TypeError("'NoneType' object is not subscriptable")

    assert _actor_call(refuse) == ("error", "NOT_FOUND", "no health check 'c1'", "check_id")
    with caplog.at_level(logging.ERROR):
        tag, kind, message, field = _actor_call(bug)
    assert (tag, kind, field) == ("error", "INTERNAL", None) and "TypeError" in message
    assert any(rec.exc_info and rec.exc_info[0] is TypeError for rec in caplog.records)


class _Handle:
    def __init__(self, reply: tuple[Any, ...]) -> None:
        async def remote(*_: Any) -> tuple[Any, ...]:
            return reply

        self.call = SimpleNamespace(remote=remote)


@pytest.mark.parametrize(("reply", "kind", "status"), [
    (("error", "NOT_FOUND", "gone", "node"), ErrorKind.NOT_FOUND, 404),
    (("error", "INTERNAL", "health.checks failed: TypeError: x", None), ErrorKind.INTERNAL, 500),
    (("error", "UNPROCESSABLE", "checks: unexpected argument 'x'", "x"), ErrorKind.UNPROCESSABLE, 422),
    (("error", "NO_SUCH_KIND", "from a newer actor", None), ErrorKind.INTERNAL, 500),
])
async def test_the_ray_gateway_reads_the_actors_tagged_tuple(reply, kind, status):
    gw = RayGateway()
    gw._handles["node1"] = _Handle(reply)
    with pytest.raises(DomainError) as err:
        await gw.call("node1", "health", "checks")
    assert err.value.kind is kind and http_status(err.value) == status
    assert (err.value.message, err.value.field) == (reply[2], reply[3])


# ------------------------------------------------------------------ bind_call


class Ops:
    def api_send(self, target_node: str, data: bytes = b"", *, timeout: float = 1.0) -> None: ...

    def api_any(self, node: str, **extra: Any) -> None: ...

    def api_none(self) -> None: ...


@pytest.mark.parametrize(("fn", "kwargs", "field", "text"), [
    (Ops().api_send, {"target_node": "n2", "dat": b"x"}, "dat", "send: unexpected argument 'dat'"),
    (Ops().api_send, {"data": b"x"}, "target_node", "send: missing required argument 'target_node'"),
    (Ops().api_send, {"target_node": "n2", "self": 1}, "self", "unexpected argument 'self'"),
    (Ops().api_none, {"x": 1}, "x", "none: unexpected argument 'x'; it takes no arguments"),
    (Ops().api_any, {}, "node", "missing required argument 'node'"),
])
def test_bind_call_names_the_offending_field(fn, kwargs, field, text):
    with pytest.raises(DomainError) as err:
        bind_call(fn, kwargs)
    assert err.value.kind is ErrorKind.UNPROCESSABLE and err.value.field == field and text in err.value.message


@pytest.mark.parametrize(("fn", "kwargs"), [
    (Ops().api_send, {"target_node": "n2"}),
    (Ops().api_send, {"target_node": "n2", "data": b"x", "timeout": 2.0}),
    (Ops().api_any, {"node": "n1", "anything": 1, "else": 2}),
    (Ops().api_none, {}),
    (dict, {"anything": 1}),  # no introspectable signature: not checked
])
def test_bind_call_accepts_what_the_call_would(fn, kwargs):
    bind_call(fn, kwargs)


def test_bind_call_does_not_call():
    calls: list[int] = []
    bind_call(lambda x: calls.append(x), {"x": 1})
    assert calls == []


# ------------------------------------------------------------------ the error types and the table


@pytest.mark.parametrize("exc", [
    DomainError(ErrorKind.NOT_FOUND, "unknown node 'n9'", "node"),
    DomainError(ErrorKind.INTERNAL, "boom"),
    too_many_requests("rate limited", "target_node"),
    NodeUnavailable("node 'n2' is unavailable"),
    unprocessable("bad", "x"),
])
def test_domain_errors_pickle_round_trip(exc):
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and (back.kind, back.message, back.field) == (exc.kind, exc.message, exc.field)
    assert str(back) == str(exc) and back.to_dict() == exc.to_dict()


def test_to_dict_speaks_no_http():
    assert DomainError(ErrorKind.CONFLICT, "busy", "node_id").to_dict() == {
        "error": "busy", "kind": "conflict", "field": "node_id"}
    assert error_body(DomainError(ErrorKind.CONFLICT, "busy")) == {"error": "busy", "status": 409}


def test_a_domain_error_needs_a_kind():
    with pytest.raises(TypeError):
        DomainError(404, "not a kind")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_every_error_kind_has_an_http_status(kind):
    assert 400 <= HTTP_STATUS[kind] <= 599, f"add {kind} to serve_apps.errors.HTTP_STATUS"


def test_the_http_statuses_are_distinct():
    assert len(set(HTTP_STATUS.values())) == len(HTTP_STATUS)


def test_no_http_status_below_the_api_layer():
    """Services name a kind, never a status: no ``ApiError(<status>`` and no ``http_status`` attribute in rustyray/."""
    offenders = []
    for path in (REPO / "rustyray").rglob("*.py"):
        text = path.read_text()
        if re.search(r"\bApiError\b", text) or re.search(r"\bhttp_status\s*[:=]", text):
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"HTTP statuses below serve_apps: {offenders}"


def test_not_found_helper_builds_a_plain_domain_error():
    exc = not_found("x", "node")
    assert type(exc) is DomainError and exc.kind is ErrorKind.NOT_FOUND and HTTP_STATUS[exc.kind] == 404
    assert not hasattr(exc, "status")  # the HTTP status is the API layer's (serve_apps.errors), not the node's


# ------------------------------------------------------------------ typed facades
def test_a_typed_operation_gets_its_request_built_and_checked():
    seen = []

    def warmup(req: WarmupRequest) -> WarmupResult:
        seen.append(req)
        return WarmupResult(True, req.target_size, 1, req.node, 1, 0, req.target_size)

    assert request_type(warmup) is WarmupRequest and request_type(lambda node: node) is None
    out = to_wire(invoke(warmup, {"node": "node2", "target_size": 3}))
    assert seen == [WarmupRequest("node2", 3)] and out["node"] == "node2" and out["target_connections"] == 3
    for kwargs, field in (({"node": "node2"}, "target_size"), ({"node": "n", "target_size": 0}, "target_size"),
                          ({"node": "n", "target_size": 2, "colour": 1}, "colour")):
        with pytest.raises(DomainError) as info:
            invoke(warmup, kwargs)
        assert info.value.field == field
    assert len(seen) == 1  # refused requests never reach the operation

    @dataclass
    class Inner:
        kind: ErrorKind
        values: tuple[int, ...]

    assert to_wire({"a": [Inner(ErrorKind.NOT_FOUND, (1, 2))]}) == {"a": [{"kind": "not_found", "values": [1, 2]}]}
