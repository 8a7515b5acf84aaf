"""The multi-host bed fixture: three network-namespace hosts with one Ray node each (``netns_bed``).

Needs root and ``ip`` (iproute2) and ``unshare`` (util-linux), which CI has; elsewhere the tests are
skipped with the reason. A session-start sweep removes what a crashed earlier run left (``rrbed*``).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import netns_bed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "multihost: needs root: a 3-host bed on network namespaces")


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "the multi-host bed needs root (ip netns, veth, bridge, mount namespaces)"
    for tool in ("ip", "unshare", "mount", "nft"):
        if shutil.which(tool) is None:
            return f"the multi-host bed needs {tool!r} (install_test_servers.sh: iproute2 nftables util-linux)"
    return None


@pytest.fixture(scope="session")
def bed() -> Iterator[netns_bed.Bed]:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    t0 = time.monotonic()
    b = netns_bed.Bed()
    try:
        b.up()
        yield b
    finally:
        b.down()
        netns_bed._say(f"bed lived {time.monotonic() - t0:.0f}s")


@pytest.fixture(scope="session")
def launched(bed: netns_bed.Bed) -> dict:
    """``launch --nodes 6 --host auto`` on h1; its cluster.json."""
    return bed.launch(nodes=6)
