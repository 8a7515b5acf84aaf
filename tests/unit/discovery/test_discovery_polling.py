"""poll_watch semantics (the parsing modules' purity rule is in tests/unit/test_sans_io_guard.py)."""

from rustyray.discovery import BackendUnavailableError, Candidate, DiscoveryEventKind, DiscoveryResult
from rustyray.discovery.polling import poll_watch


def result(*nodes: str) -> DiscoveryResult:
    return DiscoveryResult("test", tuple(Candidate(n, "127.0.0.1", 7000) for n in nodes), {})


async def test_poll_watch_diffs_rounds_and_rides_out_outages():
    rounds = [result("a"), BackendUnavailableError("down"), result("a", "b"), result("b")]
    slept: list[float] = []

    async def discover():
        item = rounds.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    async def sleep(seconds):
        slept.append(seconds)

    events = []
    async for event in poll_watch(discover, 15.0, sleep=sleep):
        events.append((event.kind, event.candidate.node_id))
        if len(events) == 3:
            break
    assert events == [
        (DiscoveryEventKind.JOIN, "a"),
        (DiscoveryEventKind.JOIN, "b"),
        (DiscoveryEventKind.LEAVE, "a"),
    ]
    assert slept == [15.0, 15.0, 15.0]
