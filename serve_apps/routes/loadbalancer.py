"""Load-balancer endpoints (NETWORKING-037..043): selection, breakers, retries, rate limits."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from serve_apps.common import NodeParam, call

router = APIRouter()

StrategyField = Literal["RoundRobin", "LeastConnections", "ConsistentHash", "Adaptive"]
Scope = Literal["cluster", "node"]


class SelectRequest(BaseModel):
    strategy: StrategyField
    available_nodes: list[str] | None = Field(None, min_length=1,
                                              description="Candidates (default: the live members)")
    routing_key: str | None = Field(None, min_length=1, description="Key for ConsistentHash")


class RetryRequest(BaseModel):
    strategy: Literal["Fixed", "ExponentialBackoff", "JitteredBackoff"]
    max_attempts: int = Field(ge=1, le=100, description="Attempts including the first")
    initial_delay_ms: float = Field(gt=0, le=3_600_000)
    max_delay_ms: float = Field(gt=0, le=3_600_000)
    multiplier: float | None = Field(None, ge=1.0, le=100.0)
    scope: Scope = Field("cluster", description="cluster: apply on every live member; node: here only")


class RateLimitRequest(BaseModel):
    node: str = Field(min_length=1, description="Target node whose traffic is limited")
    requests_per_second: float = Field(gt=0)
    burst_size: int = Field(ge=1)
    scope: Scope = Field("cluster", description="cluster: apply on every live member; node: here only")


@router.post("/loadbalancer/select")
async def select(body: SelectRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "loadbalancer", "select", node, strategy=body.strategy,
                      available_nodes=body.available_nodes, routing_key=body.routing_key)


@router.get("/loadbalancer/circuit-breaker/status")
async def circuit_status(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "loadbalancer", "circuit_status", node)


@router.post("/loadbalancer/retry/configure")
async def retry_configure(body: RetryRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "loadbalancer", "retry_configure", node, **body.model_dump())


@router.get("/loadbalancer/retry")
async def retry(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "loadbalancer", "retry", node)


@router.post("/loadbalancer/rate-limit/set")
async def rate_limit_set(body: RateLimitRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "loadbalancer", "rate_limit_set", node, **body.model_dump())


@router.get("/loadbalancer/rate-limit")
async def rate_limits(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "loadbalancer", "rate_limits", node)


@router.get("/loadbalancer/stats")
async def lb_stats(request: Request, node: str | None = NodeParam) -> dict[str, Any]:
    return await call(request, "loadbalancer", "stats", node)
