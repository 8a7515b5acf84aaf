"""How the management API reaches nodes.

``RayGateway`` talks to node actors by name in the ``rustyray`` namespace and to
the cluster registry; ``LocalGateway`` holds in-process ``Node`` objects so that
the whole API can be tested in one event loop without Ray. Both pick the *fronted*
node (the one a request without ``?node=`` goes to): the first live node in
natural order, re-picked when it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from rustyray.errors import DomainError, ErrorKind, conflict, not_found, not_implemented, unavailable


def natural_key(node_id: str) -> tuple[Any, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", node_id))


class Gateway(Protocol):
    async def node_ids(self) -> list[str]: ...

    async def call(self, node_id: str, service: str, method: str, /, **kwargs: Any) -> Any: ...

    async def info(self, node_id: str, timeout: float = 2.0) -> dict[str, Any] | None: ...

    async def fronted(self, requested: str | None = None) -> str: ...

    async def spawn_node(self, node_id: str, seeds: list[str], host: str | None, port: int) -> dict[str, Any]: ...

    async def stop_node(self, node_id: str) -> None: ...


class NodeUnavailable(DomainError):
    """UNAVAILABLE (503): the node's actor is gone or unreachable (the request did not reach the node)."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.UNAVAILABLE, message, "node")


def _wire_error(kind: str, message: str, field: str | None) -> DomainError:
    """The error of a node actor's ``("error", kind_name, message, field)`` reply (unknown kind: INTERNAL)."""
    return DomainError(ErrorKind.__members__.get(kind, ErrorKind.INTERNAL), message, field)


class _FrontingMixin:
    _front: str | None = None
    _front_seen_at: float = float("-inf")
    #: Seconds for which a fronted node that just answered is trusted without a liveness check. 0 in
    #: process (a check is free there); the Ray gateway saves one actor round trip per request with it.
    front_trust_s: float = 0.0

    async def node_ids(self) -> list[str]:
        raise NotImplementedError

    async def info(self, node_id: str, timeout: float = 2.0) -> dict[str, Any] | None:
        raise NotImplementedError

    def _saw(self, node_id: str, alive: bool) -> None:
        """Record that ``node_id`` answered (or failed) a call, for the fronting shortcut."""
        if node_id == self._front:
            self._front_seen_at = time.monotonic() if alive else float("-inf")

    async def fronted(self, requested: str | None = None, *, trust: bool = False) -> str:
        """The node that answers for the cluster (``requested`` if given).

        ``trust=True`` lets a fronted node that answered within ``front_trust_s`` skip the liveness call;
        only callers that retry on :class:`NodeUnavailable` (``serve_apps.common.call``) may pass it.
        """
        ids = await self.node_ids()
        if requested is not None:
            if requested not in ids:
                raise not_found(f"unknown node {requested!r}; known nodes: {', '.join(ids) or 'none'}", "node")
            return requested
        checked = None
        if self._front in ids:
            if trust and time.monotonic() - self._front_seen_at < self.front_trust_s:
                return self._front  # type: ignore[return-value]
            if await self.info(self._front, 1.0) is not None:
                self._saw(self._front, True)  # type: ignore[arg-type]
                return self._front  # type: ignore[return-value]
            checked = self._front
        for node_id in ids:
            if node_id != checked and await self.info(node_id, 1.0) is not None:
                self._front = node_id
                self._saw(node_id, True)
                return node_id
        raise unavailable("no node of the cluster is reachable")


class LocalGateway(_FrontingMixin):
    """In-process nodes (tests, single-process demos)."""

    def __init__(self, nodes: dict[str, Any], spawner: Callable[..., Awaitable[Any]] | None = None) -> None:
        self.nodes = nodes
        self._spawner = spawner

    async def node_ids(self) -> list[str]:
        return sorted(self.nodes, key=natural_key)

    async def info(self, node_id: str, timeout: float = 2.0) -> dict[str, Any] | None:
        node = self.nodes.get(node_id)
        return node.info() if node is not None and node.running else None

    async def call(self, node_id: str, service: str, method: str, /, **kwargs: Any) -> Any:
        node = self.nodes.get(node_id)
        if node is None:
            raise not_found(f"unknown node {node_id!r}", "node")
        if not node.running:
            raise NodeUnavailable(f"node {node_id!r} is not running")
        # A DomainError passes through as is; anything else (a TypeError from a bug included) is not a
        # client error: it propagates to the app's catch-all handler, which logs it and answers 500.
        return await node.call_api(service, method, kwargs)

    async def spawn_node(self, node_id: str, seeds: list[str], host: str | None, port: int) -> dict[str, Any]:
        if self._spawner is None:
            raise not_implemented("this gateway cannot start nodes")
        node = await self._spawner(node_id, seeds, host, port)
        self.nodes[node_id] = node
        return node.info()

    async def stop_node(self, node_id: str) -> None:
        node = self.nodes.pop(node_id, None)
        if node is not None:
            await node.stop()


