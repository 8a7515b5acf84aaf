"""memberlist cluster labels between two of our own members on 127.0.0.1 (real sockets, no Ray).

serf 0.8.2 (the agent installed here) predates memberlist's labels (0.3+, Serf 0.10), so labels are
checked against ourselves: same label joins and stays alive; another label, or none, is refused on the
stream and dropped on UDP, as memberlist's ``ingestPacket`` / ``handleConn`` do.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from rustyray.autodiscovery.memberlist_adapter import MemberlistAgent
from rustyray.autodiscovery.memberlist_core import MemberlistConfig
from rustyray.autodiscovery.memberlist_framing import add_label
from rustyray.autodiscovery.memberlist_wire import Keyring, MessageType, WireError, encode_message

KEY = bytes(range(32))


def _cfg(label: str) -> MemberlistConfig:
    return MemberlistConfig(probe_interval=0.3, probe_timeout=0.15, suspicion_timeout=2.0, label=label)


@contextlib.asynccontextmanager
async def _member(name: str, label: str, keyring: Keyring | None = None) -> AsyncIterator[MemberlistAgent]:
    agent = MemberlistAgent(name, "127.0.0.1", 0, {"role": "rustyray"}, config=_cfg(label), keyring=keyring)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop(leave=False)


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.05)


def _status(agent: MemberlistAgent, name: str) -> str | None:
    return next((m["status"] for m in agent.members() if m["name"] == name), None)


@pytest.mark.parametrize("sealed", [False, True])
async def test_members_with_the_same_label_join_and_stay_alive(sealed: bool) -> None:
    ring = (lambda: Keyring([KEY])) if sealed else (lambda: None)
    async with _member("a", "blue", ring()) as a, _member("b", "blue", ring()) as b:
        assert await b.join("127.0.0.1", a.port) == 1
        await _until(lambda: _status(a, "b") == "alive", 5, "a learns b")
        probes = 4 * a.core.config.probe_interval
        await asyncio.sleep(probes)  # probes both ways, all labelled
        assert _status(a, "b") == _status(b, "a") == "alive"
        assert a.dropped == b.dropped == 0


@pytest.mark.parametrize("other", ["green", ""])
async def test_another_label_or_none_is_refused(other: str) -> None:
    async with _member("a", "blue") as a, _member("c", other) as c:
        with pytest.raises((WireError, ConnectionError, asyncio.IncompleteReadError)):
            await c.join("127.0.0.1", a.port)  # a closes the stream: unacceptable label
        assert _status(a, "c") is None and a.dropped == 1
        ping = encode_message(MessageType.PING, {"SeqNo": 1, "Node": "a"})
        c._sendto([ping], ("127.0.0.1", a.port))  # framed with c's label (or none)
        await _until(lambda: a.dropped == 2, 5, "a drops c's packet")


async def test_a_label_is_authenticated_under_encryption() -> None:
    """Same key, different label: the ciphertext was bound to the sender's label, so a relabelled packet fails."""
    async with _member("a", "blue", Keyring([KEY])) as a:
        sealed = Keyring([KEY]).seal_packet(encode_message(MessageType.PING, {"SeqNo": 1}), b"green")
        a.on_datagram(add_label(sealed, "blue"), ("127.0.0.1", 9))
        assert a.dropped == 1


async def test_the_toml_label_reaches_a_nodes_memberlist_member(tmp_path) -> None:
    """``[autodiscovery.serf] label`` and ``compression`` in the node's config: a member with the same label
    joins the node over the API; an unlabelled one is refused."""
    from tests.harness import local_cluster

    sections = {"autodiscovery": {"serf": {"wire": "serf", "label": "blue", "compression": False}}}
    async with local_cluster(1, tmp_path / "state", sections=sections) as c, _member("a", "blue") as a, \
            _member("b", "") as b:
        r = await c.client.post("/autodiscovery/serf/join", json={"address": f"127.0.0.1:{a.port}"})
        assert r.status_code == 200, r.text
        assert r.json()["members_learned"] >= 1
        await _until(lambda: _status(a, "node1") == "alive", 5, "a learns node1")
        member = c.nodes["node1"].services["autodiscovery"].memberlist
        assert (member.core.config.label, member.core.config.compression) == ("blue", False)
        own = next(m for m in a.members() if m["name"] == "node1")
        port = int(str(own["address"]).rsplit(":", 1)[1])
        with pytest.raises((OSError, WireError, asyncio.TimeoutError)):
            await b.join("127.0.0.1", port)
        assert _status(b, "node1") is None
