"""The I/O half of ``load_run``: ``in_flight`` tasks on the node's event loop keep routed sends outstanding.

Why a runner: the facade (``api.py``) stays free of the event loop and the clock; the counting is
``load_core.LoadTally``, and this module only starts the tasks, reads the clock and sleeps after a refusal.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rustyray.errors import DomainError
from rustyray.routing.load_core import LoadTally

__all__ = ["run_load"]


async def run_load(route: Callable[[Any], Awaitable[Any]], make: Callable[[], Any], *, in_flight: int,
                   seconds: float) -> tuple[float, dict[str, Any]]:
    """Keep ``in_flight`` ``route(make())`` calls outstanding for ``seconds`` (none starts after the window);
    returns the wall-clock start and ``LoadTally.summary``."""
    tally = LoadTally()

    async def worker(deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                outcome = await route(make())
            except DomainError as exc:  # the load balancer refused the send
                tally.record(False, 0.0, f"refused_{exc.kind.value}")
                await asyncio.sleep(0.001)  # a refusal returns at once: do not spin the event loop
                continue
            tally.record(outcome.ok, outcome.latency_ms, outcome.error_code or outcome.error)
            if not outcome.ok:
                await asyncio.sleep(0.001)

    started_at = time.time()
    started = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for _ in range(in_flight):
            group.create_task(worker(started + seconds))
    return started_at, tally.summary(time.monotonic() - started)
