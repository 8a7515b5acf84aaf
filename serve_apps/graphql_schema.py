"""GraphQL front door (NETWORKING-059 to 065): queries, mutations and subscriptions.

Resolvers hold no cluster logic: they call the same gateway operations as the REST
routes (``membership.members``, ``transport.connections_list``, ``manager.stats``)
and the shared ``serve_apps.ops`` join/leave, then reshape the result to the seed's
field names. Subscriptions read the replica's ``GraphQLHub`` so that any number of
subscribers share one upstream poller per feed.

The strawberry router is built by ``mount(app)`` inside ``build_app`` (that is, in
the Serve replica), never at import time: Serve pickles module-level apps and loses
the annotations strawberry needs (ray-project/ray#50677).

Spelling: member states are shown as the seed shows them (``Active``, ``Suspect``,
``Dead``, ``Left``) with ``health`` derived from the state; 64-bit counters
(``messagesSent``, ``bytesSent``...) are decimal strings as in the seed, because a
GraphQL ``Int`` is 32-bit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from typing import Any, TypeVar

import strawberry
from fastapi import APIRouter, FastAPI
from graphql import GraphQLError
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.permission import BasePermission
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.types import Info

from rustyray.errors import DomainError
from serve_apps import ops
from serve_apps.auth import ApiAuth, Role, bearer
from serve_apps.common import PREFIX
from serve_apps.errors import http_status
from serve_apps.graphql_hub import GraphQLHub

router = APIRouter()  # nothing at import time; see mount()

GRAPHQL_PATH = PREFIX + "/graphql"
GRAPHQL_WS_PATH = PREFIX + "/graphql/ws"
MAX_INTERVAL_S = 3600

# membership state -> (GraphQL state, health)
_STATES = {
    "Alive": ("Active", "Healthy"),
    "Active": ("Active", "Healthy"),
    "Suspect": ("Suspect", "Degraded"),
    "Dead": ("Dead", "Unhealthy"),
    "Failed": ("Dead", "Unhealthy"),
    "Left": ("Left", "Unhealthy"),
}

T = TypeVar("T")


def _state(raw: str) -> tuple[str, str]:
    return _STATES.get(raw, (raw, "Unknown"))


async def _api(op: Awaitable[T]) -> T:
    """Run a gateway operation; a ``DomainError`` becomes a GraphQL error carrying its HTTP status and field."""
    try:
        return await op
    except DomainError as exc:
        extensions = {"status": http_status(exc), **({"field": exc.field} if exc.field else {})}
        raise GraphQLError(exc.message, extensions=extensions) from None


def _gateway(info: Info) -> Any:
    return info.context["gateway"]


async def _addresses(gw: Any, members: list[dict[str, Any]]) -> dict[str, str | None]:
    """Member address as the view reports it, else from the node itself (the placeholder view has none)."""
    missing = [m["node"] for m in members if not m.get("address")]
    infos = await asyncio.gather(*(gw.info(n, 2.0) for n in missing))
    out: dict[str, str | None] = {n: (i or {}).get("address") for n, i in zip(missing, infos, strict=True)}
    out.update({m["node"]: m["address"] for m in members if m.get("address")})
    return out


# ----------------------------------------------------------------------------- types
@strawberry.type(description="A member of the fronted node's view, with that node's traffic to it")
class Peer:
    node_id: str
    address: str | None
    state: str = strawberry.field(description="Active, Suspect, Dead or Left")
    health: str = strawberry.field(description="Healthy (Active), Degraded (Suspect), Unhealthy (Dead/Left)")
    is_local: bool = strawberry.field(description="This is the node answering")
    bytes_sent: str = strawberry.field(description="Bytes on the live connections to this peer (u64)")
    bytes_received: str
    connections: int


@strawberry.type
class Member:
    id: str
    address: str | None
    state: str


@strawberry.type
class Topology:
    local_node: str
    cluster_size: int = strawberry.field(description="Members the local node believes Active")
    members: list[Member]


@strawberry.type
class NetworkStats:
    node: str
    messages_sent: str
    messages_received: str
    bytes_sent: str
    bytes_received: str
    active_connections: int
    connection_errors: int
    avg_latency_ms: float


@strawberry.type
class NetworkStatsTick:
    node: str
    messages_sent: str
    messages_received: str
    active_connections: int
    avg_latency_ms: float


@strawberry.type
class JoinResult:
    success: bool
    message: str
    cluster_size: int
    node_id: str | None = None
    address: str | None = None


@strawberry.type
class LeaveResult:
    success: bool
    message: str
    node_id: str | None = None
    cluster_size: int | None = None


@strawberry.type
class PeerEvent:
    event_type: str = strawberry.field(
        description="NodeJoined, NodeLeft, NodeSuspected, NodeFailed or NodeRecovered")
    node_id: str
    timestamp: str
    observer: str | None = strawberry.field(default=None, description="The node that saw it")


def _stats(raw: dict[str, Any]) -> NetworkStats:
    return NetworkStats(
        node=raw["node"], messages_sent=str(raw["messages_sent"]),
        messages_received=str(raw["messages_received"]),
        bytes_sent=str(raw["bytes_sent"]), bytes_received=str(raw["bytes_received"]),
        active_connections=raw["active_connections"], connection_errors=raw["connection_errors"],
        avg_latency_ms=raw["avg_latency_ms"])


# ----------------------------------------------------------------------------- roots
@strawberry.type
class Query:
    @strawberry.field(description="Members of the fronted (or given) node's view and its traffic to each")
    async def peers(self, info: Info, node: str | None = None) -> list[Peer]:
        gw = _gateway(info)
        front, members = await _api(ops.cluster_members(gw, node))
        conns, addresses = await _api(asyncio.gather(gw.call(front, "transport", "connections_list"),
                                                     _addresses(gw, members)))
        traffic: dict[str, list[int]] = {}
        for c in conns["connections"]:
            if c.get("node") and c.get("state") != "Closed":
                t = traffic.setdefault(c["node"], [0, 0, 0])
                t[0] += c["bytes_sent"]
                t[1] += c["bytes_received"]
                t[2] += 1
        out = []
        for m in members:
            state, health = _state(m["state"])
            sent, received, count = traffic.get(m["node"], [0, 0, 0])
            out.append(Peer(node_id=m["node"], address=addresses.get(m["node"]), state=state, health=health,
                            is_local=m["node"] == front, bytes_sent=str(sent), bytes_received=str(received),
                            connections=count))
        return out

    @strawberry.field(description="The fronted (or given) node's view of the cluster")
    async def topology(self, info: Info, node: str | None = None) -> Topology:
        gw = _gateway(info)
        front, members = await _api(ops.cluster_members(gw, node))
        addresses = await _addresses(gw, members)
        shown = [Member(id=m["node"], address=addresses.get(m["node"]), state=_state(m["state"])[0])
                 for m in members]
        return Topology(local_node=front, cluster_size=sum(1 for m in shown if m.state == "Active"),
                        members=shown)

    @strawberry.field(description="Live counters of the fronted (or given) node (same as GET /stats)")
    async def network_stats(self, info: Info, node: str | None = None) -> NetworkStats:
        gw = _gateway(info)
        front = await _api(gw.fronted(node))
        return _stats(await _api(gw.call(front, "manager", "stats")))


class IsAdmin(BasePermission):
    """Mutations need the admin role, over HTTP (where ``AuthMiddleware`` answers 401/403 first) and over
    the WebSocket (where a connection opened with a read token or none may still send a mutation)."""

    message = "authorization: this operation needs the admin role"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        auth: ApiAuth = info.context["auth"]
        if info.context.get("role", Role.NONE) >= Role.ADMIN:
            return True
        auth.failures["forbidden"] += 1
        return False


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Start a new node and join it to the cluster through the seeds",
                         permission_classes=[IsAdmin])
    async def join_cluster(self, info: Info, seed_nodes: list[str]) -> JoinResult:
        res = await _api(ops.join_cluster(_gateway(info), seed_nodes=seed_nodes))
        return JoinResult(success=res["success"], message=f"Successfully joined cluster as {res['node_id']}",
                          cluster_size=res["cluster_size"], node_id=res["node_id"],
                          address=res.get("address"))

    @strawberry.mutation(description="The fronted node leaves the cluster gracefully and stops",
                         permission_classes=[IsAdmin])
    async def leave_cluster(self, info: Info) -> LeaveResult:
        res = await _api(ops.leave_cluster(_gateway(info)))
        return LeaveResult(success=res["success"], message=f"Successfully left cluster ({res['node_id']})",
                           node_id=res["node_id"], cluster_size=res["cluster_size"])


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Membership events as the fronted node sees them, from now on")
    async def peer_events(self, info: Info) -> AsyncGenerator[PeerEvent, None]:
        hub: GraphQLHub = info.context["hub"]
        async with hub.peer_events.subscribe() as queue:
            while True:
                e = await queue.get()
                yield PeerEvent(event_type=e["eventType"], node_id=e["nodeId"], timestamp=e["timestamp"],
                                observer=e.get("observer"))

    @strawberry.subscription(description="The fronted node's counters every intervalSecs seconds")
    async def network_stats_stream(self, info: Info,
                                   interval_secs: int) -> AsyncGenerator[NetworkStatsTick, None]:
        if not 1 <= interval_secs <= MAX_INTERVAL_S:
            raise GraphQLError(f"intervalSecs must be between 1 and {MAX_INTERVAL_S}",
                               extensions={"status": 422, "field": "intervalSecs"})
        hub: GraphQLHub = info.context["hub"]
        async with hub.network_stats.subscribe(float(interval_secs)) as queue:
            while True:
                s = _stats(await queue.get())
                yield NetworkStatsTick(node=s.node, messages_sent=s.messages_sent,
                                       messages_received=s.messages_received,
                                       active_connections=s.active_connections,
                                       avg_latency_ms=s.avg_latency_ms)


class _Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Log only server-side failures: bad queries and 4xx outcomes are the client's business."""
        unexpected = [e for e in errors if e.original_error is not None
                      and int((e.extensions or {}).get("status", 500)) >= 500]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema() -> strawberry.Schema:
    return _Schema(query=Query, mutation=Mutation, subscription=Subscription)


