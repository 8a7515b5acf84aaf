"""Fan-out of the two live feeds behind GraphQL subscriptions (one upstream poller each per replica).

Why a hub: every subscriber opening its own long-poll against the node actors would
multiply the load on the nodes by the number of browser tabs. Instead each feed runs
ONE poller task while it has at least one subscriber; the poller publishes into a
bounded queue per subscriber and stops when the last subscriber leaves, so a
disconnected client leaves nothing behind (no queue, no task).

- ``peer_events``: long-polls ``membership.events`` of the fronted node with a cursor.
  When the fronted node changes (it died, or left) the cursor belongs to another
  node's sequence, so the poller re-primes at that node's current cursor.
- ``network_stats``: polls ``manager.stats`` of the fronted node at the smallest
  interval any subscriber asked for (and at once when one arrives); each subscriber
  keeps only the samples that respect its own interval (see ``Subscription.due``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("rustyray.api.graphql")

QUEUE_SIZE = 1000  # items buffered per subscriber; a slower client loses the oldest ones
RETRY_S = 1.0  # pause after an upstream failure (node restarting, no node reachable)
EVENTS_LONG_POLL_S = 5.0  # how long one membership.events call waits for news


@dataclass(eq=False)
class Subscription:
    """One subscriber's queue; ``interval_s`` is its requested period (0 = every item)."""

    queue: asyncio.Queue[Any]
    interval_s: float = 0.0
    last_sent: float | None = None
    dropped: int = 0

    def due(self, stamp: float) -> bool:
        """Whether a sample taken at ``stamp`` (loop time) is due for this subscriber (10 % jitter slack)."""
        return self.last_sent is None or stamp - self.last_sent >= self.interval_s * 0.9


@dataclass(eq=False)
class Feed:
    """A shared upstream poller with any number of subscribers."""

    name: str
    poll: Callable[[Feed], Awaitable[None]]  # runs until cancelled, calls publish()
    subscribers: set[Subscription] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    primed: asyncio.Event = field(default_factory=asyncio.Event)  # the poller knows where "now" is
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a subscriber arrived: poll now
    polls: int = 0  # upstream calls made (tests check the sharing)

    @property
    def subscriber_count(self) -> int:
        return len(self.subscribers)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def min_interval(self, default: float) -> float:
        intervals = [s.interval_s for s in self.subscribers if s.interval_s > 0]
        return min(intervals) if intervals else default

    def publish(self, item: Any) -> None:
        stamp = asyncio.get_running_loop().time()
        for sub in list(self.subscribers):
            if not sub.due(stamp):
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
            sub.queue.put_nowait(item)
            sub.last_sent = stamp

    @contextlib.asynccontextmanager
    async def subscribe(self, interval_s: float = 0.0) -> AsyncIterator[asyncio.Queue[Any]]:
        sub = Subscription(asyncio.Queue(QUEUE_SIZE), interval_s)
        self.subscribers.add(sub)
        self.wake.set()
        if not self.running:
            self.primed.clear()
            self.task = asyncio.get_running_loop().create_task(self._run(), name=f"graphql-feed-{self.name}")
        try:
            yield sub.queue
        finally:
            self.subscribers.discard(sub)
            if not self.subscribers and self.task is not None:
                self.task.cancel()
                self.task = None

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` or until a subscriber arrived since the last ``wake.clear()``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)

    async def _run(self) -> None:
        try:
            await self.poll(self)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in a poller: subscribers stay connected but get nothing more
            log.exception("feed %s stopped", self.name)


class GraphQLHub:
    """The replica's feeds over one gateway (``app.state.graphql_hub``)."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.peer_events = Feed("peer-events", self._poll_events)
        self.network_stats = Feed("network-stats", self._poll_stats)

    @property
    def subscriber_count(self) -> int:
        return self.peer_events.subscriber_count + self.network_stats.subscriber_count

    async def _poll_events(self, feed: Feed) -> None:
        gw = self.gateway
        front: str | None = None
        cursor = 0
        while True:
            try:
                current = await gw.fronted(None)
                if current != front:  # (re)prime: only events after this moment are streamed
                    res = await gw.call(current, "membership", "events", cursor=1 << 62, timeout_s=0)
                    front, cursor = current, int(res["cursor"])
                    feed.primed.set()
                    continue
                feed.polls += 1
                res = await gw.call(front, "membership", "events", cursor=cursor,
                                    timeout_s=EVENTS_LONG_POLL_S)
                if int(res["cursor"]) < cursor:  # the node restarted: its sequence began again
                    front = None
                    continue
                for event in res["events"]:
                    if int(event["seq"]) > cursor:
                        feed.publish(event)
                cursor = int(res["cursor"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("peer events poller: %s", exc)
                front = None
                await asyncio.sleep(RETRY_S)

    async def _poll_stats(self, feed: Feed) -> None:
        gw = self.gateway
        while True:
            interval = feed.min_interval(5.0)
            feed.wake.clear()
            try:
                front = await gw.fronted(None)
                feed.polls += 1
                feed.publish(await gw.call(front, "manager", "stats"))
                feed.primed.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("network stats poller: %s", exc)
                interval = min(interval, RETRY_S)
            await feed.sleep(interval)
