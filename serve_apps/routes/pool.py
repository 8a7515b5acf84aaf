"""Connection-pool endpoints (NETWORKING-003, 044..047): statistics, streams, warm-up, eviction."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from serve_apps.common import NodeParam, call

router = APIRouter()


class WarmupRequest(BaseModel):
    node: str = Field(min_length=1, description="Peer whose pool to warm")
    target_size: int = Field(ge=1, le=10_000, description="Connections wanted (capped by max_size)")


class EvictionRequest(BaseModel):
    policy: Literal["LRU", "IdleTimeout", "MaxLifetime"]
    idle_timeout_sec: float = Field(gt=0)
    max_lifetime_sec: float = Field(gt=0)
    max_idle: int | None = Field(None, ge=0, description="LRU: idle connections kept per pool")
    scope: Literal["cluster", "node"] = Field("cluster",
                                              description="cluster: every live member; node: here only")


@router.get("/pool/statistics")
async def statistics(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "pool", "statistics", node)


@router.get("/pool/multiplexing/streams")
async def streams(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "pool", "streams", node)


@router.post("/pool/warmup")
async def warmup(body: WarmupRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "pool", "warmup", node, node=body.node, target_size=body.target_size)


@router.post("/pool/eviction/configure")
async def eviction_configure(body: EvictionRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "pool", "eviction_configure", node, **body.model_dump())


@router.get("/pool/eviction")
async def eviction(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "pool", "eviction", node)
