"""Shared fixtures. ``harness`` (beside this file) builds in-process clusters.

The discovery server fixtures (real etcd / dnsmasq / moto, and the Consul, Kubernetes, Azure and GCP
doubles) come from ``tests.servers.fixtures`` so unit and integration tests share one definition.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from tests.servers.fixtures import *  # noqa: E402, F403

logging.getLogger("quic").setLevel(logging.WARNING)


# ------------------------------------------------------------------ hang diagnosis
# pytest-timeout kills a hung test from a signal handler: the traceback then shows only the event
# loop's select(). An async test is instead given an asyncio deadline a little shorter than its
# pytest timeout: at the deadline every task's stack is printed (captured into the report) and the
# test is cancelled, so its own cleanup runs and the failure names the await that never returned.
_DEADLINE_MARGIN_S = 40.0


def _test_deadline(item: pytest.Item) -> float:
    marker = item.get_closest_marker("timeout")
    explicit = marker is not None and marker.args
    limit = float(marker.args[0]) if explicit else float(item.config.getini("timeout") or 0)
    return max(limit - _DEADLINE_MARGIN_S, limit * 0.8) if limit > 0 else 0.0


def _await_chain(coro: Any) -> list[str]:
    """The frames a coroutine is suspended in, outermost first (following cr_await / ag_await)."""
    frames = []
    for _ in range(40):
        if coro is None:
            break
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            frames.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None) or getattr(coro, "ag_await", None)
    return frames


def _dump_tasks(name: str) -> None:
    print(f"\n==== {name}: asyncio deadline reached; task stacks follow ====", file=sys.stderr)
    for task in asyncio.all_tasks():
        print(f"-- {task.get_name()}", file=sys.stderr)
        for line in _await_chain(task.get_coro()):
            print(f"     {line}", file=sys.stderr)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fn = getattr(item, "obj", None)
        deadline = _test_deadline(item)
        if fn is None or deadline <= 0 or not inspect.iscoroutinefunction(fn):
            continue

        def guard(fn: Any = fn, deadline: float = deadline, name: str = item.nodeid) -> Any:
            @functools.wraps(fn)
            async def guarded(*args: Any, **kwargs: Any) -> Any:
                loop = asyncio.get_running_loop()
                dump = loop.call_later(deadline, _dump_tasks, name)
                try:
                    async with asyncio.timeout(deadline + 0.5):
                        return await fn(*args, **kwargs)
                finally:
                    dump.cancel()

            return guarded

        item.obj = guard()
