"""Turn a one-shot ``discover()`` into a watch by polling (for backends without a change feed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from rustyray.discovery.errors import BackendUnavailableError
from rustyray.discovery.model import Candidate, DiscoveryEvent, DiscoveryResult, diff_candidates


async def poll_watch(
    discover: Callable[[], Awaitable[DiscoveryResult]],
    interval_s: float,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncIterator[DiscoveryEvent]:
    """Call ``discover`` every ``interval_s`` seconds and yield JOIN/LEAVE for what changed.

    An unreachable backend keeps the last known set (no spurious LEAVEs) and is retried next round.
    """
    assert interval_s > 0
    known: tuple[Candidate, ...] = ()
    while True:
        try:
            result = await discover()
        except BackendUnavailableError:
            result = None
        if result is not None:
            for event in diff_candidates(known, result.candidates):
                yield event
            known = result.candidates
        await sleep(interval_s)