async def _context(connection: HTTPConnection) -> dict[str, Any]:
    """What resolvers see: the gateway (REST's service layer), the replica's subscription hub, and the
    caller's role (from the request's ``Authorization`` header; a WebSocket may upgrade it at connect)."""
    auth: ApiAuth = connection.app.state.auth
    return {"gateway": connection.app.state.gateway, "hub": connection.app.state.graphql_hub, "auth": auth,
            "role": auth.role_of(bearer(connection.headers.get("authorization")))}


class _Router(GraphQLRouter):
    async def on_ws_connect(self, context: dict[str, Any]) -> Any:
        """Admit a WebSocket at ``connection_init``: its payload may carry ``authorization`` (browsers cannot set
        headers on a WebSocket). No valid credential and no open read role: close 4403."""
        auth: ApiAuth = context["auth"]
        params = context.get("connection_params") or {}
        given = params.get("authorization", params.get("Authorization")) if isinstance(params, dict) else None
        if given is not None:
            context["role"] = auth.role_of(bearer(str(given)))
        if context["role"] is None or context["role"] < Role.READ:
            auth.failures["invalid" if context["role"] is None else "missing"] += 1
            raise ConnectionRejectionError({"error": "authorization: a valid token is required", "status": 401,
                                            "field": "authorization"})
        return await super().on_ws_connect(context)


def mount(app: FastAPI) -> None:
    """Mount POST/GET (and WebSocket) at /graphql and WebSocket (and POST) at /graphql/ws."""
    app.state.graphql_hub = GraphQLHub(app.state.gateway)
    graphql = _Router(build_schema(), path="", context_getter=_context,
                            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL))
    app.include_router(graphql, prefix=GRAPHQL_PATH, tags=["graphql"])
    app.include_router(graphql, prefix=GRAPHQL_WS_PATH, tags=["graphql"], include_in_schema=False)
