"""The gateway's fronting shortcut and node-list cache: fewer actor round trips, same failover."""

from __future__ import annotations

import types

import pytest

import serve_apps.gateway as gw_mod
from rustyray.errors import DomainError
from serve_apps.errors import http_status
from serve_apps.gateway import RayGateway, _FrontingMixin


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(gw_mod.time, "monotonic", c)
    return c


class Fake(_FrontingMixin):
    def __init__(self, ids, alive, trust):
        self.ids, self.alive, self.front_trust_s = ids, alive, trust
        self.info_calls: list[str] = []

    async def node_ids(self):
        return list(self.ids)

    async def info(self, node_id, timeout=2.0):
        self.info_calls.append(node_id)
        return {"node_id": node_id} if node_id in self.alive else None


async def test_a_fronted_node_that_just_answered_is_not_checked_again(clock):
    g = Fake(["node1", "node2"], {"node1", "node2"}, trust=0.5)
    assert await g.fronted(trust=True) == "node1" and g.info_calls == ["node1"]
    clock.now += 0.3
    assert await g.fronted(trust=True) == "node1" and g.info_calls == ["node1"]  # trusted: no round trip
    g._saw("node1", True)  # a call it answered renews the trust
    clock.now += 0.4
    assert await g.fronted(trust=True) == "node1" and g.info_calls == ["node1"]
    clock.now += 0.6
    assert await g.fronted(trust=True) == "node1" and g.info_calls == ["node1", "node1"]  # stale: checked


async def test_a_failed_call_drops_the_trust_and_the_next_live_node_fronts(clock):
    g = Fake(["node1", "node2"], {"node1", "node2"}, trust=0.5)
    assert await g.fronted(trust=True) == "node1"
    g.alive.discard("node1")
    g._saw("node1", False)
    assert await g.fronted(trust=True) == "node2"
    assert g.info_calls == ["node1", "node1", "node2"]


async def test_without_trust_every_request_checks_the_fronted_node(clock):
    g = Fake(["node1"], {"node1"}, trust=0.0)
    for _ in range(3):
        assert await g.fronted() == "node1"
    assert g.info_calls == ["node1"] * 3


async def test_an_explicit_unknown_node_is_404_and_no_live_node_is_503(clock):
    g = Fake(["node1"], set(), trust=0.5)
    with pytest.raises(DomainError) as err:
        await g.fronted("node9")
    assert (http_status(err.value), err.value.field) == (404, "node")
    with pytest.raises(DomainError) as err:
        await g.fronted()
    assert http_status(err.value) == 503


async def test_the_registry_node_list_is_cached_for_its_ttl(clock):
    reads: list[int] = []
    nodes = {"node2": {}, "node10": {}, "node1": {}}

    async def list_nodes():
        reads.append(1)
        return dict(nodes)

    registry = types.SimpleNamespace(list_nodes=types.SimpleNamespace(remote=list_nodes))
    g = RayGateway()
    g._registry = lambda: registry  # type: ignore[method-assign]
    assert await g.node_ids() == ["node1", "node2", "node10"]  # natural order
    clock.now += 0.5
    nodes["node3"] = {}
    assert await g.node_ids() == ["node1", "node2", "node10"] and len(reads) == 1
    clock.now += 0.6
    assert await g.node_ids() == ["node1", "node2", "node3", "node10"] and len(reads) == 2
    g._ids = None  # what spawn_node / stop_node do after changing the registry
    await g.node_ids()
    assert len(reads) == 3


async def test_trust_is_only_taken_when_asked_for(clock):
    g = Fake(["node1", "node2"], {"node1", "node2"}, trust=0.5)
    await g.fronted()
    await g.fronted()  # no trust asked: checked again
    await g.fronted(trust=True)  # trusted: not checked
    assert g.info_calls == ["node1", "node1"]


async def test_a_call_to_a_fronted_node_that_died_is_answered_by_the_next_one(clock):
    """serve_apps.common.call: the trusted front died since it last answered; the request still succeeds,
    through a liveness-checked pick, and an explicitly requested dead node stays a 503."""
    from fastapi import FastAPI, Request

    from serve_apps.common import call
    from serve_apps.gateway import NodeUnavailable

    class Gw(Fake):
        async def call(self, node_id, service, method, /, **kwargs):
            if node_id not in self.alive:
                self._saw(node_id, False)
                raise NodeUnavailable(f"node {node_id!r} is unavailable")
            self._saw(node_id, True)
            return {"answered_by": node_id}

    g = Gw(["node1", "node2"], {"node1", "node2"}, trust=0.5)
    app = FastAPI()
    app.state.gateway = g
    request = Request({"type": "http", "app": app})
    assert await call(request, "manager", "stats") == {"answered_by": "node1"}
    g.alive.discard("node1")  # dies while trusted
    assert await call(request, "manager", "stats") == {"answered_by": "node2"}
    with pytest.raises(NodeUnavailable):
        await call(request, "manager", "stats", "node1")
