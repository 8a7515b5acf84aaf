"""Routing endpoints (NETWORKING-007 to 010) and the manager's send/broadcast (056, 057)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from serve_apps.common import NodeParam, call

router = APIRouter()

TIMEOUT_MS = Field(5000, gt=0, le=300_000, description="Deadline of the whole operation, ms")


class SendRequest(BaseModel):
    target_node: str = Field(min_length=1)
    message_type: str = Field(min_length=1, max_length=200)
    priority: str = Field("Normal", description="Low | Normal | High | Critical")
    data: dict[str, Any] = Field(default_factory=dict)
    delivery: str = Field("AtLeastOnce", description="AtMostOnce | AtLeastOnce | ExactlyOnce")
    idempotency_key: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="Required for ExactlyOnce; redeliveries with it run once",
    )
    timeout_ms: float = TIMEOUT_MS


class BroadcastRequest(BaseModel):
    message_type: str = Field(min_length=1, max_length=200)
    priority: str = "Normal"
    data: dict[str, Any] = Field(default_factory=dict)
    delivery: str = "AtLeastOnce"
    timeout_ms: float = TIMEOUT_MS


class ScatterGatherRequest(BaseModel):
    target_nodes: list[str] = Field(min_length=1)
    message_type: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)
    priority: str = "Normal"
    timeout_ms: float = TIMEOUT_MS


class QuorumRequest(BaseModel):
    nodes: list[str] = Field(min_length=1)
    quorum_size: int = Field(ge=1)
    message_type: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)
    priority: str = "Normal"
    timeout_ms: float = Field(3000, gt=0, le=300_000)


class LoadTestRequest(BaseModel):
    """A short load run for a quick check over HTTP (kept small: every request holds the node's event loop
    busy for ``seconds``); longer or wider runs go through the node's ``routing.load_run`` directly."""

    target_node: str = Field(min_length=1)
    seconds: float = Field(2.0, gt=0, le=5, description="Length of the load window, s")
    in_flight: int = Field(8, ge=1, le=256, description="Routed sends kept outstanding by the node")
    delivery: str = Field("AtLeastOnce", description="AtMostOnce | AtLeastOnce | ExactlyOnce")
    message_type: str = Field("Heartbeat", min_length=1, max_length=200)
    payload_bytes: int = Field(0, ge=0, le=65_536, description="Padding in each message's data, bytes")
    priority: str = "Normal"
    timeout_ms: float = Field(5000, gt=0, le=10_000, description="Deadline of each send, ms")


class ManagerMessage(BaseModel):
    type: str = Field(min_length=1, max_length=200)
    data: dict[str, Any] = Field(default_factory=dict)


class ManagerSendRequest(BaseModel):
    target_node: str = Field(min_length=1)
    message: ManagerMessage


class ManagerBroadcastRequest(BaseModel):
    message: ManagerMessage


@router.post("/routing/send")
async def send(body: SendRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "routing", "send", node, **body.model_dump())


@router.post("/routing/broadcast")
async def broadcast(body: BroadcastRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "routing", "broadcast", node, **body.model_dump())


@router.post("/routing/scatter-gather")
async def scatter_gather(body: ScatterGatherRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "routing", "scatter_gather", node, **body.model_dump())


@router.post("/routing/quorum")
async def quorum(body: QuorumRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "routing", "quorum", node, **body.model_dump())


@router.post("/routing/load-test")
async def load_test(body: LoadTestRequest, request: Request, node: str | None = NodeParam) -> Any:
    """The node (``?node=``, else the fronted one) generates routed load to ``target_node`` from its own event
    loop for ``seconds`` and reports sent / acknowledged / failed, acknowledged sends/s and latency p50/p99.
    It sends real messages: admin only, like every mutating POST."""
    return await call(request, "routing", "load_run", node, **body.model_dump())


@router.get("/routing/delivery/stats")
async def delivery_stats(request: Request, node: str | None = NodeParam) -> Any:
    return await call(request, "routing", "delivery_stats", node)


@router.get("/routing/receive-log")
async def receive_log(
    request: Request,
    node: str | None = NodeParam,
    after: int | None = Query(None, ge=-1, description="Durable records with a higher index (default: newest)"),
    limit: int = Query(1000, ge=1, le=10_000, description="Durable records per page"),
) -> Any:
    """What the node's handlers processed (counts per type, recent message ids, live handler config) and a
    page of its durable record log (survives restarts)."""
    return await call(request, "routing", "receive_log", node, after=after, limit=limit)


@router.post("/send")
async def manager_send(body: ManagerSendRequest, request: Request, node: str | None = NodeParam) -> Any:
    return await call(
        request,
        "manager",
        "send",
        node,
        target_node=body.target_node,
        message_type=body.message.type,
        data=body.message.data,
    )


@router.post("/broadcast")
async def manager_broadcast(
    body: ManagerBroadcastRequest, request: Request, node: str | None = NodeParam
) -> Any:
    return await call(
        request, "manager", "broadcast", node, message_type=body.message.type, data=body.message.data
    )
