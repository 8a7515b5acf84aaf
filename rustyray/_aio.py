"""Small asyncio helpers shared by the adapters (never used by the sans-I/O cores)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)


async def cancel_and_wait(tasks: Iterable[asyncio.Future[object]], timeout: float | None = None,
                          *, owner: str = "") -> set[asyncio.Future[object]]:
    """Cancel ``tasks`` and wait until they end; return those still running after ``timeout``.

    Why not ``with suppress(CancelledError): await task``: that also swallows a cancellation aimed at
    the *caller*, which then carries on as if nothing happened (and a bounded stop stops being
    bounded). ``asyncio.wait`` never raises the tasks' own cancellations and lets the caller's
    through. A task that ignores its cancellation is logged with where it is stuck, not awaited
    forever.
    """
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if not pending:
        return set()
    done, still = await asyncio.wait(pending, timeout=timeout)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: a failure was already logged by whoever owned the task
    for task in still:
        log.warning("%s: task %r did not stop within %.1fs", owner or "stop", task, timeout or 0.0)
    return still
