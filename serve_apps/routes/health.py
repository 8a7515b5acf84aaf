"""Health endpoints (NETWORKING-014 to 019): heartbeats, phi, checks, aggregate, probes, recovery."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from serve_apps.common import NodeParam, call

router = APIRouter()


class AddCheckRequest(BaseModel):
    node_id: str = Field(min_length=1, description="Node the check is about")
    check_type: str = Field(description="TCP | HTTP | gRPC | Custom")
    endpoint: str = Field(
        min_length=1, description="host:port, http(s) URL, grpc://host:port[/service] or a custom check name"
    )
    interval_ms: float = Field(5000, gt=0, le=86_400_000)
    timeout_ms: float = Field(2000, gt=0, le=600_000)


class RecoveryRequest(BaseModel):
    node_id: str = Field(min_length=1)
    strategy: str = Field("ExponentialBackoff", description="ExponentialBackoff | Fixed | Immediate")


@router.get("/health/heartbeat/status")
async def heartbeat_status(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "health", "heartbeat_status", node)


@router.get("/health/failure-detector/phi-values")
async def phi_values(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "health", "phi_values", node)


@router.post("/health/checks/add")
async def add_check(body: AddCheckRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "health", "add_check", node, **body.model_dump())


@router.get("/health/checks")
async def list_checks(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "health", "checks", node)


@router.delete("/health/checks/{check_id}")
async def remove_check(check_id: str, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "health", "remove_check", node, check_id=check_id)


@router.get("/health/aggregate")
async def aggregate(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "health", "aggregate", node)


@router.get("/health/liveness/{node_id}")
async def liveness(node_id: str, request: Request, node: str | None = NodeParam) -> Any:
    """The node's own probes (Dead when it cannot be reached from the fronted node)."""
    return await call(request, "health", "probe", node, node_id=node_id)


@router.get("/health/readiness/{node_id}")
async def readiness(node_id: str, request: Request, node: str | None = NodeParam) -> Any:
    """Same body as liveness: the seed reports all three probes together."""
    return await call(request, "health", "probe", node, node_id=node_id)


@router.post("/health/recovery/trigger")
async def recovery_trigger(body: RecoveryRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "health", "recovery_trigger", node, **body.model_dump())


@router.get("/health/recovery/{node_id}")
async def recovery_status(node_id: str, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "health", "recovery_status", node, node_id=node_id)
