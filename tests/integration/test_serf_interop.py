"""RustyRay's memberlist member against the real ``serf`` agent (Debian's serf 0.8.2), on 127.0.0.1.

The agents are started here on free ports and killed at the end; ``scripts/install_test_servers.sh``
installs the binary. Each check polls ``serf members`` (the agent's own view, over its RPC port) or our
member table until it holds or a deadline passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from harness import local_cluster

from rustyray.autodiscovery.memberlist_adapter import MemberlistAgent
from rustyray.autodiscovery.memberlist_core import MemberlistConfig

SERF = shutil.which("serf") or "/usr/bin/serf"
FAST = MemberlistConfig(probe_interval=0.5, probe_timeout=0.25, suspicion_timeout=3.0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:  # memberlist needs UDP on the same port
        u.bind(("127.0.0.1", port))
    return port


class SerfAgent:
    def __init__(self, name: str, log_dir: Path, tags: dict[str, str], extra: tuple[str, ...] = (),
                 host: str = "127.0.0.1") -> None:
        self.name, self.port, self.rpc = name, _free_port(), _free_port()
        bind = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        args = [SERF, "agent", "-node", name, "-bind", bind, "-rpc-addr",
                f"127.0.0.1:{self.rpc}", "-log-level", "debug", *extra]
        for k, v in tags.items():
            args += ["-tag", f"{k}={v}"]
        self.log = log_dir / f"{name}.log"
        self.proc = subprocess.Popen(args, stdout=self.log.open("w"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def members(self) -> dict[str, tuple[str, str]]:
        """``serf members``: name -> (status, tags text)."""
        out = subprocess.run([SERF, "members", "-rpc-addr", f"127.0.0.1:{self.rpc}"], capture_output=True,
                             text=True, timeout=10)
        rows = {}
        for line in out.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3:
                rows[parts[0]] = (parts[2], parts[3] if len(parts) > 3 else "")
        return rows

    def cli(self, command: str, *args: str) -> subprocess.CompletedProcess[str]:
        """``serf <command> -rpc-addr ... <args>`` (flags before positional arguments, as Go's flag wants)."""
        return subprocess.run([SERF, command, "-rpc-addr", f"127.0.0.1:{self.rpc}", *args], capture_output=True,
                              text=True, timeout=10)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def serf_agents(tmp_path: Path) -> Iterator[Callable[..., SerfAgent]]:
    assert Path(SERF).exists(), "the serf binary is missing: run scripts/install_test_servers.sh"
    started: list[SerfAgent] = []

    def start(name: str, *extra: str, bind_host: str = "127.0.0.1", **tags: str) -> SerfAgent:
        agent = SerfAgent(name, tmp_path, tags, extra, host=bind_host)
        started.append(agent)
        deadline = time.monotonic() + 15
        while agent.cli("members").returncode != 0:
            assert agent.proc.poll() is None, agent.log.read_text()
            assert time.monotonic() < deadline, "serf agent did not come up"
            time.sleep(0.1)
        return agent

    yield start
    for agent in started:
        agent.kill()


@contextlib.asynccontextmanager
async def rustyray_member(name: str, **tags: str) -> AsyncIterator[MemberlistAgent]:
    agent = MemberlistAgent(name, "127.0.0.1", 0, tags, config=FAST)
    await agent.start()
    try:
        yield agent
    finally:
        await agent.stop(leave=False)


async def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` in a thread: ``serf`` CLI calls block, and our member must keep answering meanwhile."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        await asyncio.sleep(0.1)


def _ours(agent: MemberlistAgent) -> dict[str, dict]:
    return {m["name"]: m for m in agent.members()}


async def test_a_rustyray_member_joins_serf_and_each_lists_the_other(serf_agents) -> None:
    serf1 = serf_agents("serf1", role="db", dc="lab")
    async with rustyray_member("rr-node1", role="rustyray", node="node1") as ours:
        assert await ours.join("127.0.0.1", serf1.port) >= 1
        await _until(lambda: serf1.members().get("rr-node1", ("",))[0] == "alive", 10, "serf lists rr-node1 alive")
        tags = (await asyncio.to_thread(serf1.members))["rr-node1"][1]
        assert "role=rustyray" in tags and "node=node1" in tags
        seen = _ours(ours)["serf1"]
        assert (seen["status"], seen["tags"]) == ("alive", {"role": "db", "dc": "lab"})
        # stays alive: our member answers the agent's probes (over several probe intervals)
        await asyncio.sleep(3)
        assert (await asyncio.to_thread(serf1.members))["rr-node1"][0] == "alive"
        assert ours.dropped == 0
        # everything we sent (push-pull, join intent, gossip relays) decoded on the agent's side
        assert "[ERR]" not in serf1.log.read_text(), serf1.log.read_text()[-2000:]


async def test_serf_joins_a_rustyray_member_and_learns_the_whole_cluster(serf_agents) -> None:
    serf1, serf2 = serf_agents("serf1"), serf_agents("serf2", role="web")
    async with rustyray_member("rr-node1", role="rustyray") as ours:
        assert (await asyncio.to_thread(serf1.cli, "join", f"127.0.0.1:{ours.port}")).returncode == 0
        await _until(lambda: "serf1" in _ours(ours), 10, "we learn serf1 from its push-pull")
        assert (await asyncio.to_thread(serf2.cli, "join", f"127.0.0.1:{ours.port}")).returncode == 0
        # serf2 learned serf1 through our push-pull answer, and gossip makes it mutual
        await _until(lambda: set(serf2.members()) >= {"serf1", "serf2", "rr-node1"}, 15, "serf2 sees everyone")
        await _until(lambda: all(s == "alive" for s, _ in serf1.members().values()), 15, "all alive on serf1")


async def test_a_killed_agent_is_failed_and_a_graceful_leave_is_left(serf_agents) -> None:
    serf1, serf2 = serf_agents("serf1"), serf_agents("serf2")
    async with rustyray_member("rr-node1") as ours:
        await ours.join("127.0.0.1", serf1.port)
        assert (await asyncio.to_thread(serf2.cli, "join", f"127.0.0.1:{serf1.port}")).returncode == 0
        await _until(lambda: _ours(ours).get("serf2", {}).get("status") == "alive", 10, "we see serf2")
        killed_at = time.monotonic()
        serf2.kill()
        await _until(lambda: _ours(ours)["serf2"]["status"] == "failed", 20, "we mark the killed agent failed")
        detected_s = time.monotonic() - killed_at
        assert detected_s >= FAST.suspicion_timeout  # suspected first, failed only after the suspicion timeout
        await _until(lambda: serf1.members().get("serf2", ("",))[0] == "failed", 30, "serf1 agrees")

        ours_left = MemberlistAgent("rr-leaver", "127.0.0.1", 0, {}, config=FAST)
        await ours_left.start()
        await ours_left.join("127.0.0.1", serf1.port)
        await _until(lambda: serf1.members().get("rr-leaver", ("",))[0] == "alive", 10, "serf1 sees rr-leaver")
        await ours_left.stop(leave=True)
        await _until(lambda: serf1.members().get("rr-leaver", ("",))[0] == "left", 10, "a leave is left, not failed")


async def test_a_rustyray_member_that_stops_answering_is_failed_by_serf(serf_agents) -> None:
    serf1 = serf_agents("serf1")
    agent = MemberlistAgent("rr-crash", "127.0.0.1", 0, {}, config=FAST)
    await agent.start()
    await agent.join("127.0.0.1", serf1.port)
    await _until(lambda: serf1.members().get("rr-crash", ("",))[0] == "alive", 10, "serf1 sees rr-crash")
    await agent.stop(leave=False)  # sockets closed, no goodbye: a crash as the agent sees it
    await _until(lambda: serf1.members().get("rr-crash", ("",))[0] == "failed", 30, "serf marks it failed")


async def test_a_node_with_wire_serf_is_a_serf_member_through_the_api(serf_agents, tmp_path) -> None:
    """``[autodiscovery.serf] wire = "serf"`` on a real node: join over the API, each side lists the other."""
    serf1 = serf_agents("serf1", role="db")
    sections = {"autodiscovery": {"serf": {"wire": "serf", "tags": {"role": "rustyray"}}}}
    async with local_cluster(2, tmp_path / "state", sections=sections) as c:
        r = await c.client.post("/autodiscovery/serf/join", json={"address": f"127.0.0.1:{serf1.port}"})
        assert r.status_code == 200, r.text
        assert r.json()["members_learned"] >= 1
        await _until(lambda: serf1.members().get("node1", ("",))[0] == "alive", 10, "serf lists node1")
        members = {m["name"]: m for m in (await c.client.get("/autodiscovery/serf/members")).json()["members"]}
        assert members["serf1"]["wire"] == "memberlist" and members["serf1"]["tags"] == {"role": "db"}
        assert members["serf1"]["status"] == "alive" and members["node2"]["status"] == "alive"
        # bad input: not host:port, an address the dial policy refuses
        r = await c.client.post("/autodiscovery/serf/join", json={"address": "nonsense"})
        assert r.status_code == 422 and r.json()["field"] == "address"
        r = await c.client.post("/autodiscovery/serf/join", json={"address": "192.0.2.1:7946"})
        assert r.status_code == 403 and r.json()["field"] == "address"
        serf1.kill()
        await _until_async(c, "serf1", "failed", 20)


async def _until_async(c, name: str, status: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = (await c.client.get("/autodiscovery/serf/members")).json()["members"]
        if any(m["name"] == name and m["status"] == status for m in rows):
            return
        assert time.monotonic() < deadline, f"{name} not {status} within {timeout} s: {rows}"
        await asyncio.sleep(0.2)


async def test_user_events_cross_both_ways(serf_agents, tmp_path) -> None:
    """``serf event`` reaches our nodes (both, through our own gossip); ours reaches an agent's event handler."""
    seen = tmp_path / "handled.txt"
    handler = tmp_path / "handler.sh"
    handler.write_text(f'#!/bin/sh\necho "$SERF_EVENT $SERF_USER_EVENT $(cat)" >> {seen}\n')
    handler.chmod(0o755)
    serf1 = serf_agents("serf1", "-event-handler", f"user={handler}")
    sections = {"autodiscovery": {"serf": {"wire": "serf", "coalesce_period_s": 0}}}
    async with local_cluster(2, tmp_path / "state", sections=sections) as c:
        r = await c.client.post("/autodiscovery/serf/join", json={"address": f"127.0.0.1:{serf1.port}"})
        assert r.status_code == 200, r.text
        await _until(lambda: serf1.members().get("node1", ("",))[0] == "alive", 10, "serf lists node1")

        out = await asyncio.to_thread(serf1.cli, "event", "-coalesce=false", "deploy", "v42")
        assert out.returncode == 0, out.stdout
        for node in ("node1", "node2"):
            await _until_event(c, node, "deploy", "v42", 15)

        r = await c.client.post("/autodiscovery/serf/event",
                                json={"name": "hello", "payload": "from-rustyray", "coalesce": False})
        assert r.status_code == 200 and r.json()["gossiped_to"] >= 2, r.text  # node2 and serf1
        await _until(lambda: seen.exists() and "user hello from-rustyray" in seen.read_text(), 15,
                     "serf1's event handler ran for our event")


async def _until_event(c, node: str, name: str, payload: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        body = (await c.client.get("/autodiscovery/serf/events", params={"node": node})).json()
        if any(e.get("name") == name and payload in str(e.get("payload")) for e in body["events"]):
            return
        assert time.monotonic() < deadline, f"{node} did not get {name}: {body['events']}"
        await asyncio.sleep(0.2)


async def test_queries_cross_both_ways(serf_agents, tmp_path) -> None:
    """``serf query`` is answered by every node; our query is answered by the agent (its query handler)."""
    handler = tmp_path / "answer.sh"
    handler.write_text("#!/bin/sh\necho \"pong from serf1: $(cat)\"\n")
    handler.chmod(0o755)
    serf1 = serf_agents("serf1", "-event-handler", f"query:ping={handler}")
    sections = {"autodiscovery": {"serf": {"wire": "serf"}}}
    async with local_cluster(2, tmp_path / "state", sections=sections) as c:
        for node in ("node1", "node2"):
            r = await c.client.post("/autodiscovery/serf/join", params={"node": node},
                                    json={"address": f"127.0.0.1:{serf1.port}"})
            assert r.status_code == 200, r.text
        await _until(lambda: {"node1", "node2"} <= set(serf1.members()), 10, "serf lists both nodes")

        out = await asyncio.to_thread(serf1.cli, "query", "-timeout=3s", "who", "anyone")
        assert out.returncode == 0, out.stdout
        assert "Response from 'node1'" in out.stdout and "Response from 'node2'" in out.stdout, out.stdout
        assert '"node_id": "node1"' in out.stdout  # what our Serf layer answers: identity and uptime
        assert "Ack from 'node1'" in out.stdout and "Ack from 'node2'" in out.stdout  # acks are acks, not answers

        r = await c.client.post("/autodiscovery/serf/query", json={"name": "ping", "payload": "hi",
                                                                  "timeout_ms": 3000})
        assert r.status_code == 200, r.text
        answers = {a["node"]: a for a in r.json()["responses"]}
        assert "serf1" in answers and "node2" in answers, r.json()
        assert "pong from serf1: hi" in str(answers["serf1"]["payload"])


async def test_gossip_encryption_with_serf_keys(serf_agents) -> None:
    """``serf agent -encrypt KEY``: a member with the key joins and stays alive; without it, no join."""
    import base64

    from rustyray.autodiscovery.memberlist_wire import Keyring, WireError

    key = base64.b64encode(bytes(range(32))).decode()
    serf1 = serf_agents("serf1", "-encrypt", key)
    agent = MemberlistAgent("rr-secret", "127.0.0.1", 0, {"role": "rustyray"}, config=FAST,
                            keyring=Keyring.from_base64([key]))
    await agent.start()
    try:
        assert await agent.join("127.0.0.1", serf1.port) >= 1
        await _until(lambda: serf1.members().get("rr-secret", ("",))[0] == "alive", 10, "serf lists rr-secret")
        await asyncio.sleep(2)  # probes both ways, all sealed
        assert (await asyncio.to_thread(serf1.members))["rr-secret"][0] == "alive" and agent.dropped == 0
    finally:
        await agent.stop(leave=False)

    for keyring in (None, Keyring.from_base64([base64.b64encode(b"x" * 16).decode()])):
        outsider = MemberlistAgent("rr-outsider", "127.0.0.1", 0, {}, config=FAST, keyring=keyring)
        await outsider.start()
        try:
            with pytest.raises((WireError, OSError, TimeoutError, asyncio.IncompleteReadError)):
                await asyncio.wait_for(outsider.join("127.0.0.1", serf1.port), 5)
            assert "rr-outsider" not in await asyncio.to_thread(serf1.members)
        finally:
            await outsider.stop(leave=False)


async def test_serf_keys_rotates_our_keyring_too(serf_agents, tmp_path) -> None:
    """``serf keys -install / -use / -remove``: our member answers each key query, rotates with the agents
    and stays alive on the new key; its keyring file follows."""
    import base64
    import json

    from rustyray.autodiscovery.memberlist_wire import Keyring

    old, new = (base64.b64encode(bytes([i]) * 32).decode() for i in (1, 2))
    serf1 = serf_agents("serf1", "-encrypt", old)
    ring_file = tmp_path / "keyring.json"
    agent = MemberlistAgent("rr-rotor", "127.0.0.1", 0, {}, config=FAST, keyring=Keyring.from_base64([old]),
                            keyring_file=ring_file)
    await agent.start()
    try:
        await agent.join("127.0.0.1", serf1.port)
        await _until(lambda: serf1.members().get("rr-rotor", ("",))[0] == "alive", 10, "serf lists rr-rotor")
        for step in (("-install", new), ("-use", new), ("-remove", old)):
            out = await asyncio.to_thread(serf1.cli, "keys", *step)
            assert out.returncode == 0, f"serf keys {step[0]}: {out.stdout}"
        assert agent.keyring.to_base64() == [new]
        assert json.loads(ring_file.read_text()) == [new]
        listed = await asyncio.to_thread(serf1.cli, "keys", "-list")
        assert new in listed.stdout and old not in listed.stdout, listed.stdout
        await asyncio.sleep(2)
        assert (await asyncio.to_thread(serf1.members))["rr-rotor"][0] == "alive"  # probes on the new key
        bad = await asyncio.to_thread(serf1.cli, "keys", "-remove", new)  # the primary: refused by everyone
        assert bad.returncode != 0
    finally:
        await agent.stop(leave=False)


async def test_a_node_joins_an_encrypted_serf_cluster_with_its_keyring_file(serf_agents, tmp_path) -> None:
    import base64
    import json

    key = base64.b64encode(bytes([7]) * 32).decode()
    serf1 = serf_agents("serf1", "-encrypt", key)
    ring_file = tmp_path / "serf-keyring.json"
    ring_file.write_text(json.dumps([key]))
    sections = {"autodiscovery": {"serf": {"wire": "serf", "keyring_file": str(ring_file)}}}
    async with local_cluster(1, tmp_path / "state", sections=sections) as c:
        r = await c.client.post("/autodiscovery/serf/join", json={"address": f"127.0.0.1:{serf1.port}"})
        assert r.status_code == 200, r.text
        await _until(lambda: serf1.members().get("node1", ("",))[0] == "alive", 10, "serf lists node1")
        rows = {m["name"]: m for m in (await c.client.get("/autodiscovery/serf/members")).json()["members"]}
        assert rows["serf1"]["status"] == "alive"


async def test_three_nodes_and_three_agents_detection_both_ways_and_serf_leave(serf_agents, tmp_path) -> None:
    """A serf agent joins a 3-node RustyRay cluster; a 3-agent Serf cluster is joined by RustyRay; ``serf leave``
    reads as left here; a kill -9 on either side is failed on the other within the suspicion bounds."""
    agents = [serf_agents(f"serf{i}", role="db") for i in (1, 2, 3)]
    for a in agents[1:]:
        assert (await asyncio.to_thread(a.cli, "join", f"127.0.0.1:{agents[0].port}")).returncode == 0
    sections = {"autodiscovery": {"serf": {"wire": "serf", "tags": {"role": "rustyray"}}}}
    async with local_cluster(3, tmp_path / "state", sections=sections) as c:
        for node in ("node1", "node2", "node3"):
            r = await c.client.post("/autodiscovery/serf/join", params={"node": node},
                                    json={"address": f"127.0.0.1:{agents[0].port}"})
            assert r.status_code == 200, r.text
        names = {"serf1", "serf2", "serf3", "node1", "node2", "node3"}
        await _until(lambda: set(agents[2].members()) >= names, 15, "serf3 sees all six")
        await _until(lambda: all(s == "alive" for s, _ in agents[2].members().values()), 15, "all alive on serf3")

        out = await asyncio.to_thread(agents[1].cli, "leave")
        assert out.returncode == 0, out.stdout
        await _until_async(c, "serf2", "left", 15)

        killed = time.monotonic()
        agents[2].kill()
        await _until_async(c, "serf3", "failed", 30)
        ours_detect = time.monotonic() - killed

        node3 = c.node("node3")
        killed = time.monotonic()
        await node3.services["autodiscovery"].memberlist.stop(leave=False)  # its memberlist member goes silent
        await _until(lambda: agents[0].members().get("node3", ("",))[0] == "failed", 40, "serf1 fails node3")
        theirs_detect = time.monotonic() - killed
        print(f"\ndetection: RustyRay saw serf3 failed after {ours_detect:.1f} s; "
              f"serf1 saw node3 failed after {theirs_detect:.1f} s")
        assert ours_detect >= 5.0  # suspicion_timeout 5 s: suspected first, failed only after it


# ------------------------------------------------------------------ compression, filters, relays, IPv6
def _no_errors(agent: SerfAgent) -> None:
    text = agent.log.read_text()
    assert "[ERR]" not in text, text[-3000:]


async def test_serf_accepts_our_lzw_compressed_packets_and_push_pulls(serf_agents, tmp_path) -> None:
    """memberlist's EnableCompression (the agent's default): our push-pulls are always LZW-compressed and our
    packets whenever that is smaller; the agent decodes both (it lists us, runs its handler for a compressed
    user event, learns serf2 from our compressed push-pull answer) and logs no error."""
    seen = tmp_path / "handled.txt"
    handler = tmp_path / "handler.sh"
    handler.write_text(f'#!/bin/sh\necho "$SERF_EVENT $SERF_USER_EVENT $(cat)" >> {seen}\n')
    handler.chmod(0o755)
    serf1 = serf_agents("serf1", "-event-handler", f"user={handler}", role="db")
    serf2 = serf_agents("serf2")
    async with rustyray_member("rr-zip", role="rustyray") as ours:
        assert ours.core.config.compression
        assert await ours.join("127.0.0.1", serf1.port) >= 1  # a compressed push-pull
        await _until(lambda: serf1.members().get("rr-zip", ("",))[0] == "alive", 10, "serf1 lists rr-zip alive")
        payload = b"compressible " * 30
        assert ours.user_event(1, "zipped", payload, False) == 1
        await _until(lambda: seen.exists() and "user zipped compressible compressible" in seen.read_text(), 15,
                     "serf1's handler ran for our compressed event")
        assert ours.compressed_sent >= 1
        assert (await asyncio.to_thread(serf2.cli, "join", f"127.0.0.1:{ours.port}")).returncode == 0
        await _until(lambda: {"serf1", "rr-zip"} <= set(serf2.members()), 15, "serf2 learns serf1 through us")
        await asyncio.sleep(2)  # a few probe rounds with compound, compressed gossip
        assert serf1.members()["rr-zip"][0] == "alive" and ours.dropped == 0
        _no_errors(serf1)
        _no_errors(serf2)


def _acks(got: list, qid: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in got:
        if r.id == qid and r.ack:
            counts[r.node] = counts.get(r.node, 0) + 1
    return counts


async def test_our_query_filters_and_relay_factor_are_honoured_by_serf(serf_agents) -> None:
    """Node and tag filters reach the agents (only the matching one acks); with relay factor 2 each agent's ack
    also comes through the other agent and/or through us (we forward the agent's ``messageRelay`` to ourselves)."""
    serf1 = serf_agents("serf1", role="db")
    serf2 = serf_agents("serf2", role="web")
    got: list = []
    agent = MemberlistAgent("rr-q", "127.0.0.1", 0, {"role": "rustyray"}, config=FAST,
                            on_query_response=got.append)
    await agent.start()
    try:
        assert (await asyncio.to_thread(serf2.cli, "join", f"127.0.0.1:{serf1.port}")).returncode == 0
        await agent.join("127.0.0.1", serf1.port)
        await _until(lambda: agent.live_agents() == {"serf1", "serf2"}, 10, "we see both agents")
        await _until(lambda: serf2.members().get("rr-q", ("",))[0] == "alive", 10, "serf2 lists us")

        assert agent.query(1, 101, 3.0, "who", b"", filter_nodes=["serf1"], ack=True) == 2
        assert agent.query(2, 102, 3.0, "who", b"", filter_tags={"role": "^w.b$"}, ack=True) == 2
        await _until(lambda: _acks(got, 101) and _acks(got, 102), 10, "the filtered acks")
        await asyncio.sleep(1)  # anything else would have arrived by now
        assert set(_acks(got, 101)) == {"serf1"} and set(_acks(got, 102)) == {"serf2"}

        assert agent.query(3, 103, 3.0, "who", b"", relay_factor=2, ack=True) == 2
        # Serf picks the k relays by 3n random draws (kRandomMembers), so in a cluster of three an agent now and
        # then finds only one of the two others: each ack comes 2 or 3 times, and at least one relay came via us.
        await _until(lambda: set(_acks(got, 103).values()) <= {2, 3} and len(_acks(got, 103)) == 2, 10,
                     "each ack direct and through the relays")
        await asyncio.sleep(0.5)
        counts = _acks(got, 103)
        assert set(counts) == {"serf1", "serf2"} and set(counts.values()) <= {2, 3}, counts
        assert agent.core.relayed >= 1
        _no_errors(serf1)
        _no_errors(serf2)
    finally:
        await agent.stop(leave=False)


async def test_serf_query_filters_and_relay_factor_on_our_nodes(serf_agents, tmp_path) -> None:
    """``serf query -node/-tag`` is answered only by our nodes that match; with ``-relay-factor`` our answers
    also go through other members; the API's filters reach the agent and bad ones are 422 naming the field."""
    handler = tmp_path / "answer.sh"
    handler.write_text("#!/bin/sh\necho pong\n")
    handler.chmod(0o755)
    serf1 = serf_agents("serf1", "-event-handler", f"query:ping={handler}", role="db")
    sections = {"autodiscovery": {"serf": {"wire": "serf", "tags": {"role": "rustyray"}}}}
    async with local_cluster(2, tmp_path / "state", sections=sections) as c:
        for node in ("node1", "node2"):
            r = await c.client.post("/autodiscovery/serf/join", params={"node": node},
                                    json={"address": f"127.0.0.1:{serf1.port}"})
            assert r.status_code == 200, r.text
        await _until(lambda: {"node1", "node2"} <= set(serf1.members()), 10, "serf lists both nodes")
        print(f"\nserf members:\n{(await asyncio.to_thread(serf1.cli, 'members')).stdout}")

        out = await asyncio.to_thread(serf1.cli, "query", "-timeout=2s", "-node", "node1", "who", "x")
        assert "Response from 'node1'" in out.stdout and "'node2'" not in out.stdout, out.stdout
        out = await asyncio.to_thread(serf1.cli, "query", "-timeout=2s", "-tag", "role=^rusty", "who", "x")
        assert "Response from 'node1'" in out.stdout and "Response from 'node2'" in out.stdout, out.stdout
        assert "serf1" not in out.stdout  # its role is db
        out = await asyncio.to_thread(serf1.cli, "query", "-timeout=2s", "-tag", "role=nomatch", "who", "x")
        assert "Response from" not in out.stdout, out.stdout

        memberlists = [c.node(n).services["autodiscovery"].memberlist for n in ("node1", "node2")]
        before = sum(m.core.relays_sent for m in memberlists)
        out = await asyncio.to_thread(serf1.cli, "query", "-timeout=2s", "-relay-factor", "2", "who", "x")
        assert "Response from 'node1'" in out.stdout and "Response from 'node2'" in out.stdout, out.stdout
        assert out.stdout.count("Response from 'node1'") == 1  # the agent drops the relayed duplicates
        assert sum(m.core.relays_sent for m in memberlists) > before

        r = await c.client.post("/autodiscovery/serf/query", json={"name": "ping", "timeout_ms": 2000,
                                                                  "filter_nodes": ["serf1"], "relay_factor": 1})
        assert r.status_code == 200, r.text
        assert {a["node"] for a in r.json()["responses"]} == {"serf1"}, r.json()
        r = await c.client.post("/autodiscovery/serf/query", json={"name": "ping", "timeout_ms": 2000,
                                                                  "filter_tags": {"role": "^rusty"}})
        assert r.status_code == 200 and "serf1" not in {a["node"] for a in r.json()["responses"]}, r.json()
        for body, field in (({"filter_nodes": "node1"}, "filter_nodes"),
                            ({"filter_tags": {"role": "("}}, "filter_tags"), ({"filter_tags": ["role"]}, "filter_tags"),
                            ({"relay_factor": 9}, "relay_factor"), ({"relay_factor": "2"}, "relay_factor")):
            r = await c.client.post("/autodiscovery/serf/query", json={"name": "ping", **body})
            assert r.status_code == 422 and r.json()["field"] == field, (body, r.text)
        _no_errors(serf1)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_an_ipv6_member_joins_serf_on_ipv6_loopback(serf_agents) -> None:
    """``serf agent -bind [::1]:port``: memberlist's 16-byte addresses both ways; each side lists the other,
    the agent keeps us alive (probes over IPv6) and a killed agent is failed here."""
    serf6 = serf_agents("serf6", bind_host="::1", role="db")
    agent = MemberlistAgent("rr-v6", "::1", 0, {"role": "rustyray"}, config=FAST)
    await agent.start()
    try:
        assert await agent.join("::1", serf6.port) >= 1
        await _until(lambda: serf6.members().get("rr-v6", ("",))[0] == "alive", 10, "serf6 lists rr-v6 alive")
        out = await asyncio.to_thread(serf6.cli, "members")
        assert f"[::1]:{agent.port}" in out.stdout, out.stdout
        assert _ours(agent)["serf6"]["address"] == f"[::1]:{serf6.port}"
        await asyncio.sleep(2)  # probes both ways
        assert serf6.members()["rr-v6"][0] == "alive" and agent.dropped == 0
        _no_errors(serf6)
        serf6.kill()
        await _until(lambda: _ours(agent)["serf6"]["status"] == "failed", 20, "we fail the killed agent")
    finally:
        await agent.stop(leave=False)


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
async def test_a_node_with_an_ipv6_serf_bind_joins_an_ipv6_agent(serf_agents, tmp_path) -> None:
    """``[autodiscovery.serf] bind = "::1"`` on a real node, joined over the API with ``[::1]:port``."""
    serf6 = serf_agents("serf6", bind_host="::1", role="db")
    sections = {"autodiscovery": {"serf": {"wire": "serf", "bind": "::1", "tags": {"role": "rustyray"}}}}
    async with local_cluster(1, tmp_path / "state", sections=sections) as c:
        r = await c.client.post("/autodiscovery/serf/join", json={"address": f"[::1]:{serf6.port}"})
        assert r.status_code == 200, r.text
        await _until(lambda: serf6.members().get("node1", ("",))[0] == "alive", 10, "serf6 lists node1")
        await _until_async(c, "serf6", "alive", 10)
        out = await asyncio.to_thread(serf6.cli, "members")
        print(f"\nserf members (IPv6):\n{out.stdout}")
        _no_errors(serf6)
