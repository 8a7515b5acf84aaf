"""Zero-config discovery endpoints (NETWORKING-026 to 030), backed by ``AutodiscoveryService``.

mDNS, broadcast and beacons answer 409 with the TOML to enable them when a node runs without
them; a broadcast address outside loopback and ``allowed_broadcast_addresses`` is a 403.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from serve_apps.common import NodeParam, call

router = APIRouter()


class AnnounceRequest(BaseModel):
    broadcast_address: str = Field(min_length=7, max_length=15, description="IPv4 broadcast address")
    port: int = Field(ge=1, le=65535, description="UDP port the listeners bind")
    wait_ms: int | None = Field(None, ge=0, le=10_000, description="How long replies are counted")


class SerfEventRequest(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    payload: str = Field("", max_length=4096)
    coalesce: bool = True


class SerfQueryRequest(BaseModel):
    name: str = Field(min_length=1, max_length=256)
    payload: str = Field("", max_length=4096)
    timeout_ms: int | None = Field(None, ge=1, le=60_000, description="Default: Serf's formula")
    filter_nodes: list[str] | None = Field(None, description="Only these members answer (serf query -node)")
    filter_tags: dict[str, str] | None = Field(None, description="Tag -> regexp every answerer matches (-tag)")
    relay_factor: int = Field(0, ge=0, le=5, strict=True, description="Answers also relayed via k members")


class SyncRequest(BaseModel):
    target_node: str = Field(min_length=1, max_length=256)


@router.get("/autodiscovery/mdns/discovered")
async def mdns_discovered(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "autodiscovery", "mdns_discovered", node)


@router.post("/autodiscovery/broadcast/announce")
async def broadcast_announce(body: AnnounceRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "autodiscovery", "broadcast_announce", node,
                      broadcast_address=body.broadcast_address, port=body.port, wait_ms=body.wait_ms)


@router.get("/autodiscovery/broadcast/candidates")
async def broadcast_candidates(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "autodiscovery", "broadcast_candidates", node)


@router.get("/autodiscovery/beacon/status")
async def beacon_status(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "autodiscovery", "beacon_status", node)


@router.get("/autodiscovery/serf/members")
async def serf_members(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "autodiscovery", "serf_members", node)


class SerfJoinBody(BaseModel):
    address: str = Field(min_length=3, description="host:port of a Serf agent (its memberlist port)")


@router.post("/autodiscovery/serf/join")
async def serf_join(body: SerfJoinBody, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "autodiscovery", "serf_join", node, address=body.address)


@router.post("/autodiscovery/serf/event")
async def serf_event(body: SerfEventRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "autodiscovery", "serf_event", node, name=body.name, payload=body.payload,
                      coalesce=body.coalesce)


@router.post("/autodiscovery/serf/query")
async def serf_query(body: SerfQueryRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "autodiscovery", "serf_query", node, name=body.name, payload=body.payload,
                      timeout_ms=body.timeout_ms, filter_nodes=body.filter_nodes, filter_tags=body.filter_tags,
                      relay_factor=body.relay_factor)


@router.get("/autodiscovery/serf/events")
async def serf_events(request: Request, node: str | None = NodeParam,
                      limit: int = Query(100, ge=0, le=1000)) -> Any:
    return await call(request, "autodiscovery", "serf_events", node, limit=limit)


@router.post("/autodiscovery/anti-entropy/sync")
async def anti_entropy_sync(body: SyncRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "autodiscovery", "anti_entropy_sync", node, target_node=body.target_node)


@router.get("/autodiscovery/anti-entropy/status")
async def anti_entropy_status(request: Request, node: str | None = NodeParam) -> dict[str, Any]:
    return await call(request, "autodiscovery", "anti_entropy_status", node)
