"""Nodes, transport, protocol and network-manager endpoints (NETWORKING-001/002/005/006/055-058)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from serve_apps.common import NodeParam, call, gateway
from serve_apps.gateway import NodeUnavailable

router = APIRouter()


class ConnectRequest(BaseModel):
    host: str = Field(min_length=1, description="Address to dial")
    port: int = Field(ge=1, le=65535)
    node_id: str | None = Field(None, description="Node expected at that address (checked in the handshake)")


class EncodeRequest(BaseModel):
    message_type: str = Field(min_length=1)
    compression: str = "none"
    data: dict[str, Any] = Field(default_factory=dict)


class HandshakeRequest(BaseModel):
    node_id: str = Field(min_length=1)
    protocol_version: int = Field(ge=0)
    capabilities: list[str] = Field(default_factory=list)


@router.get("/nodes")
async def list_nodes(request: Request, node: str | None = NodeParam) -> dict[str, Any]:
    """Every node the cluster knows, with its addresses and its state as seen by the fronted node."""
    gw = gateway(request)
    ids = await gw.node_ids()
    if node is not None:
        await gw.fronted(node)  # an unknown ?node= is a 404 here as everywhere, not silently ignored

    async def view() -> tuple[str | None, dict[str, str]]:
        try:  # as common.call does: a recently answering front is trusted, a dead one re-picked (checked)
            front = await gw.fronted(node, trust=node is None)
            try:
                members = await gw.call(front, "membership", "members")
            except NodeUnavailable:
                if node is not None:
                    raise
                front = await gw.fronted(None)
                members = await gw.call(front, "membership", "members")
        except Exception:
            return None, {}
        return front, {m["node"]: m["state"] for m in members.get("members", [])}

    # the infos and the fronted node's view at once: one node round trip of latency, not three in a row
    *infos, (front, states) = await asyncio.gather(*(gw.info(i, 2.0) for i in ids), view())
    nodes = []
    for node_id, info in zip(ids, infos, strict=True):
        state = states.get(node_id) or ("Alive" if info else "Unreachable")
        if info is None and state == "Alive":
            state = "Unreachable"
        nodes.append({
            "node_id": node_id,
            "address": info["address"] if info else None,
            "quic_address": info["quic_address"] if info else None,
            "state": state,
            "incarnation": info["incarnation"] if info else None,
            "connected_peers": len(info["connected_peers"]) if info else 0,
        })
    return {"nodes": nodes, "total": len(nodes), "fronted_by": front}


@router.post("/transport/tcp/connect")
async def tcp_connect(body: ConnectRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "transport", "connect", node, protocol="TCP", host=body.host, port=body.port,
                      node_id=body.node_id)


@router.post("/transport/quic/connect")
async def quic_connect(body: ConnectRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "transport", "connect", node, protocol="QUIC", host=body.host, port=body.port,
                      node_id=body.node_id)


@router.get("/transport/connections")
async def connections(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "transport", "connections_list", node)


@router.post("/protocol/encode")
async def encode(body: EncodeRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "transport", "encode", node, message_type=body.message_type,
                      compression=body.compression, data=body.data)


@router.post("/protocol/handshake")
async def handshake(body: HandshakeRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "transport", "handshake", node, node_id=body.node_id,
                      protocol_version=body.protocol_version, capabilities=body.capabilities)


@router.get("/stats")
async def stats(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "manager", "stats", node)


@router.post("/manager/initialize")
async def initialize(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "manager", "initialize", node)
