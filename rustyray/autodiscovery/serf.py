"""Serf-compatible user events, queries and member tags, gossiped over SWIM (NETWORKING-029).

Theory of operation
-------------------
This follows HashiCorp Serf (``serf/serf.go``, ``serf/query.go``, ``serf/lamport.go``,
``serf/coalesce_user.go``), which layers custom events on memberlist's gossip; Lamport clocks
are from Lamport 1978, "Time, Clocks, and the Ordering of Events in a Distributed System".

Three independent Lamport clocks, as in Serf: ``clock`` orders member intents (tags/status
updates), ``event_clock`` orders user events and ``query_clock`` orders queries. Sending
stamps a message with the clock's current time and then increments it; receiving *witnesses*
the stamp (``cur = max(cur, t + 1)``), so anything a node sends after seeing an event carries a
larger time: Lamport time respects happens-before.

Dissemination: ``SerfCore`` never sends. ``Rebroadcast(msg)`` actions ask the SWIM layer to
piggyback the encoded struct on its dissemination channel (retransmitted ~lambda*log(n) times
there); a node rebroadcasts only messages it had not seen, so the epidemic stops.
Deduplication uses Serf's bounded ring buffers indexed by ``ltime % size``: a message whose
time is more than ``buffer`` behind the clock is too old to be judged and is dropped.

Events: with ``coalesce_period_s > 0`` received events are held in a window (opened by the
first event, closed after ``coalesce_period_s`` or after ``quiescent_period_s`` without a new
event); events with ``coalesce=True`` and the same name collapse to the newest Lamport time;
the window is delivered sorted by Lamport time. Order across windows is arrival order.

Queries: the origin stamps a query with ``query_clock`` and a random 32-bit id, gossips it and
collects direct ``SerfQueryResponse``s (acks and payloads, one per node) until its deadline;
receivers that pass the node/tag filters may ack at once and answer once before the deadline.
The default timeout is Serf's ``GossipInterval * QueryTimeoutMult * ceil(log10(N+1))``.

``now`` is seconds on any monotonic clock, passed in; ids come from an injected ``random.Random``.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from enum import Enum

from rustyray.autodiscovery.errors import AutodiscoveryConfigError, SerfError, SerfSizeLimitExceeded
from rustyray.protocol.messages import Message
from rustyray.records import record

__all__ = [
    "DeliverEvent",
    "DeliverQuery",
    "LamportClock",
    "MemberChanged",
    "MemberStatus",
    "QueryState",
    "Rebroadcast",
    "SendResponse",
    "SerfConfig",
    "SerfCore",
    "SerfMember",
    "SerfMemberUpdate",
    "SerfQuery",
    "SerfQueryResponse",
    "SerfUserEvent",
]


class LamportClock:
    """Serf's ``LamportClock``: ``increment`` returns the new time, ``witness`` jumps past a seen time."""

    def __init__(self, start: int = 0) -> None:
        self._t = start

    def time(self) -> int:
        return self._t

    def increment(self) -> int:
        self._t += 1
        return self._t

    def witness(self, t: int) -> None:
        if t >= self._t:
            self._t = t + 1


