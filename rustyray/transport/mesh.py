"""The mesh: one node's listeners, connections, peer table, dispatch and request correlation.

Why a class of its own: every subsystem needs the same few transport verbs (register a
handler, send, request, learn or forget a peer, hear about peer events) and nothing
else from the node. The services receive this object through the ``Host`` protocol
(``rustyray.transport.api``) from the composition root (``rustyray.node``), which is
the only place that knows which services exist. The mesh never imports ``ray`` or a
subsystem service.

Connections. Each node dials every known peer over TCP (TLS 1.3 + mTLS) and uses
that outbound connection for its own requests; it answers a request on the
connection the request came in on. A dropped peer is redialled with full-jitter
exponential backoff (``transport.reconnect``). The first frame of every connection
is a ``Hello``; both sides run the sans-I/O handshake machines of
``rustyray.protocol.handshake`` (certificate CN equals the claimed node id, cluster
name, advertised addresses), the listener also runs its admission filters (ACL,
firewall), and only after the ``HelloAck`` are frames dispatched.

Dispatch. Handlers are registered per message type; a handler may return a
message (sent back as the response) or an awaitable (run as a task). Exceptions
in handlers are logged and answered with ``ErrorReply``; they never reach the
event loop. A malformed frame closes that one connection (see ``Connection``).

Links. Every frame is written and every connection opened through ``self.link``
(``DirectLink`` by default). Fault injection and partitions wrap it
(``add_link``/``remove_link``) instead of patching methods.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import json
import logging
import math
import os
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rustyray._aio import cancel_and_wait
from rustyray.protocol.control import Echo, EchoReply, ErrorReply, Goodbye, Heartbeat, Oneway
from rustyray.protocol.errors import HandshakeRefused, ProtocolError
from rustyray.protocol.frame import Flags, Frame
from rustyray.protocol.handshake import ClientHandshake, Established, Hello, HelloAck, LocalEnd, ServerHandshake
from rustyray.protocol.messages import Message
from rustyray.transport.connection import Connection
from rustyray.transport.health import TransportSample
from rustyray.transport.link import DirectLink, Link
from rustyray.transport.reconnect import Backoff
from rustyray.transport.tcp import TcpConnection, TcpListener, format_address, parse_address
from rustyray.transport.tls_port import TlsProvider

if TYPE_CHECKING:
    from rustyray.transport.api import NodeSettings

log = logging.getLogger(__name__)

Handler = Callable[["RequestContext", Any], "Message | Awaitable[Message | None] | None"]
AdmissionFilter = Callable[[Connection, "Hello | None"], "str | None"]


class DialNotAllowed(ConnectionError):
    """The dial policy forbids this destination (see ``transport.dial_policy``)."""


class RequestFailed(Exception):
    """A peer answered a request with ``ErrorReply`` or could not be reached."""

    def __init__(self, message: str, code: str = "request_failed") -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True)
class RequestContext:
    """What a handler knows about the frame it is handling."""

    node: Mesh
    conn: Connection
    frame: Frame

    @property
    def peer_id(self) -> str | None:
        return self.conn.peer_node_id


@dataclass
class Peer:
    """What this node knows about another member, and its outbound connection."""

    node_id: str
    tcp_address: str
    quic_address: str = ""
    incarnation: int = 0
    conn: Connection | None = None
    backoff: Backoff | None = None
    last_error: str | None = None
    connected_since: float | None = None
    dial_task: asyncio.Task[Any] | None = None
    wanted: bool = True  # False after the peer left: stop redialling

    @property
    def connected(self) -> bool:
        return self.conn is not None and not self.conn.is_closed


MAINTAIN_MAX_SLEEP_S = 1.0
"""Longest sleep of the redial loop between two scans of the peer table (seconds)."""


@dataclass
class NodeStats:
    """Monotonic counters and a latency window; the API reads them live."""

    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent_closed: int = 0  # bytes of connections that are gone (live ones are summed on read)
    bytes_received_closed: int = 0
    connection_errors: int = 0
    protocol_errors: int = 0
    handshake_refusals: int = 0
    requests_sent: int = 0
    requests_failed: int = 0
    connections_opened: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=2048))
    refusals: dict[str, int] = field(default_factory=dict)
    #: Upper bounds (ms) of the latency histogram's buckets; the last bucket is +Inf.
    LATENCY_BUCKETS_MS: ClassVar[tuple[float, ...]] = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
                                                       5000, 10000, math.inf)
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(NodeStats.LATENCY_BUCKETS_MS))
    latency_sum_ms: float = 0.0
    latency_count: int = 0  # every latency ever recorded (the window above keeps only the recent ones)

    def record_latency(self, ms: float) -> None:
        self.latencies_ms.append(ms)
        self.latency_buckets[bisect.bisect_left(self.LATENCY_BUCKETS_MS, ms)] += 1
        self.latency_sum_ms += ms
        self.latency_count += 1

    def count_refusal(self, reason: str) -> None:
        self.refusals[reason] = self.refusals.get(reason, 0) + 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _time_out(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class Mesh:
    """One node's transport (see the module docstring)."""

    def __init__(self, config: NodeSettings, *, tls: TlsProvider | None = None,
                 rng: random.Random | None = None) -> None:
        config.validate()
        self.config = config
        self.node_id = config.node_id
        self.rng = rng or random.Random()
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        self.stats = NodeStats()
        self.peers: dict[str, Peer] = {}
        self.connections: dict[str, Connection] = {}
        self.handlers: dict[type[Message], Handler] = {}
        self.admission_filters: list[AdmissionFilter] = []
        #: Checked for every inbound request or one-way message (not responses); a returned reason refuses
        #: it (a request gets ErrorReply "refused"). Empty unless a rule needs it (the firewall's rate limits).
        self.message_filters: list[Callable[[Connection, Frame], str | None]] = []
        self.handshake_hooks: list[Callable[[Connection], None]] = []
        self.extra_capabilities: list[str] = []  # offered by services (e.g. "encryption")
        from rustyray.transport.dial_policy import DialPolicy

        self.dial_policy = DialPolicy.build(config.transport.allowed_networks, config.transport.allowed_hosts)
        """Called once per connection right after the hello exchange, before any other frame."""
        self.quic_server_hooks: list[Callable[[Any], None]] = []  # per new server-side QuicConnection
        self.link: Link = DirectLink()
        #: How ``request_on`` sends a request; the pool installs its multiplexed channel here.
        self.request_channel: Callable[..., Awaitable[Message]] = self.direct_request_on
        #: Who decides which members are alive (membership, when the node runs it).
        self.members_provider: Callable[[], list[str]] | None = None
        #: Whom the heartbeat loop sends to (health's monitoring ring, when the node runs it); None: every peer.
        self.heartbeat_targets: Callable[[], Iterable[str]] | None = None
        self._pending: dict[int, tuple[asyncio.Future[Message], Connection]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tcp: TcpListener | None = None
        self._quic: Any = None
        self._loops: dict[str, asyncio.Task[Any]] = {}  # background loops begin() starts, by name
        self._redial = asyncio.Event()  # set when a peer's redial plan may have changed (_maintain_loop)
        self.server_ssl = None
        self.client_ssl = None
        self.credentials: Any = None
        self.tls = tls
        """Where certificates and TLS contexts come from (the node passes security's ``ClusterTls``)."""
        self.incarnation = 0
        self.running = False
        self.ready = asyncio.Event()
        self.stopping = False
        self.peer_listeners: list[Callable[[str, str], None]] = []  # (event, peer_id)
        self.on(Echo, lambda ctx, m: EchoReply(data=m.data))
        self.on(Oneway, lambda ctx, m: None)
        self.on(Goodbye, self._on_goodbye)
        self.on(Heartbeat, lambda ctx, m: None)

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Bind the listeners and load credentials (the services are built after this)."""
        cfg = self.config
        cfg.node_dir.mkdir(parents=True, exist_ok=True)
        saved = self._load_state()
        # a restart with its state: the next incarnation; without (a new node, or one whose state is gone):
        # the configured floor (0, or the wall clock for a node actor Ray restarted: NodeConfig.min_incarnation)
        self.incarnation = int(saved["incarnation"]) + 1 if "incarnation" in saved else cfg.min_incarnation
        if cfg.transport.tls or cfg.transport.enable_quic:
            self._load_tls()
        self._tcp = TcpListener(self._on_inbound, ssl_context=self.server_ssl if cfg.transport.tls else None,
                                handshake_timeout=cfg.transport.connect_timeout_s)
        await self._bind(self._tcp, cfg.transport.tcp_port or int(saved.get("tcp_port", 0)))
        if cfg.transport.enable_quic:
            from rustyray.transport.quic import QuicListener

            tls = self._tls()

            def on_server_quic(quic: Any) -> None:
                tls.require_client_certificate(quic)
                for hook in self.quic_server_hooks:  # e.g. the security service counts TLS refusals
                    hook(quic)

            self._quic = QuicListener(self._on_inbound, configuration=self._quic_config(is_client=False),
                                      on_server_quic=on_server_quic)
            await self._bind(self._quic, cfg.transport.quic_port or int(saved.get("quic_port", 0)))
        self._save_state()
        self.running = True

    def begin(self) -> None:
        """Dial the seeds and start redialling and heartbeats: the node is ready."""
        for seed in self.config.seeds:
            self.spawn(self._dial_seed(seed), name=f"seed {seed}")
        self._loops = {"maintain": self.spawn(self._maintain_loop(), name="maintain"),
                       "heartbeat": self.spawn(self._heartbeat_loop(), name="heartbeat")}
        self.ready.set()
        log.info("node %s up: tcp %s quic %s incarnation %d", self.node_id, self.tcp_address,
                 self.quic_address, self.incarnation)

    async def _bind(self, listener: Any, port: int) -> None:
        host = self.config.transport.host
        try:
            await listener.start(host, port)
        except OSError:
            if port == 0:
                raise
            log.warning("port %d busy for %s, binding a free one", port, self.node_id)
            await listener.start(host, 0)

    async def close(self, *, graceful: bool = True) -> None:
        """Say goodbye to peers and close everything the mesh opened (the services stopped first)."""
        if not self.running:
            return
        self.stopping = True
        if graceful:
            for peer in self.peers.values():
                if peer.connected:
                    with contextlib.suppress(Exception):
                        self.send_on(peer.conn, Goodbye(node_id=self.node_id, reason="stopping"))
        await cancel_and_wait(list(self._tasks), 5.0, owner=f"{self.node_id} stop")
        for conn in list(self.connections.values()):
            conn.close("node stopping")
        if self._tcp:
            await self._tcp.stop()
        if self._quic:
            await self._quic.stop()
        for fut, _ in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("node stopped"))
        self.running = False

    def spawn(self, coro: Awaitable[Any], *, name: str = "") -> asyncio.Task[Any]:
        """Run a background task owned by the node: tracked, logged on failure, cancelled on stop."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("task %s on %s failed: %r", name, self.node_id, t.exception())

        task.add_done_callback(done)
        return task

    # ------------------------------------------------------------------ state dir & TLS
    def _state_file(self) -> Path:
        return self.config.node_dir / "node.json"

    def _load_state(self) -> dict[str, Any]:
        try:
            return json.loads(self._state_file().read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self) -> None:
        data = {"node_id": self.node_id, "incarnation": self.incarnation, "tcp_port": self.tcp_port,
                "quic_port": self.quic_port, "started_at": self.started_at}
        tmp = self._state_file().with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self._state_file())

    def _tls(self) -> TlsProvider:
        if self.tls is None:
            raise RuntimeError(f"{self.node_id}: TLS or QUIC is on but no TLS provider was given")
        return self.tls

    def _load_tls(self) -> None:
        tls = self._tls()
        self.credentials = tls.load()
        self.server_ssl = tls.server_context(self.credentials)
        self.client_ssl = tls.client_context(self.credentials)

    def reload_tls(self) -> None:
        """Rebuild the TLS contexts from the credentials on disk (after a rotation).

        New connections use the new certificate at once; established ones keep
        theirs until they close (they drain naturally).
        """
        tls = self._tls()
        assert self.credentials is not None
        fresh = tls.server_context(self.credentials)  # raises (and changes nothing) if the files are unusable
        if self.server_ssl is None:
            self.server_ssl = fresh
        else:
            # asyncio captured this very context object when the listener started: update it in place.
            self.server_ssl.load_cert_chain(str(self.credentials.cert_path), str(self.credentials.key_path))
        self.client_ssl = tls.client_context(self.credentials)
        if self._quic is not None:
            self._quic._configuration = self._quic_config(is_client=False)
            if self._quic.server is not None:  # the running aioquic server holds its own reference
                self._quic.server._configuration = self._quic._configuration

    def quic_client_config(self, *, server_node_id: str | None = None) -> Any:
        return self._quic_config(is_client=True, server_node_id=server_node_id)

    def _quic_config(self, *, is_client: bool, server_node_id: str | None = None) -> Any:
        return self._tls().quic_configuration(self.credentials, is_client=is_client, server_node_id=server_node_id)

    # ------------------------------------------------------------------ addresses
    @property
    def advertise_host(self) -> str:
        return self.config.transport.advertise_host or self.config.transport.host

    def transport_sample(self) -> TransportSample:
        """What ``transport.health`` judges: listener state, ended loops and the connection counters."""
        tcp = self._tcp.server if self._tcp is not None else None
        quic = self._quic.server if self._quic is not None else None
        quic_transport = getattr(quic, "_transport", None)  # aioquic's QuicServer keeps its UDP transport
        stats = self.stats
        return TransportSample(
            tcp_address=self.tcp_address if self._tcp is not None else "",
            tcp_serving=tcp is not None and tcp.is_serving(),
            quic_address=self.quic_address,
            quic_serving=quic_transport is not None and not quic_transport.is_closing(),
            ended_loops=tuple(name for name, task in self._loops.items() if task.done()),
            connections_opened=stats.connections_opened,
            errors=stats.connection_errors + stats.protocol_errors,
        )

    @property
    def tcp_port(self) -> int:
        return self._tcp.port if self._tcp else 0

    @property
    def quic_port(self) -> int:
        return self._quic.port if self._quic else 0

    @property
    def tcp_address(self) -> str:
        return format_address(self.advertise_host, self.tcp_port) if self._tcp else ""

    @property
    def quic_address(self) -> str:
        return format_address(self.advertise_host, self.quic_port) if self._quic else ""

    def local_end(self) -> LocalEnd:
        return LocalEnd(node_id=self.node_id, capabilities=tuple(self.capabilities), tcp_address=self.tcp_address,
                        quic_address=self.quic_address, cluster=self.config.cluster_name,
                        incarnation=self.incarnation, require_tls=self.config.transport.tls)

    @property
    def capabilities(self) -> list[str]:
        caps = list(self.config.transport.capabilities) + self.extra_capabilities
        if not self.config.transport.tls and "tls13" in caps:
            caps.remove("tls13")
        return caps

    # ------------------------------------------------------------------ inbound
    def _on_inbound(self, conn: Connection) -> None:
        self.connections[conn.conn_id] = conn
        self.stats.connections_opened += 1
        self.spawn(self._accept(conn), name=f"accept {conn.conn_id}")

    def _refuse(self, conn: Connection, reason: str, code: str) -> None:
        self.stats.handshake_refusals += 1
        self.stats.count_refusal(code)
        log.warning("%s refused %s from %s: %s", self.node_id, conn.conn_id, conn.peer_address, reason)
        conn.close(f"refused: {reason}")
        # Never attached, so connection_lost will not run for it: forget it here or it stays listed forever.
        if self.connections.pop(conn.conn_id, None) is not None:
            self.stats.bytes_sent_closed += conn.bytes_sent
            self.stats.bytes_received_closed += conn.bytes_received

    async def _accept(self, conn: Connection) -> None:
        for check in self.admission_filters:
            reason = check(conn, None)
            if reason:
                self._refuse(conn, reason, "admission")
                return
        try:
            frame = await conn.first_frame(self.config.transport.handshake_timeout_s)
        except ProtocolError as exc:
            self.stats.protocol_errors += 1
            self._refuse(conn, str(exc), exc.code)
            return
        except (ConnectionError, TimeoutError) as exc:
            self._refuse(conn, str(exc), "handshake_timeout")
            return
        shake = ServerHandshake(self.local_end())
        try:
            hello = shake.receive(frame.message, peer_cn=self._peer_cn(conn), tls=conn.tls_version is not None)
        except HandshakeRefused as exc:
            self.stats.protocol_errors += 1
            conn.error = exc
            self._refuse(conn, "first frame was not a Hello", "handshake_refused")
            return
        refusal = None
        if shake.identity_problem is None:
            refusal = next((r for r in (check(conn, hello) for check in self.admission_filters) if r), None)
        ack, terms = shake.decide(refusal)
        with contextlib.suppress(ConnectionError):
            self.send_on(conn, ack, msg_id=frame.msg_id, flags=Flags.RESPONSE)
        if terms is None:
            self._refuse(conn, ack.reason, "identity" if shake.identity_problem or refusal else "version")
            return
        self._establish(conn, terms)

    def _establish(self, conn: Connection, terms: Established) -> None:
        """Apply agreed terms (both sides): hooks first, the peer learned before any frame is dispatched."""
        conn.peer_node_id = terms.peer_node_id
        conn.compression = terms.compression
        conn.peer_capabilities = terms.peer_capabilities
        self._run_handshake_hooks(conn)
        if terms.peer_tcp_address and terms.peer_node_id != self.node_id:
            self.learn_peer(terms.peer_node_id, terms.peer_tcp_address, terms.peer_quic_address,
                            terms.peer_incarnation)
        conn.attach(self)

    def _run_handshake_hooks(self, conn: Connection) -> None:
        for hook in self.handshake_hooks:
            try:
                hook(conn)
            except Exception:
                log.exception("handshake hook failed on %s", conn.conn_id)

    def _peer_cn(self, conn: Connection) -> str | None:
        if isinstance(conn, TcpConnection):
            return self.tls.peer_node_id(conn.ssl_object) if self.tls is not None else None
        proto = getattr(conn, "proto", None)  # a QUIC connection: the CN aioquic verified
        return self.tls.quic_peer_node_id(proto._quic) if self.tls is not None and proto is not None else None

    # ------------------------------------------------------------------ outbound
    async def dial(self, host: str, port: int, *, protocol: str = "TCP", expect_node: str | None = None,
                   timeout: float | None = None) -> tuple[Connection, HelloAck]:
        """Open a new connection to ``host:port``, complete TLS and the hello, and attach it.

        Raises ``ConnectionError``/``OSError``/``TimeoutError`` when unreachable and
        ``HandshakeRefused`` when the peer refuses or is not ``expect_node``.
        """
        t = self.config.transport
        timeout = timeout or t.connect_timeout_s
        refusal = self.dial_policy.refusal(host)
        if refusal is not None:
            raise DialNotAllowed(refusal)
        try:
            conn = await self.link.connect(self, host, port, protocol=protocol, expect_node=expect_node,
                                           timeout=timeout)
        except (OSError, TimeoutError, ConnectionError) as exc:
            self.stats.connection_errors += 1
            raise ConnectionError(f"cannot connect to {format_address(host, port)} over {protocol}: "
                                  f"{exc or type(exc).__name__}") from exc
        except Exception as exc:  # TLS and QUIC handshake failures come as library-specific errors
            self.stats.connection_errors += 1
            raise ConnectionError(f"cannot connect to {format_address(host, port)} over {protocol}: "
                                  f"{type(exc).__name__}: {exc}") from exc
        self.connections[conn.conn_id] = conn
        self.stats.connections_opened += 1
        shake = ClientHandshake(self.local_end(), expect_node=expect_node)
        try:
            self.send_on(conn, shake.start())
            frame = await conn.first_frame(t.handshake_timeout_s)
            terms = shake.receive(frame.message, peer_cn=self._peer_cn(conn), tls=conn.tls_version is not None)
        except BaseException as exc:
            conn.abort("handshake failed")
            self.connections.pop(conn.conn_id, None)
            self.stats.connection_errors += 1
            if isinstance(exc, ProtocolError | ConnectionError | TimeoutError):
                raise ConnectionError(str(exc) or type(exc).__name__) from exc
            raise
        ack = frame.message
        assert isinstance(ack, HelloAck)
        self._establish(conn, terms)
        return conn, ack

    def learn_peer(self, node_id: str, tcp_address: str, quic_address: str = "", incarnation: int = 0) -> Peer:
        """Add or update a peer; a newer incarnation or a new address refreshes it."""
        peer = self.peers.get(node_id)
        if peer is None:
            peer = Peer(node_id=node_id, tcp_address=tcp_address, quic_address=quic_address,
                        incarnation=incarnation, backoff=Backoff(self.config.transport.reconnect, self.rng))
            self.peers[node_id] = peer
            self._notify("learned", node_id)
        else:
            if incarnation >= peer.incarnation and tcp_address and tcp_address != peer.tcp_address:
                peer.tcp_address = tcp_address
                if peer.conn is not None and peer.conn.is_closed:
                    peer.conn = None
            if quic_address:
                peer.quic_address = quic_address
            peer.incarnation = max(peer.incarnation, incarnation)
            if not peer.wanted and incarnation > 0:
                peer.wanted = True
            self._redial.set()
        return peer

    def forget_peer(self, node_id: str) -> None:
        """Stop redialling a peer that left (its entry stays for reporting until removed)."""
        peer = self.peers.get(node_id)
        if peer is None:
            return
        peer.wanted = False
        if peer.conn is not None:
            peer.conn.close("peer left")

    def remove_peer(self, node_id: str) -> None:
        self.forget_peer(node_id)
        self.peers.pop(node_id, None)

    async def _dial_seed(self, address: str) -> None:
        host, port = parse_address(address, field="seed")
        backoff = Backoff(self.config.transport.reconnect, self.rng)
        while self.running and not self.stopping:
            try:
                conn, ack = await self.dial(host, port)
            except DialNotAllowed as exc:
                log.warning("%s ignores seed %s: %s", self.node_id, address, exc)
                return
            except (ConnectionError, OSError) as exc:
                nxt = backoff.failed(time.monotonic())
                if nxt is None:
                    log.warning("%s gives up on seed %s: %s", self.node_id, address, exc)
                    return
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
                continue
            if ack.node_id == self.node_id:
                conn.close("dialled self")
                return
            peer = self.peers.get(ack.node_id)
            if peer is not None and not peer.connected:
                self._adopt(peer, conn)
            else:
                conn.close("duplicate seed connection")
            return

    def _adopt(self, peer: Peer, conn: Connection) -> None:
        peer.conn = conn
        peer.connected_since = time.monotonic()
        peer.last_error = None
        if peer.backoff:
            peer.backoff.succeeded()
        self._notify("connected", peer.node_id)

    async def _connect_peer(self, peer: Peer) -> None:
        try:
            host, port = parse_address(peer.tcp_address, field="tcp_address")
            conn, _ack = await self.dial(host, port, expect_node=peer.node_id)
        except (ConnectionError, OSError, ValueError) as exc:
            peer.last_error = str(exc)
            assert peer.backoff is not None
            peer.backoff.failed(time.monotonic())
            return
        finally:
            self._redial.set()  # the maintain loop schedules the next attempt (or stops caring)
        if peer.connected:
            conn.close("duplicate")
            return
        self._adopt(peer, conn)

    async def _maintain_loop(self) -> None:
        """Redial peers whose outbound connection is missing, each on its own backoff.

        Sleeps until the earliest backoff deadline or until something changes (a peer learned, wanted
        again, disconnected, a dial finished: ``_redial``), not on a fixed poll: an idle node must not
        wake 20 times a second to find nothing to do. ``MAINTAIN_MAX_SLEEP_S`` bounds the sleep in case
        a change arrives by a path that does not signal.
        """
        while True:
            self._redial.clear()  # before the scan: a change during it wakes the next wait at once
            now = time.monotonic()
            next_at = now + MAINTAIN_MAX_SLEEP_S
            for peer in list(self.peers.values()):
                if not peer.wanted or peer.connected or peer.node_id == self.node_id:
                    continue
                if peer.dial_task is not None and not peer.dial_task.done():
                    continue
                assert peer.backoff is not None
                if peer.backoff.ready(now):
                    peer.dial_task = self.spawn(self._connect_peer(peer), name=f"dial {peer.node_id}")
                else:
                    next_at = min(next_at, peer.backoff.next_at)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._redial.wait(), max(0.0, next_at - time.monotonic()))

    async def _heartbeat_loop(self) -> None:
        interval = self.config.heartbeat.interval_ms / 1000.0
        seq = 0
        while True:
            seq += 1
            hb = Heartbeat(node_id=self.node_id, timestamp=time.time(), seq=seq, incarnation=self.incarnation)
            chosen = self.heartbeat_targets
            targets = self.peers.values() if chosen is None else [p for t in chosen() if (p := self.peers.get(t))]
            for peer in list(targets):
                if peer.connected:
                    with contextlib.suppress(ConnectionError, ProtocolError):
                        self.send_on(peer.conn, hb)
            await asyncio.sleep(interval)

    async def connection_to(self, peer_id: str, *, timeout: float | None = None) -> Connection:
        """The live outbound connection to a peer, dialling it now if needed."""
        peer = self.peers.get(peer_id)
        if peer is None:
            raise KeyError(peer_id)
        if peer.connected:
            assert peer.conn is not None
            return peer.conn
        if peer.dial_task is not None and not peer.dial_task.done():
            await asyncio.wait({peer.dial_task}, timeout=timeout or self.config.transport.connect_timeout_s)
        if not peer.connected:
            try:
                host, port = parse_address(peer.tcp_address, field="tcp_address")
                conn, _ = await self.dial(host, port, expect_node=peer_id, timeout=timeout)
            except (ConnectionError, OSError, ValueError) as exc:
                peer.last_error = str(exc)
                raise ConnectionError(f"{peer_id} is unreachable: {exc}") from exc
            if not peer.connected:
                self._adopt(peer, conn)
            else:
                conn.close("duplicate")
        assert peer.conn is not None
        return peer.conn

    # ------------------------------------------------------------------ sending
    def next_id(self) -> int:
        return next(self._ids)

    def send_on(self, conn: Connection | None, message: Message, *, msg_id: int | None = None,
                flags: int = 0, stream_id: int | None = None) -> int:
        """Write one frame on a connection (on a multiplexed stream if ``stream_id``); returns the message id."""
        if conn is None or conn.is_closed:
            raise ConnectionError("connection is closed")
        mid = self.next_id() if msg_id is None else msg_id
        self.link.write(conn, message, mid, flags, stream_id)
        self.stats.messages_sent += 1
        return mid

    def add_link(self, wrapper: Link) -> None:
        """Put ``wrapper`` in front of the current link (it writes through ``wrapper.inner``)."""
        wrapper.inner = self.link
        self.link = wrapper

    def remove_link(self, wrapper: Link) -> None:
        """Take ``wrapper`` out of the chain wherever it sits."""
        if self.link is wrapper:
            self.link = wrapper.inner
            return
        cur = self.link
        while getattr(cur, "inner", None) is not None:
            if cur.inner is wrapper:
                cur.inner = wrapper.inner
                return
            cur = cur.inner

    async def send(self, peer_id: str, message: Message, *, priority: int = 1) -> int:
        """One-way message to a peer (dialling if needed); returns its message id."""
        conn = await self.connection_to(peer_id)
        mid = self.send_on(conn, message, flags=priority << 6)
        await conn.drain()
        return mid

    async def request(self, peer_id: str, message: Message, *, timeout: float | None = None,
                      priority: int = 1) -> Message:
        """Send a request to a peer and await its response message."""
        conn = await self.connection_to(peer_id, timeout=timeout)
        return await self.request_on(conn, message, timeout=timeout, priority=priority)

    async def request_on(self, conn: Connection, message: Message, *, timeout: float | None = None,
                         priority: int = 1, stream_id: int | None = None) -> Message:
        """Send a request on ``conn`` through the request channel (the pool's streams when installed)."""
        return await self.request_channel(conn, message, timeout=timeout, priority=priority, stream_id=stream_id)

    async def direct_request_on(self, conn: Connection, message: Message, *, timeout: float | None = None,
                                priority: int = 1, stream_id: int | None = None) -> Message:
        """Send a request on ``conn`` (tagged with a multiplexed ``stream_id`` if given; the reply echoes it)."""
        timeout = timeout or self.config.transport.request_timeout_s
        mid = self.next_id()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Message] = loop.create_future()
        self._pending[mid] = (fut, conn)
        start = time.perf_counter()
        self.stats.requests_sent += 1
        try:
            self.send_on(conn, message, msg_id=mid, flags=Flags.ACK_REQUESTED | (priority << 6), stream_id=stream_id)
            timer = loop.call_later(timeout, _time_out, fut)  # not wait_for: on 3.11 it adds a loop turn per reply
            try:
                reply = await fut
            finally:
                timer.cancel()
        except BaseException:
            self.stats.requests_failed += 1
            raise
        finally:
            self._pending.pop(mid, None)
        self.stats.record_latency((time.perf_counter() - start) * 1000)
        if isinstance(reply, ErrorReply):
            raise RequestFailed(reply.message, reply.code)
        return reply

    async def request_members(self, message: Message, *, timeout: float = 2.0,
                              peers: list[str] | None = None) -> dict[str, Message | Exception]:
        """Send one request to every live member but this node (or to ``peers``), concurrently.

        Returns each peer's reply or the exception it failed with: replicating a
        setting must report member by member, and one unreachable member must not
        fail the others.
        """
        targets = [p for p in (self.live_members() if peers is None else peers) if p != self.node_id]

        async def one(peer_id: str) -> Message | Exception:
            try:
                return await self.request(peer_id, message, timeout=timeout)
            except Exception as exc:
                return exc

        replies = await asyncio.gather(*(one(p) for p in targets))
        return dict(zip(targets, replies, strict=True))

    # ------------------------------------------------------------------ receiving
    def on(self, msg_type: type[Message], handler: Handler) -> None:
        """Register the handler of one message type (replacing any previous one)."""
        self.handlers[msg_type] = handler

    def frame_received(self, conn: Connection, frame: Frame) -> None:
        self.stats.messages_received += 1
        msg = frame.message
        if frame.flags & Flags.RESPONSE:
            pending = self._pending.get(frame.msg_id)
            if pending is not None and not pending[0].done():
                pending[0].set_result(msg)
            return
        wants_reply = bool(frame.flags & Flags.ACK_REQUESTED)
        if self.message_filters:
            for check in self.message_filters:
                reason = check(conn, frame)
                if reason is not None:  # the filter's owner counts its refusals
                    if wants_reply:
                        self._reply(conn, frame, ErrorReply(code="refused", message=reason))
                    return
        handler = self.handlers.get(type(msg))
        if handler is None:
            if wants_reply:
                self._reply(conn, frame, ErrorReply(code="unknown_message",
                                                    message=f"no handler for {type(msg).__name__}"))
            return
        ctx = RequestContext(self, conn, frame)
        try:
            result = handler(ctx, msg)
        except Exception as exc:
            log.exception("handler for %s failed on %s", type(msg).__name__, self.node_id)
            if wants_reply:
                self._reply(conn, frame, ErrorReply(code="handler_error", message=f"{type(exc).__name__}: {exc}"))
            return
        if result is None:
            if wants_reply:
                self._reply(conn, frame, ErrorReply(code="no_reply", message=""))
        elif isinstance(result, Message):
            if wants_reply:
                self._reply(conn, frame, result)
        else:  # an awaitable: finish it in the background
            self.spawn(self._finish(conn, frame, result, wants_reply), name=f"handle {type(msg).__name__}")

    async def _finish(self, conn: Connection, frame: Frame, result: Awaitable[Message | None],
                      wants_reply: bool) -> None:
        try:
            reply = await result
        except Exception as exc:
            log.exception("handler for %s failed on %s", type(frame.message).__name__, self.node_id)
            reply = ErrorReply(code="handler_error", message=f"{type(exc).__name__}: {exc}")
        if wants_reply:
            self._reply(conn, frame, reply if reply is not None else ErrorReply(code="no_reply", message=""))

    def _reply(self, conn: Connection, frame: Frame, reply: Message) -> None:
        with contextlib.suppress(ConnectionError, ProtocolError):
            self.send_on(conn, reply, msg_id=frame.msg_id, flags=Flags.RESPONSE, stream_id=frame.stream_id)

    def connection_lost(self, conn: Connection, exc: BaseException | None) -> None:
        self.connections.pop(conn.conn_id, None)
        for fut, via in list(self._pending.values()):
            if via is conn and not fut.done():  # its answer can no longer arrive: fail now, not at the timeout
                fut.set_exception(ConnectionError(f"connection to {conn.peer_node_id} lost ({conn.close_reason})"))
        self.stats.bytes_sent_closed += conn.bytes_sent
        self.stats.bytes_received_closed += conn.bytes_received
        if isinstance(exc, ProtocolError):
            self.stats.protocol_errors += 1
        peer = self.peers.get(conn.peer_node_id or "")
        if peer is not None and peer.conn is conn:
            peer.conn = None
            peer.connected_since = None
            peer.last_error = conn.close_reason
            if peer.backoff is not None and not self.stopping:
                peer.backoff.failed(time.monotonic())
            if not self.stopping:
                self._notify("disconnected", peer.node_id)

    def _on_goodbye(self, ctx: RequestContext, msg: Goodbye) -> None:
        self._notify("goodbye", msg.node_id)

    def _notify(self, event: str, peer_id: str) -> None:
        self._redial.set()  # learned, connected, disconnected, goodbye: the redial plan may change
        for listener in list(self.peer_listeners):
            try:
                listener(event, peer_id)
            except Exception:
                log.exception("peer listener failed")

    # ------------------------------------------------------------------ membership hooks
    def live_members(self) -> list[str]:
        """Ids of members believed alive, this node included (membership decides when it runs)."""
        if self.members_provider is not None:
            return self.members_provider()
        return sorted({self.node_id} | {p.node_id for p in self.peers.values() if p.connected})

    # ------------------------------------------------------------------ introspection
    def stats_snapshot(self) -> dict[str, Any]:
        live = list(self.connections.values())
        lat = list(self.stats.latencies_ms)
        return {
            "messages_sent": self.stats.messages_sent,
            "messages_received": self.stats.messages_received,
            "bytes_sent": self.stats.bytes_sent_closed + sum(c.bytes_sent for c in live),
            "bytes_received": self.stats.bytes_received_closed + sum(c.bytes_received for c in live),
            "active_connections": sum(1 for c in live if not c.is_closed),
            "connection_errors": self.stats.connection_errors,
            "avg_latency_ms": round(sum(lat) / len(lat), 3) if lat else 0.0,
            "p50_latency_ms": round(percentile(lat, 0.5), 3),
            "p99_latency_ms": round(percentile(lat, 0.99), 3),
            "protocol_errors": self.stats.protocol_errors,
            "handshake_refusals": self.stats.handshake_refusals,
        }

    def info(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "address": self.tcp_address,
            "quic_address": self.quic_address,
            "incarnation": self.incarnation,
            "running": self.running,
            "started_at": self.started_at,
            "uptime_s": round(time.monotonic() - self.started_mono, 3),
            "connected_peers": sorted(p.node_id for p in self.peers.values() if p.connected),
            "known_peers": sorted(self.peers),
            "pid": os.getpid(),
        }
