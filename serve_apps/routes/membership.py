"""Membership endpoints: SWIM gossip state and status, Raft status, the view, join, leave, bootstrap
(NETWORKING-025, 031 to 036)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from rustyray.errors import not_found, unavailable, unprocessable
from rustyray.protocol.handshake import API_CLIENT_PREFIX
from serve_apps import ops
from serve_apps.common import NodeParam, call, gateway

router = APIRouter()


class JoinRequest(BaseModel):
    node_id: str | None = Field(None, min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    address: str | None = Field(None, description="host:port the new node listens on (port 0 = any)")
    seed_nodes: list[str] = Field(default_factory=list, description="host:port (or nodeN:port) of members")


class LeaveRequest(BaseModel):
    node_id: str | None = Field(None, min_length=1)
    reason: str = "requested"


class BootstrapRequest(BaseModel):
    cluster_name: str = Field(min_length=1, max_length=128)
    initial_nodes: list[str] = Field(min_length=1)
    replication_factor: int | None = Field(None, ge=1)


@router.get("/autodiscovery/gossip/state")
async def gossip_state(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "membership", "gossip_state", node)


@router.get("/membership/raft/status")
async def raft_status(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "membership", "raft_status", node)


@router.get("/membership/swim/status")
async def swim_status(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "membership", "swim_status", node)


@router.get("/membership/view")
async def view(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "membership", "view", node)


@router.get("/membership/events")
async def events(request: Request, cursor: int = 0, node: str | None = NodeParam) -> Any:
    return await call(request, "membership", "events", node, cursor=cursor, timeout_s=0.0)


@router.post("/membership/join")
async def join(body: JoinRequest, request: Request) -> Any:
    if body.node_id is not None and body.node_id.startswith(API_CLIENT_PREFIX):
        raise unprocessable(f"node_id: {API_CLIENT_PREFIX!r} names API clients, not nodes", "node_id")
    host, port = None, 0
    if body.address:
        try:
            from rustyray.transport.tcp import parse_address

            host, port = parse_address(body.address, field="address")
        except ValueError as exc:
            raise unprocessable(str(exc), "address") from None
    return await ops.join_cluster(gateway(request), node_id=body.node_id, seed_nodes=body.seed_nodes,
                                  host=host, port=port)


@router.post("/membership/leave")
async def leave(body: LeaveRequest, request: Request) -> Any:
    return await ops.leave_cluster(gateway(request), node_id=body.node_id, reason=body.reason)


@router.post("/membership/bootstrap")
async def bootstrap(body: BootstrapRequest, request: Request) -> Any:
    gw = gateway(request)
    known = await gw.node_ids()
    unknown = [n for n in body.initial_nodes if n not in known]
    if unknown:
        raise not_found(f"unknown node(s) {unknown}; started nodes: {known}", "initial_nodes")
    if len(set(body.initial_nodes)) != len(body.initial_nodes):
        raise unprocessable("initial_nodes has duplicates", "initial_nodes")
    infos = await asyncio.gather(*(gw.info(n, 5.0) for n in body.initial_nodes))
    down = [n for n, i in zip(body.initial_nodes, infos, strict=True) if i is None]
    if down:
        raise unavailable(f"node(s) {down} are not reachable", "initial_nodes")
    members = {n: {"address": i["address"], "quic_address": i["quic_address"]}
               for n, i in zip(body.initial_nodes, infos, strict=True)}
    return await gw.call(body.initial_nodes[0], "membership", "bootstrap", cluster_name=body.cluster_name,
                         members=members, replication_factor=body.replication_factor)
