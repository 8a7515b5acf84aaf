"""The subscription fan-out hub over a fake gateway: one poller, per-subscriber queues, no leaks."""

from __future__ import annotations

import asyncio
import contextlib

import serve_apps.graphql_hub as hub_mod
from serve_apps.graphql_hub import Feed, GraphQLHub, Subscription


class FakeGateway:
    """membership.events with a per-node sequence; the test pushes events and switches the fronted node."""

    def __init__(self) -> None:
        self.front = "node1"
        self.events: dict[str, list[dict]] = {"node1": [], "node2": []}
        self.signal = asyncio.Event()
        self.event_calls = 0

    def push(self, node: str, event_type: str, node_id: str) -> None:
        log = self.events[node]
        log.append({"seq": len(log) + 1, "eventType": event_type, "nodeId": node_id, "timestamp": "t"})
        self.signal.set()
        self.signal = asyncio.Event()

    async def fronted(self, requested=None):
        return self.front

    async def call(self, node, service, method, /, **kw):
        assert (service, method) == ("membership", "events")
        self.event_calls += 1
        log = self.events[node]
        if kw["cursor"] >= len(log) and kw["timeout_s"] > 0:
            signal = self.signal
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), 0.2)
        return {"events": [e for e in log if e["seq"] > kw["cursor"]], "cursor": len(log)}


async def next_item(queue: asyncio.Queue, timeout: float = 2.0):
    return await asyncio.wait_for(queue.get(), timeout)


async def test_many_subscribers_one_poller_then_nothing_left():
    gw = FakeGateway()
    gw.push("node1", "NodeJoined", "old")  # before anyone subscribed: not replayed
    hub = GraphQLHub(gw)
    feed = hub.peer_events
    async with feed.subscribe() as q1, feed.subscribe() as q2, feed.subscribe() as q3:
        assert feed.subscriber_count == 3 and feed.running
        task = feed.task
        await asyncio.wait_for(feed.primed.wait(), 2)
        gw.push("node1", "NodeJoined", "node4")
        for q in (q1, q2, q3):
            assert (await next_item(q))["nodeId"] == "node4"
        assert feed.task is task  # still the one poller
    assert feed.subscriber_count == 0 and feed.task is None
    await asyncio.wait([task], timeout=2)
    assert task.cancelled()  # the poller went away with the last subscriber


async def test_a_new_fronted_node_reprimes_the_cursor():
    gw = FakeGateway()
    hub = GraphQLHub(gw)
    async with hub.peer_events.subscribe() as q:
        await asyncio.wait_for(hub.peer_events.primed.wait(), 2)
        gw.push("node2", "NodeJoined", "stale")  # node2's history, from before it fronts
        gw.front = "node2"
        gw.push("node1", "NodeLeft", "node1")  # node1 still reports until the poller notices the switch
        first = await next_item(q)
        assert first["nodeId"] == "node1"
        for _ in range(50):  # the poller re-primes on node2 at its current cursor
            if gw.event_calls > 3:
                break
            await asyncio.sleep(0.05)
        gw.push("node2", "NodeFailed", "node3")
        assert (await next_item(q))["nodeId"] == "node3"  # "stale" was never streamed


async def test_a_slow_subscriber_loses_its_oldest_items_only(monkeypatch):
    monkeypatch.setattr(hub_mod, "QUEUE_SIZE", 3)

    async def idle(feed: Feed) -> None:
        await asyncio.Event().wait()

    feed = Feed("test", idle)
    async with feed.subscribe() as slow, feed.subscribe() as fast:
        for i in range(5):
            feed.publish(i)
            if i < 3:
                assert fast.get_nowait() == i
        assert [slow.get_nowait() for _ in range(3)] == [2, 3, 4]
        assert [fast.get_nowait() for _ in range(2)] == [3, 4]
        assert sum(s.dropped for s in feed.subscribers) == 2


def test_a_subscriber_gets_samples_at_its_own_interval():
    sub = Subscription(asyncio.Queue(), interval_s=5.0)
    assert sub.due(100.0)
    sub.last_sent = 100.0
    assert not sub.due(101.0) and not sub.due(104.0)
    assert sub.due(104.6)  # 10 % slack for poller jitter
    assert Subscription(asyncio.Queue()).due(0.0)


async def test_stats_poller_follows_the_fastest_subscriber():
    async def idle(feed: Feed) -> None:
        await asyncio.Event().wait()

    feed = Feed("stats", idle)
    assert feed.min_interval(5.0) == 5.0
    async with feed.subscribe(10.0), feed.subscribe(2.0):
        assert feed.min_interval(5.0) == 2.0
    assert feed.min_interval(5.0) == 5.0
