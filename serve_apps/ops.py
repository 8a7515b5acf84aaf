"""Cluster operations shared by REST and GraphQL (one implementation, two front doors).

``join_cluster`` starts a new node actor on the Ray cluster (through the gateway),
lets it join through the given seeds and waits until the fronted node's view
includes it; ``leave_cluster`` makes a node leave gracefully and stops its actor.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rustyray.errors import DomainError, ErrorKind, conflict, not_found, unprocessable
from serve_apps.gateway import natural_key


async def cluster_members(gw: Any, node: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """(fronted node id, members as that node sees them: node, state, address, ...)."""
    front = await gw.fronted(node)
    view = await gw.call(front, "membership", "members")
    return front, view["members"]


async def resolve_seeds(gw: Any, seeds: list[str]) -> list[str]:
    """Validate ``host:port`` seeds; a host that is a node id (``node1:7000``) means that node's address."""
    from rustyray.transport.tcp import parse_address

    out: list[str] = []
    ids = set(await gw.node_ids())
    for i, seed in enumerate(seeds):
        try:
            host, _port = parse_address(seed, field=f"seed_nodes[{i}]")
        except ValueError as exc:
            raise unprocessable(str(exc), "seed_nodes") from None
        if host in ids:
            info = await gw.info(host, 2.0)
            if info is None:
                continue  # that member is down: the other seeds must do
            out.append(info["address"])
        else:
            front = await gw.fronted(None)
            await gw.call(front, "transport", "check_dial", hosts=[host], field="seed_nodes")
            out.append(seed)
    return out


def _joining(gw: Any) -> set[str]:
    """Node ids whose join is in progress on this gateway (claimed before the first await)."""
    claims = getattr(gw, "_joining", None)
    if claims is None:
        claims = set()
        gw._joining = claims
    return claims


async def next_node_id(gw: Any) -> str:
    ids = set(await gw.node_ids()) | _joining(gw)
    i = 1
    while f"node{i}" in ids:
        i += 1
    return f"node{i}"


async def join_cluster(gw: Any, *, node_id: str | None = None, seed_nodes: list[str] | None = None,
                       host: str | None = None, port: int = 0, timeout: float = 30.0) -> dict[str, Any]:
    """Start ``node_id`` (default: the next free ``nodeN``) and join it through ``seed_nodes``.

    Concurrent joins of one id: the first claims it, the others get 409 (without the claim both
    would start a node and the gateway would keep only the second, leaving the first running unowned).
    """
    node_id = node_id or await next_node_id(gw)
    joining = _joining(gw)
    ids = await gw.node_ids()
    if node_id in ids or node_id in joining:  # no await between this check and the claim
        raise conflict(f"node {node_id!r} is already a member or joining", "node_id")
    joining.add(node_id)
    try:
        return await _join(gw, node_id, seed_nodes, host, port, timeout)
    finally:
        joining.discard(node_id)


async def _join(gw: Any, node_id: str, seed_nodes: list[str] | None, host: str | None, port: int,
                timeout: float) -> dict[str, Any]:
    seeds = await resolve_seeds(gw, seed_nodes or [])
    if not seeds:
        front, members = await cluster_members(gw)
        seeds = [m["address"] for m in members if m.get("address") and m.get("state") == "Alive"][:3]
    info = await gw.spawn_node(node_id, seeds, host, port)
    deadline = time.monotonic() + timeout
    size = 0
    while time.monotonic() < deadline:
        if node_id not in await gw.node_ids():  # a concurrent leave stopped it: do not wait for it
            raise conflict(f"{node_id} left while it was joining", "node_id")
        front, members = await cluster_members(gw)
        alive = [m for m in members if m.get("state") == "Alive"]
        size = len(alive)
        if any(m["node"] == node_id for m in alive):
            break
        await asyncio.sleep(0.2)
    else:
        raise timeout(f"{node_id} started but did not appear in the membership within {timeout:.0f}s")
    view = await gw.call(front, "membership", "view")
    return {"success": True, "node_id": node_id, "address": info.get("address"), "cluster_size": size,
            "joined_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "membership_version": view.get("view_version")}


async def leave_cluster(gw: Any, *, node_id: str | None = None, reason: str = "requested",
                        timeout: float = 30.0) -> dict[str, Any]:
    """Make ``node_id`` (default: the fronted node) leave gracefully, then stop its actor."""
    ids = await gw.node_ids()
    if node_id is None:
        node_id = await gw.fronted(None)
    elif node_id not in ids:
        raise not_found(f"unknown node {node_id!r}", "node_id")
    try:
        await gw.call(node_id, "membership", "leave", reason=reason)
    except DomainError as exc:
        if exc.kind is not ErrorKind.UNAVAILABLE:
            raise
        # the node is gone: remove it from the configuration on its behalf
        front = await gw.fronted(None)
        await gw.call(front, "membership", "remove", node_id=node_id)
    await gw.stop_node(node_id)
    remaining = sorted((i for i in ids if i != node_id), key=natural_key)
    size = len(remaining)
    version = None
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        try:
            front, members = await cluster_members(gw)
            alive = [m for m in members if m.get("state") == "Alive"]
            if all(m["node"] != node_id for m in alive):
                size = len(alive)
                version = (await gw.call(front, "membership", "view")).get("view_version")
                break
        except DomainError:
            pass
        await asyncio.sleep(0.2)
    return {"success": True, "node_id": node_id, "cluster_size": size,
            "left_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "membership_version": version}
