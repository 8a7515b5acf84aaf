"""Futures of callers queued in a sans-I/O core: the asyncio half of a FIFO waiter queue.

A core (``NodePool`` for leases, ``ExchangeSlots`` for exchange streams) queues a waiter id and
later grants that waiter a value (a conn id, a stream id). This holds one future per waiting
caller, keyed by whatever names the waiter, so the grant can wake it. Why a shielded wait: a
grant can land in the same loop turn as the caller's timeout; the caller's ``abandon`` callback
then receives it (or None) and gives it back to the core, so nothing granted is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Waiters(Generic[K, V]):
    """One future per waiting caller."""

    def __init__(self) -> None:
        self._futures: dict[K, asyncio.Future[V]] = {}

    async def wait(self, key: K, timeout: float, abandon: Callable[[V | None], None]) -> V:
        """Wait up to ``timeout`` seconds for ``resolve(key, ...)``; on any failure call ``abandon`` and re-raise."""
        fut: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._futures[key] = fut
        try:
            return await asyncio.wait_for(asyncio.shield(fut), max(0.0, timeout))
        except BaseException:
            self._futures.pop(key, None)
            abandon(fut.result() if fut.done() and not fut.exception() else None)
            raise

    def resolve(self, key: K, value: V) -> bool:
        """Wake the waiter ``key`` with ``value``; False when it is no longer waiting (give the value back)."""
        fut = self._futures.pop(key, None)
        if fut is None or fut.done():
            return False
        fut.set_result(value)
        return True

    def fail_all(self, exc: BaseException) -> None:
        """Fail every waiting caller (node stopping)."""
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(exc)