class RayGateway(_FrontingMixin):
    """Node actors on the Ray cluster (production)."""

    #: A node that answered within this many seconds fronts the next request without a liveness call
    #: (a dead one fails that request with 503 and is re-picked at once).
    front_trust_s = 0.5
    #: The registry's node list is re-read at most this often; joins and leaves through this gateway
    #: refresh it at once.
    ids_ttl_s = 1.0

    def __init__(self) -> None:
        self._handles: dict[str, Any] = {}
        self._ids: tuple[float, list[str]] | None = None

    def _registry(self) -> Any:
        from rustyray.ray_edge.cluster import get_registry

        return get_registry()

    async def settings(self) -> dict[str, Any]:
        return await self._registry().get_settings.remote()

    async def node_ids(self) -> list[str]:
        now = time.monotonic()
        if self._ids is not None and now - self._ids[0] < self.ids_ttl_s:
            return list(self._ids[1])
        nodes = sorted(await self._registry().list_nodes.remote(), key=natural_key)
        self._ids = (now, nodes)
        return list(nodes)

    def _handle(self, node_id: str) -> Any:
        handle = self._handles.get(node_id)
        if handle is None:
            from rustyray.ray_edge.cluster import get_node

            try:
                handle = get_node(node_id)
            except ValueError:
                raise NodeUnavailable(f"node {node_id!r} is not running (its actor is gone)") from None
            self._handles[node_id] = handle
        return handle

    async def info(self, node_id: str, timeout: float = 2.0) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self._handle(node_id).info.remote(), timeout)
        except Exception:
            self._handles.pop(node_id, None)
            self._saw(node_id, False)
            return None

    async def call(self, node_id: str, service: str, method: str, /, **kwargs: Any) -> Any:
        import ray.exceptions

        try:
            handle = self._handle(node_id)
        except DomainError:
            self._saw(node_id, False)
            raise
        try:
            result = await handle.call.remote(service, method, kwargs)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            self._handles.pop(node_id, None)
            self._saw(node_id, False)
            raise NodeUnavailable(f"node {node_id!r} is unavailable: {type(exc).__name__}") from None
        self._saw(node_id, True)
        if result[0] == "ok":
            return result[1]
        _, kind, message, field = result
        raise _wire_error(kind, message, field)

    async def spawn_node(self, node_id: str, seeds: list[str], host: str | None, port: int) -> dict[str, Any]:
        from rustyray.ray_edge import cluster

        settings = await self.settings()
        overrides: dict[str, Any] = {"tcp_port": port}
        if host:
            overrides["host"] = host
        pg = await asyncio.to_thread(cluster.create_placement_group, 1, f"rustyray-pg-{node_id}")
        registry = self._registry()
        await registry.add_placement_group.remote(f"rustyray-pg-{node_id}")
        handle = cluster.spawn_node(settings, node_id, pg=pg, seeds=tuple(seeds), overrides=overrides)
        try:
            info = await asyncio.wait_for(handle.ready.remote(), 60)
        except Exception as exc:
            import ray

            ray.kill(handle, no_restart=True)
            raise conflict(f"node {node_id!r} could not start: {exc}", "node_id") from None
        self._handles[node_id] = handle
        await registry.add_node.remote(node_id, {"address": info["address"], "joined": True})
        self._ids = None
        return info

    async def stop_node(self, node_id: str) -> None:
        import ray

        handle = self._handles.pop(node_id, None)
        if handle is None:
            try:
                from rustyray.ray_edge.cluster import get_node

                handle = get_node(node_id)
            except ValueError:
                handle = None
        if handle is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.stop.remote(True), 10)
            ray.kill(handle, no_restart=True)
        await self._registry().remove_node.remote(node_id)
        self._ids = None
        try:
            from ray.util import get_placement_group, remove_placement_group

            remove_placement_group(get_placement_group(f"rustyray-pg-{node_id}"))
        except Exception:
            pass
