"""Service discovery endpoints (NETWORKING-020 to 024) and the discovery status page.

Each ``.../nodes`` endpoint runs a live ``discover()`` on the asking node's backend and returns the
backend's body in the seed's shape. A backend without a ``[discovery.<name>]`` table answers 503
(409 when its table is invalid) with the TOML to add; a backend that fails answers 502/503 with why.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from serve_apps.common import NodeParam, call

router = APIRouter()


class ConsulRegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    service_name: str | None = Field(None, min_length=1, description="Must be the configured Consul service")
    node_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    address: str = Field(min_length=1, max_length=253, description="Host name or IP address, no port")
    port: int = Field(ge=1, le=65535)
    tags: list[str] = Field(default_factory=list, max_length=64)


@router.get("/discovery/status")
async def status(request: Request, node: str | None = NodeParam) -> Any:
    """Every backend (configured or not, with how to configure it), what it found and when."""
    return await call(request, "discovery", "status", node)


@router.post("/discovery/refresh")
async def refresh(request: Request, node: str | None = NodeParam) -> Any:
    """Run a discovery round on every joined backend now; returns the status."""
    return await call(request, "discovery", "refresh", node)


@router.get("/discovery/dns/nodes")
async def dns_nodes(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "discovery", "dns_nodes", node)


@router.get("/discovery/kubernetes/nodes")
async def kubernetes_nodes(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "discovery", "kubernetes_nodes", node)


@router.post("/discovery/consul/register")
async def consul_register(body: ConsulRegisterRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "discovery", "consul_register", node, node_id=body.node_id,
                      address=body.address, port=body.port, tags=body.tags, service_name=body.service_name)


@router.delete("/discovery/consul/register/{node_id}")
async def consul_deregister(node_id: str, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "discovery", "consul_deregister", node, node_id=node_id)


@router.get("/discovery/consul/nodes")
async def consul_nodes(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "discovery", "consul_nodes", node)


@router.get("/discovery/etcd/nodes")
async def etcd_nodes(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "discovery", "etcd_nodes", node)


@router.get("/discovery/cloud/{provider}/nodes")
async def cloud_nodes(provider: str, request: Request, node: str | None = NodeParam) -> dict[str, Any]:
    return await call(request, "discovery", "cloud_nodes", node, provider=provider)
