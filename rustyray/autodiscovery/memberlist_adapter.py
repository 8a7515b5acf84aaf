"""The sockets of a memberlist (Serf) member: one UDP endpoint and one TCP listener on the same port.

An adapter: it decodes what arrives (``memberlist_wire``), hands it with the time to
``MemberlistCore`` (the SWIM core behind a memberlist translation), and sends what the core returns; a
tick task drives the core's timers, waking at the core's next deadline. A packet
that does not decode is dropped and counted; a stream that does not decode is closed. Nothing here
decides membership.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rustyray.autodiscovery.memberlist_core import (
    Deliver,
    MemberlistConfig,
    MemberlistCore,
    PushPullWith,
    QueryIn,
    QueryResponseIn,
    Reply,
    Send,
)
from rustyray.autodiscovery.memberlist_framing import (
    frame_packet,
    frame_stream,
    group_messages,
    open_packet,
    strip_label,
    strip_stream_label,
)
from rustyray.autodiscovery.memberlist_wire import (
    KEY_QUERIES,
    Keyring,
    MessageType,
    WireError,
    answer_key_query,
    decode_push_pull,
    encode_message,
    encode_push_pull,
    encode_user,
)

log = logging.getLogger(__name__)

__all__ = ["MemberlistAgent"]

STREAM_TIMEOUT_S = 10.0  # memberlist's TCPTimeout
TICK_S = 0.1  # the longest the tick task sleeps
MAX_STREAM_BYTES = 20 * 1024 * 1024


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, agent: MemberlistAgent) -> None:
        self.agent = agent

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.agent.on_datagram(data, addr)


class MemberlistAgent:
    """A member of a memberlist cluster on ``host:port`` (UDP and TCP), named ``name``, with Serf ``tags``."""

    def __init__(self, name: str, host: str, port: int, tags: dict[str, str], *,
                 config: MemberlistConfig | None = None,
                 on_event: Callable[[Deliver], None] | None = None,
                 on_query: Callable[[QueryIn], None] | None = None,
                 on_query_response: Callable[[QueryResponseIn], None] | None = None,
                 keyring: Keyring | None = None, keyring_file: Path | None = None) -> None:
        self.host, self.port = host, port
        addr = ipaddress.ip_address(host).packed
        self.core = MemberlistCore(name, addr, port, dict(tags), config or MemberlistConfig(), now=time.monotonic())
        self.dropped = 0
        self.compressed_sent = 0  # packets that went out LZW-compressed (memberlist's EnableCompression)
        self.keyring = keyring  # gossip encryption (serf agent -encrypt): every packet and stream sealed
        self.keyring_file = keyring_file  # where a key change (serf keys ...) is saved, as Serf saves it
        self.on_event = on_event  # Serf user events from the agents (the node's Serf layer takes them)
        self.on_query = on_query  # Serf queries from the agents
        self.on_query_response = on_query_response  # the agents' answers to our queries
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._syncs: set[asyncio.Task[None]] = set()  # periodic push-pulls under way

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(self._on_stream, self.host, self.port)
        if self.port == 0:
            self.port = self._tcp.sockets[0].getsockname()[1]
            self.core.port = self.port
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(self.host, self.port))
        self._ticker = asyncio.ensure_future(self._tick_loop())

    async def stop(self, *, leave: bool = True) -> None:
        if leave and self._udp is not None:
            self._send(self.core.leave())
            await asyncio.sleep(0.05)  # let the leave packets go out before the socket closes
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for task in list(self._syncs):
            task.cancel()
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()

    def members(self) -> list[dict[str, Any]]:
        return self.core.view()

    def query(self, ltime: int, qid: int, timeout_s: float, name: str, payload: bytes, *,
              filter_nodes: list[str] | None = None, filter_tags: dict[str, str] | None = None,
              relay_factor: int = 0, ack: bool = False) -> int:
        """Send our Serf query to every live agent; the number of agents it went to."""
        sends = self.core.query(ltime, qid, timeout_s, name, payload, filter_nodes=filter_nodes,
                                filter_tags=filter_tags, relay_factor=relay_factor, ack=ack)
        self._send(sends)
        return len(sends)

    def answer(self, host: str, port: int, ltime: int, qid: int, node: str, payload: bytes, ack: bool) -> None:
        """Answer an agent's query, or acknowledge it (``node`` is the answering mesh node's name)."""
        self._send(self.core.query_response(host, port, ltime, qid, node, payload, ack))

    def _key_query(self, q: QueryIn) -> None:
        """``serf keys -install/-use/-remove/-list``: this member's keyring answers for itself."""
        if q.ack:
            self._send(self.core.query_response(q.host, q.port, q.ltime, q.id, self.core.name, b"", True))
        payload, changed = answer_key_query(self.keyring, q.name, q.payload)
        if changed and self.keyring_file is not None and self.keyring is not None:
            tmp = self.keyring_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.keyring.to_base64()))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.keyring_file)
        self._send(self.core.query_response(q.host, q.port, q.ltime, q.id, self.core.name, payload))

    def live_agents(self) -> frozenset[str]:
        return frozenset(m["name"] for m in self.core.view()[1:] if m["status"] == "alive")

    def user_event(self, ltime: int, name: str, payload: bytes, coalesce: bool) -> int:
        """Send a Serf user event to every live agent; the number of agents it went to."""
        sends = self.core.user_event(ltime, name, payload, coalesce)
        self._send(sends)
        return len(sends)

    # ------------------------------------------------------------------------------------------ UDP
    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            messages = open_packet(data, keyring=self.keyring, label=self.core.config.label)
            actions = [a for kind, body in messages for a in self.core.on_packet(kind, body, time.monotonic(), addr)]
        except WireError as exc:
            self.dropped += 1
            log.debug("memberlist %s dropped a packet from %s: %s", self.core.name, addr, exc)
            return
        replies = [encode_message(a.kind, a.body) for a in actions if isinstance(a, Reply)]
        if replies:
            self._sendto(replies, addr)
        for action in actions:
            if isinstance(action, Reply):
                continue
            elif isinstance(action, Deliver) and self.on_event is not None:
                self.on_event(action)
            elif isinstance(action, QueryIn) and action.name in KEY_QUERIES:
                self._key_query(action)
            elif isinstance(action, QueryIn) and self.on_query is not None:
                self.on_query(action)
            elif isinstance(action, QueryResponseIn) and self.on_query_response is not None:
                self.on_query_response(action)
            elif isinstance(action, PushPullWith):  # a member we hold failed talks to us: sync so it refutes
                self._start_sync(action)
        self._send([a for a in actions if isinstance(a, Send)])

    def _send(self, sends: list[Send]) -> None:
        """The messages for one member go out together, as compounds that fit a packet."""
        by_dest: dict[tuple[str, int], list[bytes]] = {}
        for s in sends:
            packet = encode_user(s.body["payload"]) if s.kind is MessageType.USER else encode_message(s.kind, s.body)
            by_dest.setdefault((s.host, s.port), []).append(packet)
        for addr, messages in by_dest.items():
            self._sendto(messages, addr)

    def _sendto(self, messages: list[bytes], addr: tuple[str, int]) -> None:
        if self._udp is None or self._udp.is_closing():
            return
        cfg = self.core.config
        crc = self.core.wants_crc(addr[0], addr[1])
        for group in group_messages(messages):
            try:
                packet = frame_packet(group, compress=cfg.compression, crc=crc, keyring=self.keyring, label=cfg.label)
            except WireError as exc:
                log.debug("memberlist %s cannot frame a packet for %s: %s", self.core.name, addr, exc)
                continue
            body = strip_label(packet)[1]
            if self.keyring is None and body[5 if crc else 0:][:1] == bytes([MessageType.COMPRESS]):
                self.compressed_sent += 1  # (a sealed packet hides it)
            self._udp.sendto(packet, addr)

    def _stream_out(self, message: bytes, *, dialer: bool) -> bytes:
        cfg = self.core.config
        return frame_stream(message, compress=cfg.compression, keyring=self.keyring, label=cfg.label, dialer=dialer)

    def _start_sync(self, a: PushPullWith) -> None:
        task = asyncio.ensure_future(self._sync(a.host, a.port))
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    async def _tick_loop(self) -> None:
        while True:
            actions = self.core.tick(time.monotonic())
            self._send([a for a in actions if isinstance(a, Send)])
            for a in actions:
                if isinstance(a, PushPullWith):
                    self._start_sync(a)
            # wake at the core's next deadline: a timer run late reads as a stall of our own (Lifeguard)
            deadline = self.core.next_deadline()
            delay = TICK_S if deadline is None else deadline - time.monotonic()
            await asyncio.sleep(min(TICK_S, max(0.0, delay)))

    async def _sync(self, host: str, port: int) -> None:
        """The periodic push-pull; a member that does not answer is the prober's business, not ours."""
        try:
            await self.join(host, port, join=False)
        except (WireError, TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            log.debug("memberlist %s push-pull with %s:%s failed: %s", self.core.name, host, port, exc)

    # ------------------------------------------------------------------------------------------ TCP
    async def join(self, host: str, port: int, *, join: bool = True) -> int:
        """Push-pull with the member at ``host:port`` (memberlist's join, or with ``join=False`` the periodic
        exchange); returns the members learned."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), STREAM_TIMEOUT_S)
        try:
            writer.write(self._stream_out(encode_push_pull(self.core.local_state(join=join)), dialer=True))
            await writer.drain()
            remote = await asyncio.wait_for(self._read_push_pull(reader, inbound=False), STREAM_TIMEOUT_S)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        before = len(self.core.members)
        self._send(self.core.merge(remote, time.monotonic()))
        if join:
            self._send(self.core.join_intent())  # as Serf's Join: after the push-pull, so the clock is current
        return len(self.core.members) - before

    async def _on_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            remote = await asyncio.wait_for(self._read_push_pull(reader, inbound=True), STREAM_TIMEOUT_S)
            writer.write(self._stream_out(encode_push_pull(self.core.local_state()), dialer=False))
            await writer.drain()
            self._send(self.core.merge(remote, time.monotonic()))
        except (WireError, TimeoutError, OSError, asyncio.IncompleteReadError) as exc:
            self.dropped += 1
            log.debug("memberlist %s closed a stream: %s", self.core.name, exc)
        finally:
            writer.close()

    async def _read_push_pull(self, reader: asyncio.StreamReader, *, inbound: bool) -> Any:
        """Read until the bytes so far decode as a whole push-pull (memberlist sends no length prefix, but
        an encrypted one has one). An inbound stream starts with the dialer's label header (if any)."""
        label = self.core.config.label
        raw = b""
        while True:
            chunk = await reader.read(65536)
            if chunk:
                raw += chunk
            if len(raw) > MAX_STREAM_BYTES:
                raise WireError("push-pull larger than 20 MiB")
            stripped = strip_stream_label(raw, label) if inbound else raw
            if stripped is None:
                if not chunk:
                    raise WireError("stream ended inside its label header")
                continue
            buf = stripped
            if self.keyring is not None:
                plain = self.keyring.open_stream(buf, label.encode()) if buf else None
                if plain is None:
                    if not chunk:
                        raise WireError("stream ended inside an encrypted message")
                    continue
                return decode_push_pull(plain)
            try:
                return decode_push_pull(buf)
            except WireError:
                if not chunk:
                    raise
                if buf[:1] not in (bytes([MessageType.PUSH_PULL]), bytes([MessageType.COMPRESS])):
                    raise
