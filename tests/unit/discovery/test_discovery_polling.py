"""poll_watch semantics, and the purity rule for the parsing modules."""

import ast
from pathlib import Path

import pytest

import rustyray.discovery as discovery_pkg
from rustyray.discovery import BackendUnavailableError, Candidate, DiscoveryEventKind, DiscoveryResult
from rustyray.discovery.polling import poll_watch

PURE_MODULES = [
    "model.py",
    "dns_records.py",
    "etcd_records.py",
    "consul_records.py",
    "k8s_records.py",
    "cloud/records.py",
]
FORBIDDEN = {"asyncio", "socket", "time", "ray", "httpx", "boto3", "dns.asyncresolver", "subprocess"}


@pytest.mark.parametrize("module", PURE_MODULES)
def test_parsing_modules_do_no_io(module):
    tree = ast.parse((Path(discovery_pkg.__file__).parent / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert not {m for m in imported if m in FORBIDDEN or m.split(".")[0] in FORBIDDEN}


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
