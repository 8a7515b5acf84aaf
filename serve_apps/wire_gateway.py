"""The Ray gateway with its node calls on the nodes' mTLS API channel (``rustyray.transport.api_channel``).

Why: a Ray actor call from the replica to a node costs 1-2 ms (more on a loaded host) and was most of an API
request's time; one frame on a pooled TLS connection costs what our transport costs. Values still come from
the running node on every request (nothing is cached here but connections).

Per node the replica keeps one connection, dialled on first use at the address the node actor reports
(``NodeActor.api_channel``), the server's certificate checked to name that node. The replica's own client
certificate comes from the cluster CA by enrolment over Ray (``enrol_api_client``), so a replica on another
host needs no shared filesystem. Whenever the channel is not there (no CA holder, enrolment refused, the node
not reachable, the connection refused) a request goes the Ray way, ``RayGateway``'s, unchanged; a failed node
is not dialled again for ``retry_wire_after_s``. A dead node therefore fails as before: its connection
closes, the request is retried (fallback) on the actor, whose death is ``NodeUnavailable`` (503).

Read snapshot (bounded staleness): the two reads behind ``/stats`` and ``/nodes`` (``manager.stats``,
``membership.members`` without arguments, and ``info``) answer from the node's last answer when that answer
was asked for at most ``read_max_age_s`` (50 ms) ago, and concurrent identical reads share one round trip.
Every value still comes from the running node and is never older than that bound; any other call through
this replica (a send, a join, a config change) drops every snapshot first, so a client reads its own writes.
This keeps a burst of reads from waking every node process for each one on a busy host.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rustyray.transport.api_channel import ApiChannelError
from rustyray.transport.api_channel_adapter import ApiChannelClient, ApiChannelClosed
from serve_apps.gateway import NodeUnavailable, RayGateway, _wire_error

log = logging.getLogger("rustyray.api.wire")


class WireGateway(RayGateway):
    """``RayGateway`` whose ``call`` and ``info`` use the node's API channel when it is up."""

    #: After a node's channel could not be set up, that node is asked over Ray for this long.
    retry_wire_after_s = 5.0
    #: After enrolment failed (no CA holder, refused), the replica retries it after this long.
    retry_enrol_after_s = 30.0
    #: A wire call without a reply after this many seconds fails with 503 and drops the channel: a node host
    #: that vanished without closing its connections must not hang the request (the longest API call, a
    #: load test, runs at most 5 s; joins and bootstraps wait at most 30 s inside the node).
    call_timeout_s = 60.0
    #: The oldest read snapshot answered (seconds since its node was asked); 0 turns snapshots off.
    read_max_age_s = 0.05
    #: The calls that may be answered from a snapshot (without arguments): reads with no side effect.
    SNAPSHOT_READS = frozenset({("manager", "stats"), ("membership", "members")})

    def __init__(self) -> None:
        super().__init__()
        self._channels: dict[str, ApiChannelClient] = {}
        self._no_wire_until: dict[str, float] = {}
        self._dialing: dict[str, asyncio.Lock] = {}
        self._ssl: ssl.SSLContext | None = None
        self._enrol_lock: asyncio.Lock | None = None
        self._enrol_failed_at = float("-inf")
        self._reads: dict[tuple[str, ...], tuple[float, asyncio.Future[Any]]] = {}
        self.stats = {"wire_calls": 0, "ray_calls": 0, "wire_setups": 0, "wire_failures": 0, "snapshot_hits": 0}
        """Counters for tests and benchmarks: which path answered."""

    # ------------------------------------------------------------------ channel setup
    async def _client_ssl(self) -> ssl.SSLContext | None:
        if self._ssl is not None:
            return self._ssl
        if time.monotonic() - self._enrol_failed_at < self.retry_enrol_after_s:
            return None
        if self._enrol_lock is None:
            self._enrol_lock = asyncio.Lock()
        async with self._enrol_lock:
            if self._ssl is None and time.monotonic() - self._enrol_failed_at >= self.retry_enrol_after_s:
                from rustyray.ray_edge.enrolment import enrol_api_client
                from rustyray.security.tls import client_context

                try:
                    creds = await enrol_api_client()
                    self._ssl = client_context(creds) if creds is not None else None
                except Exception:
                    log.exception("API client enrolment failed: node calls go over Ray")
                    self._ssl = None
                if self._ssl is None:
                    self._enrol_failed_at = time.monotonic()
        return self._ssl

    async def _channel(self, node_id: str) -> ApiChannelClient | None:
        channel = self._channels.get(node_id)
        if channel is not None and not channel.closed:
            return channel
        if time.monotonic() < self._no_wire_until.get(node_id, float("-inf")):
            return None
        lock = self._dialing.setdefault(node_id, asyncio.Lock())
        async with lock:
            channel = self._channels.get(node_id)
            if channel is not None and not channel.closed:
                return channel
            if time.monotonic() < self._no_wire_until.get(node_id, float("-inf")):
                return None
            try:
                context = await self._client_ssl()
                if context is None:
                    return None
                where = await asyncio.wait_for(self._handle(node_id).api_channel.remote(), 5)
                if where is None or where.get("node_id") != node_id:
                    raise ConnectionError(f"node {node_id!r} has no API channel")
                from rustyray.security.tls import verify_claimed_identity

                channel = ApiChannelClient(where["host"], where["port"], context,
                                           verify=lambda ssl_object: verify_claimed_identity(ssl_object, node_id))
                await channel.connect(2.0)
            except Exception as exc:  # the actor is gone, the port refused, the wrong node answered, ...
                log.info("no API channel to %s (%s: %s): Ray calls for %.0fs", node_id, type(exc).__name__, exc,
                         self.retry_wire_after_s)
                self.stats["wire_failures"] += 1
                self._no_wire_until[node_id] = time.monotonic() + self.retry_wire_after_s
                return None
            self.stats["wire_setups"] += 1
            self._channels[node_id] = channel
            return channel

    def _drop(self, node_id: str) -> None:
        channel = self._channels.pop(node_id, None)
        if channel is not None:
            channel.close()
        self._forget(node_id)

    def _forget(self, node_id: str) -> None:
        """Drop ``node_id``'s snapshots: it failed, so the next read (a failover's liveness check) asks it."""
        for key in [k for k in self._reads if k[0] == node_id]:
            del self._reads[key]

    # ------------------------------------------------------------------ read snapshots
    async def _snapshot(self, key: tuple[str, ...], fetch: Callable[[], Awaitable[Any]]) -> Any:
        """``fetch()``'s value, shared with every identical read asked for within ``read_max_age_s``."""
        now = time.monotonic()
        entry = self._reads.get(key)
        if entry is not None and now - entry[0] <= self.read_max_age_s:
            self.stats["snapshot_hits"] += 1
            return await asyncio.shield(entry[1])
        future = asyncio.ensure_future(fetch())
        self._reads[key] = (now, future)

        def forget(done: asyncio.Future[Any]) -> None:  # a failure is never shared with later readers
            if (done.cancelled() or done.exception() is not None) and self._reads.get(key, (0, None))[1] is done:
                del self._reads[key]

        future.add_done_callback(forget)
        return await asyncio.shield(future)

    # ------------------------------------------------------------------ gateway verbs
    async def info(self, node_id: str, timeout: float = 2.0) -> dict[str, Any] | None:
        if self.read_max_age_s > 0:
            return await self._snapshot((node_id, "info"), lambda: self._info(node_id, timeout))
        return await self._info(node_id, timeout)

    async def call(self, node_id: str, service: str, method: str, /, **kwargs: Any) -> Any:
        if (service, method) in self.SNAPSHOT_READS and not kwargs and self.read_max_age_s > 0:
            return await self._snapshot((node_id, service, method), lambda: self._call(node_id, service, method))
        self._reads.clear()  # anything else may change what the reads show: read your own writes
        return await self._call(node_id, service, method, **kwargs)

    async def _info(self, node_id: str, timeout: float) -> dict[str, Any] | None:
        channel = await self._channel(node_id)
        if channel is not None:
            try:
                reply = await channel.request("info", timeout=timeout)
            except ApiChannelClosed:
                self._drop(node_id)  # the actor decides below: dead -> None, restarted -> its info
            except TimeoutError:
                self._saw(node_id, False)
                return None
            else:
                self.stats["wire_calls"] += 1
                return reply[1] if reply[0] == "ok" else None
        self.stats["ray_calls"] += 1
        return await super().info(node_id, timeout)

    async def _call(self, node_id: str, service: str, method: str, /, **kwargs: Any) -> Any:
        channel = await self._channel(node_id)
        if channel is not None:
            try:
                reply = await channel.request("call", service, method, kwargs, timeout=self.call_timeout_s)
            except TimeoutError:
                self._drop(node_id)
                self._saw(node_id, False)
                raise NodeUnavailable(f"node {node_id!r} did not answer within {self.call_timeout_s:.0f} s") from None
            except ApiChannelError:
                pass  # an argument msgpack cannot carry (nothing sent): Ray pickles it
            except ApiChannelClosed as exc:
                self._drop(node_id)
                if exc.sent:  # it may have run: never run it twice; a dead node is the usual cause
                    self._saw(node_id, False)
                    raise NodeUnavailable(f"node {node_id!r} is unavailable: {exc}") from None
            else:
                self.stats["wire_calls"] += 1
                self._saw(node_id, True)
                if reply[0] == "ok":
                    return reply[1]
                _, kind, message, field = reply
                raise _wire_error(kind, message, field)
        self.stats["ray_calls"] += 1
        try:
            return await super().call(node_id, service, method, **kwargs)
        except NodeUnavailable:
            self._forget(node_id)
            raise

    async def spawn_node(self, node_id: str, seeds: list[str], host: str | None, port: int) -> dict[str, Any]:
        self._reads.clear()
        return await super().spawn_node(node_id, seeds, host, port)

    async def stop_node(self, node_id: str) -> None:
        self._reads.clear()
        self._drop(node_id)
        await super().stop_node(node_id)