class MemberStatus(Enum):
    """Serf member status spellings."""

    ALIVE = "alive"
    LEAVING = "leaving"
    LEFT = "left"
    FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class SerfConfig:
    """Serf layer settings; defaults are Serf's (``serf/config.go``) unless noted.

    The member name (Serf's NodeName) is not a setting: it is the node's id, given to ``SerfCore``, so the
    ``[autodiscovery.serf]`` table is this dataclass's fields plus the service's own keys.
    """

    event_buffer: int = 512
    """Lamport times of user events remembered for deduplication; older events are dropped."""
    query_buffer: int = 512
    """Same for queries."""
    coalesce_period_s: float = 0.5
    """Seconds a window of received events is held at most before delivery; 0 delivers at once
    (no coalescing, arrival order)."""
    quiescent_period_s: float = 0.1
    """Seconds without a new event after which the window is delivered early."""
    gossip_interval_s: float = 0.2
    """The SWIM gossip interval (memberlist LAN: 200 ms); scales the default query timeout."""
    query_timeout_mult: int = 16
    """Multiplier of the default query timeout (see module docstring)."""
    user_event_size_limit: int = 512
    """Max bytes of name + payload of a user event."""
    query_size_limit: int = 1024
    """Max bytes of name + payload of a query."""
    query_response_size_limit: int = 1024
    """Max bytes of a query response payload."""

    def validate(self) -> None:
        for f in ("event_buffer", "query_buffer", "query_timeout_mult"):
            if getattr(self, f) < 1:
                raise AutodiscoveryConfigError(f"{f} must be >= 1")
        for f in ("coalesce_period_s", "quiescent_period_s"):
            if getattr(self, f) < 0:
                raise AutodiscoveryConfigError(f"{f} must be >= 0")
        if self.gossip_interval_s <= 0:
            raise AutodiscoveryConfigError("gossip_interval_s must be > 0")
        for f in ("user_event_size_limit", "query_size_limit", "query_response_size_limit"):
            if getattr(self, f) < 1:
                raise AutodiscoveryConfigError(f"{f} must be >= 1")


# ---------------------------------------------------------------- wire structs


class SerfUserEvent(Message):
    """Serf ``messageUserEvent``."""

    ltime: int
    name: str
    payload: bytes = b""
    coalesce: bool = True


class SerfQuery(Message):
    """Serf ``messageQuery``; responses go directly to ``addr:port`` of the origin ``origin``."""

    ltime: int
    id: int
    origin: str
    addr: str
    port: int
    timeout_s: float
    name: str
    payload: bytes = b""
    filter_nodes: list[str] = []
    filter_tags: dict[str, str] = {}
    """Tag name -> regular expression (Serf semantics: ``re.search``)."""
    request_ack: bool = False
    relay_factor: int = 0


class SerfQueryResponse(Message):
    """Serf ``messageQueryResponse``."""

    ltime: int
    id: int
    node: str
    ack: bool = False
    payload: bytes = b""


class SerfMemberUpdate(Message):
    """A member's intent (tags/status change), ordered by the member clock."""

    ltime: int
    name: str
    addr: str
    port: int
    tags: dict[str, str] = {}
    status: str = MemberStatus.ALIVE.value


# ---------------------------------------------------------------- actions and state


@dataclass(frozen=True)
class DeliverEvent:
    """Action: hand a user event to the application (in Lamport order within a window)."""

    event: SerfUserEvent


@dataclass(frozen=True)
class DeliverQuery:
    """Action: the application may answer with ``SerfCore.respond(this, payload, now)`` before ``deadline``."""

    query: SerfQuery
    deadline: float


@dataclass(frozen=True)
class Rebroadcast:
    """Action: gossip ``message`` on the SWIM dissemination channel."""

    message: Message


@dataclass(frozen=True)
class SendResponse:
    """Action: send ``response`` directly (not gossiped) to the query origin."""

    response: SerfQueryResponse
    addr: str
    port: int


@dataclass(frozen=True)
class MemberChanged:
    member: SerfMember


Action = DeliverEvent | DeliverQuery | Rebroadcast | SendResponse | MemberChanged


@dataclass(frozen=True)
class SerfMember:
    name: str
    addr: str
    port: int
    tags: dict[str, str]
    status: MemberStatus
    ltime: int

    def as_dict(self) -> dict[str, object]:
        return record(self, exclude=("ltime",), tags=dict(self.tags))


@dataclass
class QueryState:
    """The origin's view of one query: acks and responses collected until ``deadline``."""

    id: int
    ltime: int
    name: str
    deadline: float
    request_ack: bool
    acks: set[str] = field(default_factory=set)
    responses: dict[str, bytes] = field(default_factory=dict)
    late: int = 0

    def on_response(self, resp: SerfQueryResponse, now: float) -> bool:
        """Record one response; returns False if it is late, foreign or a duplicate."""
        if resp.id != self.id or resp.ltime != self.ltime:
            return False
        if now >= self.deadline:
            self.late += 1
            return False
        if resp.ack:
            if not self.request_ack or resp.node in self.acks:
                return False
            self.acks.add(resp.node)
            return True
        if resp.node in self.responses:
            return False
        self.responses[resp.node] = resp.payload
        return True

    def timed_out(self, now: float) -> bool:
        return now >= self.deadline

    def result(self, now: float) -> dict[str, object]:
        """Response body; payloads are shown as UTF-8 text (invalid bytes replaced)."""
        return {
            "query_id": self.id,
            "responses": [
                {"node": n, "payload": p.decode("utf-8", "replace")} for n, p in sorted(self.responses.items())
            ],
            "acks": len(self.acks),
            "timed_out": self.timed_out(now),
        }


