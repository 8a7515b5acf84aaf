"""The node actor: one long-lived async Ray actor per cluster member.

Why the node starts from ``__init__``: an async actor's constructor runs inside
its event loop, so a node that Ray restarts (``max_restarts``) binds its
listeners, reloads its state directory and rejoins without anyone calling it.
Every management call goes through ``call``, which returns a tagged tuple instead
of raising so that a ``DomainError`` keeps its kind and field across Ray (the HTTP
status is chosen by the API, ``serve_apps.errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from typing import Any

import ray

from rustyray.config import NodeConfig
from rustyray.node import Node

NAMESPACE = "rustyray"


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("quic").setLevel(logging.WARNING)


@ray.remote
class NodeActor:
    def __init__(self, config: NodeConfig, host_auto: bool = False) -> None:
        """``host_auto``: listen on this actor's own Ray node IP (``launch --host auto``), resolved here,
        on the host the actor was placed on, not in the driver."""
        _configure_logging()
        if host_auto:
            from rustyray.ray_edge.enrolment import with_host

            config = with_host(config, ray.util.get_node_ip_address())
        self._restarted = ray.get_runtime_context().was_current_actor_reconstructed
        if self._restarted:
            # Ray restarted us, maybe on a host that never held our state: the registry knows our peers, so
            # a node without its cluster.json can still rejoin (as a fresh Raft member: formation.py), and
            # a wall-clock incarnation puts us above whatever our old self reached
            from rustyray.ray_edge.cluster import peer_seeds

            config = dataclasses.replace(config, seeds=config.seeds or peer_seeds(config.node_id),
                                         min_incarnation=max(config.min_incarnation, int(time.time())))
        self.node = Node(config)
        self._channel: Any = None  # the management-API channel (rustyray.transport.api_channel_adapter)
        self._boot = asyncio.get_running_loop().create_task(self._start(config))

    async def _start(self, config: NodeConfig) -> None:
        """Enrol with the cluster CA (key made on this host, only the CSR travels), then start the node."""
        from rustyray.ray_edge.enrolment import enrol_node

        await enrol_node(config)
        await self.node.start()
        await self._open_api_channel()
        if self._restarted:
            from rustyray.ray_edge.cluster import get_registry

            with contextlib.suppress(Exception):  # the registry is informational here
                await get_registry().moved_node.remote(config.node_id, self.node.info()["address"])
        from rustyray.ray_edge.metrics import start_ray_metrics  # Ray dashboard / Prometheus export
        start_ray_metrics(self.node)

    async def _open_api_channel(self) -> None:
        """Listen for the API replica's mTLS channel on the node's host (any free port; see ``api_channel``).

        Uses the node's own server context (client certificate from the cluster CA required; a rotation
        updates it in place). Without TLS there is no channel: the replica then uses Ray calls.
        """
        from rustyray.transport.api_channel_adapter import ApiChannelServer, node_dispatch

        if self.node.server_ssl is None:
            return
        try:
            channel = ApiChannelServer(node_dispatch(self.node), self.node.server_ssl)
            await channel.start(self.node.config.transport.host, 0)
        except Exception:  # the Ray path still works: never fail the node for its API channel
            logging.getLogger(__name__).exception("%s: API channel not started", self.node.node_id)
            return
        self._channel = channel

    async def api_channel(self) -> dict[str, Any] | None:
        """Where the API channel listens: ``{"host", "port", "node_id"}``, None when there is none."""
        if not self._boot.done():
            await asyncio.wait_for(asyncio.shield(self._boot), 60)
        if self._channel is None:
            return None
        address = self.node.tcp_address or f"{self.node.config.transport.host}:0"  # what peers dial
        host = address.rsplit(":", 1)[0].strip("[]")
        return {"host": host, "port": self._channel.port, "node_id": self.node.node_id}

    async def ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the node is listening; returns its info (raises if start failed)."""
        await asyncio.wait_for(asyncio.shield(self._boot), timeout)
        return self.node.info()

    async def info(self) -> dict[str, Any]:
        return self.node.info()

    async def call(self, service: str, method: str, kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """Run ``service.api_<method>(**kwargs)``: ``("ok", result)`` or ``("error", kind_name, message, field)``.

        Argument mismatches are ``UNPROCESSABLE`` domain errors raised by the node before the call
        (``rustyray.api_binding.bind_call``); any other exception, a ``TypeError`` included, is a bug
        or an unexpected failure: logged with its traceback and answered as ``INTERNAL`` (HTTP 500).
        """
        from rustyray.transport.api_channel_adapter import api_reply

        if not self._boot.done():
            await asyncio.wait_for(asyncio.shield(self._boot), 60)
        return await api_reply(self.node, service, method, kwargs)  # the same tuple as the API channel's

    async def stop(self, graceful: bool = True) -> bool:
        if self._channel is not None:
            await self._channel.stop()
            self._channel = None
        await self.node.stop(graceful=graceful)
        return True
