"""Shared pieces of the reliability tests: a cluster on its own event-loop thread, leak probes, raw clients.

Why a loop thread: hypothesis' ``@given`` and schemathesis drive examples from synchronous code, and we
want one long-lived cluster across thousands of examples with per-example assertions and one summary
at the end. The cluster runs in a background event loop; the test thread submits coroutines to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from harness import local_cluster

from rustyray.node import Node
from rustyray.protocol.frame import Frame, FrameDecoder

T = TypeVar("T")

# Coroutines a node runs per inbound connection: none may outlive its connection.
PER_CONNECTION_TASKS = frozenset({"Node._accept", "SecurityService._release_on_close", "Node._finish"})


class LoopThread:
    """An asyncio loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="reliability-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Awaitable[T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class ThreadedCluster:
    """``harness.local_cluster`` entered and exited on a ``LoopThread``."""

    def __init__(self, n: int, state_dir: Path, **kw: Any) -> None:
        self.lt = LoopThread()
        self._cm = local_cluster(n, state_dir, **kw)
        self.cluster = self.lt.run(self._cm.__aenter__(), 120)

    def node(self, node_id: str) -> Node:
        return self.cluster.node(node_id)

    def run(self, coro: Awaitable[T], timeout: float = 60.0) -> T:
        return self.lt.run(coro, timeout)

    def close(self) -> None:
        try:
            self.lt.run(self._cm.__aexit__(None, None, None), 60)
        finally:
            self.lt.close()


def connection_tasks(node: Node) -> int:
    """Live tasks of the node that belong to one connection (accept, firewall slot, handler)."""
    return sum(1 for t in node._tasks if not t.done() and t.get_coro().__qualname__ in PER_CONNECTION_TASKS)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def open_raw(port: int, ctx: ssl.SSLContext | None, *, local_host: str | None = None,
                   timeout: float = 5.0) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw (optionally TLS) client connection to a node listener on loopback."""
    kw: dict[str, Any] = {"ssl": ctx, "server_hostname": None if ctx is None else ""}
    if ctx is None:
        kw = {}
    if local_host is not None:
        kw["local_addr"] = (local_host, 0)
    return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, **kw), timeout)


async def read_frame(reader: asyncio.StreamReader, decoder: FrameDecoder, *, timeout: float = 5.0,
                     want: Callable[[Frame], bool] = lambda f: True) -> Frame:
    """Read until a frame matching ``want`` arrives (frames before it are skipped)."""
    async def loop() -> Frame:
        while True:
            for frame in decoder.frames():
                if want(frame):
                    return frame
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("closed by the node")
            decoder.feed(data)

    return await asyncio.wait_for(loop(), timeout)


async def closed_by_peer(reader: asyncio.StreamReader, timeout: float) -> bool:
    """True when the node closes (EOF or reset) within ``timeout``; False when it keeps the connection."""
    try:
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError, OSError):
        return True
    return True


def close_writer(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.transport.abort()