class _Ring:
    """Serf's recent-message buffer: slot ``ltime % size`` holds the keys seen at that ltime."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._slots: list[tuple[int, set[object]] | None] = [None] * size

    def too_old(self, ltime: int, clock_now: int) -> bool:
        return clock_now > self._size and ltime < clock_now - self._size

    def add(self, ltime: int, key: object) -> bool:
        """True if (ltime, key) is new."""
        i = ltime % self._size
        slot = self._slots[i]
        if slot is None or slot[0] != ltime:
            self._slots[i] = (ltime, {key})
            return True
        if key in slot[1]:
            return False
        slot[1].add(key)
        return True


class SerfCore:
    """Serf event/query/member state machine. Feed it ``receive(msg, now)`` and ``tick(now)``."""

    def __init__(
        self,
        config: SerfConfig,
        *,
        node_name: str,
        addr: str,
        port: int,
        rng: random.Random,
        tags: dict[str, str] | None = None,
    ) -> None:
        config.validate()
        if not node_name:
            raise AutodiscoveryConfigError("node_name must not be empty")
        self.config = config
        self.node_name = node_name
        """This member's name (Serf's NodeName): the node id, unique in the cluster."""
        self.clock = LamportClock()
        self.event_clock = LamportClock()
        self.query_clock = LamportClock()
        self._rng = rng
        self._events = _Ring(config.event_buffer)
        self._queries_seen = _Ring(config.query_buffer)
        self._members: dict[str, SerfMember] = {
            node_name: SerfMember(node_name, addr, port, dict(tags or {}), MemberStatus.ALIVE, 0)
        }
        self._queries: dict[tuple[int, int], QueryState] = {}
        self._answered: set[tuple[int, int]] = set()
        self._window: dict[object, list[SerfUserEvent]] = {}
        self._window_open: float | None = None
        self._window_last: float = 0.0
        self.stats = {
            "events_received": 0,
            "events_duplicate": 0,
            "events_too_old": 0,
            "queries_received": 0,
            "queries_duplicate": 0,
            "queries_too_old": 0,
        }

    # -- members

    @property
    def me(self) -> SerfMember:
        return self._members[self.node_name]

    def members(self) -> list[dict[str, object]]:
        return [m.as_dict() for m in sorted(self._members.values(), key=lambda m: m.name)]

    def set_tags(self, tags: dict[str, str]) -> list[Action]:
        """Replace this node's tags and gossip the change."""
        return self._update_self(tags=dict(tags))

    def leave(self) -> list[Action]:
        """Announce a graceful leave."""
        return self._update_self(status=MemberStatus.LEAVING)

    def _update_self(self, *, tags: dict[str, str] | None = None, status: MemberStatus | None = None) -> list[Action]:
        me = self.me
        ltime = self.clock.increment()
        new = SerfMember(
            me.name, me.addr, me.port, me.tags if tags is None else tags, me.status if status is None else status, ltime
        )
        self._members[me.name] = new
        msg = SerfMemberUpdate(
            ltime=ltime, name=new.name, addr=new.addr, port=new.port, tags=new.tags, status=new.status.value
        )
        return [MemberChanged(new), Rebroadcast(msg)]

    def member_joined(self, name: str, addr: str, port: int, tags: dict[str, str] | None = None) -> list[Action]:
        """A member SWIM reports alive; known members keep their (clock-ordered) tags."""
        m = self._members.get(name)
        if m is not None:
            return self.set_member_status(name, MemberStatus.ALIVE)
        new = SerfMember(name, addr, port, dict(tags or {}), MemberStatus.ALIVE, 0)
        self._members[name] = new
        return [MemberChanged(new)]

    def set_member_status(self, name: str, status: MemberStatus) -> list[Action]:
        """Status observed by SWIM (e.g. failed); does not move the member clock."""
        m = self._members.get(name)
        if m is None or m.status is status:
            return []
        new = SerfMember(m.name, m.addr, m.port, m.tags, status, m.ltime)
        self._members[name] = new
        return [MemberChanged(new)]

    def _on_member_update(self, msg: SerfMemberUpdate) -> list[Action]:
        self.clock.witness(msg.ltime)
        old = self._members.get(msg.name)
        if msg.name == self.node_name or (old is not None and old.ltime >= msg.ltime):
            return []
        try:
            status = MemberStatus(msg.status)
        except ValueError:
            return []
        new = SerfMember(msg.name, msg.addr, msg.port, dict(msg.tags), status, msg.ltime)
        self._members[msg.name] = new
        return [MemberChanged(new), Rebroadcast(msg)]

    # -- user events

    def user_event(
        self, name: str, payload: bytes, now: float, *, coalesce: bool = True
    ) -> tuple[dict[str, object], list[Action]]:
        """Send a user event; returns ``{"event_sent": True, "ltime": n}`` and the actions."""
        if len(name.encode()) + len(payload) > self.config.user_event_size_limit:
            raise SerfSizeLimitExceeded(f"user event is over the {self.config.user_event_size_limit}-byte limit")
        ltime = self.event_clock.time()
        self.event_clock.increment()
        msg = SerfUserEvent(ltime=ltime, name=name, payload=payload, coalesce=coalesce)
        actions = self._on_user_event(msg, now)
        assert actions, "a fresh local event is never a duplicate"
        return {"event_sent": True, "ltime": ltime}, actions

    def _on_user_event(self, e: SerfUserEvent, now: float) -> list[Action]:
        self.event_clock.witness(e.ltime)
        if self._events.too_old(e.ltime, self.event_clock.time()):
            self.stats["events_too_old"] += 1
            return []
        if not self._events.add(e.ltime, (e.name, e.payload)):
            self.stats["events_duplicate"] += 1
            return []
        self.stats["events_received"] += 1
        out: list[Action] = [Rebroadcast(e)]
        if self.config.coalesce_period_s == 0:
            out.append(DeliverEvent(e))
            return out
        key: object = e.name if e.coalesce else (e.name, e.ltime, e.payload)
        held = self._window.get(key)
        if held is None or held[0].ltime < e.ltime:
            self._window[key] = [e]
        elif held[0].ltime == e.ltime:
            held.append(e)
        # else: an older event of a coalesced name is superseded by the one held
        if self._window_open is None:
            self._window_open = now
        self._window_last = now
        return out

    def _flush_deadline(self) -> float | None:
        if self._window_open is None:
            return None
        return min(
            self._window_open + self.config.coalesce_period_s, self._window_last + self.config.quiescent_period_s
        )

    def next_deadline(self) -> float | None:
        """When ``tick`` must run next (event window flush or a query deadline)."""
        cands = [q.deadline for q in self._queries.values()]
        flush = self._flush_deadline()
        if flush is not None:
            cands.append(flush)
        return min(cands) if cands else None

    def tick(self, now: float) -> list[Action]:
        """Deliver a due event window; forget queries past their deadline."""
        for k in [k for k, q in self._queries.items() if q.timed_out(now)]:
            del self._queries[k]
        flush = self._flush_deadline()
        if flush is None or now < flush:
            return []
        events = [e for held in self._window.values() for e in held]
        events.sort(key=lambda e: (e.ltime, e.name, e.payload))
        self._window.clear()
        self._window_open = None
        return [DeliverEvent(e) for e in events]

    # -- queries

    def default_query_timeout(self) -> float:
        n = sum(1 for m in self._members.values() if m.status is MemberStatus.ALIVE)
        return self.config.gossip_interval_s * self.config.query_timeout_mult * math.ceil(math.log10(n + 1))

    def start_query(
        self,
        name: str,
        payload: bytes,
        now: float,
        *,
        timeout_s: float | None = None,
        request_ack: bool = False,
        filter_nodes: list[str] | None = None,
        filter_tags: dict[str, str] | None = None,
        relay_factor: int = 0,
    ) -> tuple[QueryState, list[Action]]:
        """Start a query; feed responses to ``receive`` (or ``QueryState.on_response``)."""
        if len(name.encode()) + len(payload) > self.config.query_size_limit:
            raise SerfSizeLimitExceeded(f"query is over the {self.config.query_size_limit}-byte limit")
        for expr in (filter_tags or {}).values():
            try:
                re.compile(expr)
            except re.error as exc:
                raise SerfError(f"bad tag filter {expr!r}: {exc}") from exc
        timeout = self.default_query_timeout() if timeout_s is None else timeout_s
        ltime = self.query_clock.time()
        self.query_clock.increment()
        me = self.me
        q = SerfQuery(
            ltime=ltime,
            id=self._rng.getrandbits(32),
            origin=me.name,
            addr=me.addr,
            port=me.port,
            filter_nodes=list(filter_nodes or []),
            filter_tags=dict(filter_tags or {}),
            request_ack=request_ack,
            relay_factor=relay_factor,
            timeout_s=timeout,
            name=name,
            payload=payload,
        )
        state = QueryState(id=q.id, ltime=ltime, name=name, deadline=now + timeout, request_ack=request_ack)
        self._queries[(ltime, q.id)] = state
        return state, self._on_query(q, now)

    def _matches(self, q: SerfQuery) -> bool:
        me = self.me
        if q.filter_nodes and me.name not in q.filter_nodes:
            return False
        for tag, expr in q.filter_tags.items():
            value = me.tags.get(tag)
            try:
                if value is None or re.search(expr, value) is None:
                    return False
            except re.error:
                return False
        return True

    def _on_query(self, q: SerfQuery, now: float) -> list[Action]:
        self.query_clock.witness(q.ltime)
        if self._queries_seen.too_old(q.ltime, self.query_clock.time()):
            self.stats["queries_too_old"] += 1
            return []
        if not self._queries_seen.add(q.ltime, q.id):
            self.stats["queries_duplicate"] += 1
            return []
        self.stats["queries_received"] += 1
        out: list[Action] = [Rebroadcast(q)]
        if not self._matches(q):
            return out
        if q.request_ack:
            ack = SerfQueryResponse(ltime=q.ltime, id=q.id, node=self.node_name, ack=True)
            out.append(SendResponse(ack, q.addr, q.port))
        out.append(DeliverQuery(q, now + q.timeout_s))
        return out

    def respond(self, delivered: DeliverQuery, payload: bytes, now: float) -> SendResponse:
        """Answer a delivered query once, before its deadline."""
        q = delivered.query
        if now >= delivered.deadline:
            raise SerfError("response is past the deadline")
        if len(payload) > self.config.query_response_size_limit:
            raise SerfSizeLimitExceeded(f"response is over the {self.config.query_response_size_limit}-byte limit")
        key = (q.ltime, q.id)
        if key in self._answered:
            raise SerfError("query already answered")
        self._answered.add(key)
        if len(self._answered) > 4 * self.config.query_buffer:
            self._answered = {k for k in self._answered if k[0] >= q.ltime - self.config.query_buffer}
        resp = SerfQueryResponse(ltime=q.ltime, id=q.id, node=self.node_name, payload=payload)
        return SendResponse(resp, q.addr, q.port)

    def _on_response(self, resp: SerfQueryResponse, now: float) -> list[Action]:
        state = self._queries.get((resp.ltime, resp.id))
        if state is not None:
            state.on_response(resp, now)
        return []

    # -- entry point

    def receive(self, msg: Message, now: float) -> list[Action]:
        """Handle one Serf message from gossip (or a direct response); returns actions."""
        if isinstance(msg, SerfUserEvent):
            return self._on_user_event(msg, now)
        if isinstance(msg, SerfQuery):
            return self._on_query(msg, now)
        if isinstance(msg, SerfQueryResponse):
            return self._on_response(msg, now)
        if isinstance(msg, SerfMemberUpdate):
            return self._on_member_update(msg)
        raise SerfError(f"not a Serf message: {type(msg).__name__}")
