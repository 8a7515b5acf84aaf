"""SWIM membership with Lifeguard, as a sans-I/O state machine.

Theory of operation. SWIM (Das, Gupta, Motivala, "SWIM: Scalable
Weakly-consistent Infection-style Process Group Membership Protocol", DSN 2002)
separates failure detection from dissemination:

* Each protocol period (``probe_interval``) a node pings the next member of a
  shuffled round-robin list. Without an ack within ``probe_timeout`` it asks
  ``indirect_checks`` random members to ping the target for it (ping-req). If
  no ack, direct or relayed, arrives by the end of the period the target
  becomes Suspect.
* A Suspect member that does not refute in time is declared Dead. A member
  refutes by re-announcing itself Alive with a higher incarnation number; an
  update about a node is only accepted if its incarnation is at least as new
  (Alive needs a strictly higher one to override Suspect/Dead/Left).
* Updates (Alive/Suspect/Dead/Left) are piggybacked on every probe message and
  pushed to ``gossip_nodes`` random members every ``gossip_interval``, each
  ``retransmit_mult * ceil(log10(n+1))`` times (``broadcast.py``).

Lifeguard (Dadgar, Phillips, Currey, 2018) adds three local-health
refinements, all switched off by ``SwimConfig.lifeguard=False``:

* LHM (``awareness.py``): failed probes whose relays also stay silent (missing
  nacks), and refutations, raise a local score that stretches our own probe
  interval and timeout, so a slow node stops accusing healthy ones.
* LHA-Suspicion (``suspicion.py``): a suspicion starts at a long timeout that
  shrinks with independent confirmations from other members.
* Buddy system: a ping to a Suspect member carries the suspicion, so the
  member learns it at once and can refute.

As in hashicorp/memberlist, join uses a push-pull full-state exchange
(``SwimPushPull``). Anti-entropy (periodic push-pull, reconnects) starts with a
digest instead -- one 64-bit hash per bucket of about ``digest_bucket_size``
members -- and only the buckets whose hashes differ are pushed and pulled, so a
converged exchange costs O(n / bucket size) * 8 bytes rather than O(n) * ~90
(``SwimConfig.digest_bucket_size`` explains the choice; ``digest_bucket_size=0``
restores memberlist's full-state exchange). Beyond memberlist, so that both sides of a healed
partition merge without an operator rejoin (memberlist stops contacting Dead
members; Serf adds reconnects on top):

* reconnect (Serf's ``reconnect_interval``): every ``reconnect_interval``, with
  probability dead/alive, push-pull with one random Dead member;
* a message from a member we hold Dead proves it is up and unaware: push-pull
  with it at once (it refutes; its reply carries its new incarnation);
* a push-pull reply carries the state *after* merging the request.

And, with Lifeguard, a node whose timers fire late (it was stalled) raises its
LHM and defers probe verdicts and suspicion expiries by ``probe_timeout``, so
the ack or refutation waiting unread in its inbox is read first.

I/O contract. The node never reads a clock or touches the network: the
adapter calls ``receive(from_id, msg, now)`` for each arriving message and
``tick(now)`` whenever ``next_deadline()`` has passed (early or extra ticks are
harmless), then drains ``outbox()`` -- a list of ``(to_id, message)`` -- and
``drain_events()``. Members are addressed by node id; the adapter maps ids to
addresses with the ``tcp_address`` / ``quic_address`` of ``members()``.
Any transport works: messages are independent datagrams that may be lost,
delayed or reordered.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import math
import random
import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from rustyray.membership.swim.awareness import Awareness
from rustyray.membership.swim.broadcast import BroadcastQueue
from rustyray.membership.swim.config import MAX_DIGEST_BUCKETS, SwimConfig, retransmit_limit
from rustyray.membership.swim.errors import SwimUnexpectedMessage
from rustyray.membership.swim.events import (
    MemberInfo,
    MemberState,
    NodeFailed,
    NodeJoined,
    NodeLeft,
    NodeRecovered,
    NodeSuspected,
    NodeUpdated,
    SwimEvent,
)
from rustyray.membership.swim.messages import (
    SwimAck,
    SwimAlive,
    SwimDead,
    SwimGossip,
    SwimLeft,
    SwimMemberState,
    SwimNack,
    SwimPing,
    SwimPingReq,
    SwimPushPull,
    SwimSuspect,
)
from rustyray.membership.swim.suspicion import Suspicion
from rustyray.protocol.messages import encode_message

__all__ = ["SwimNode", "SwimRoster"]

_ALIVE = MemberState.ALIVE
_SUSPECT = MemberState.SUSPECT
_DEAD = MemberState.DEAD
_LEFT = MemberState.LEFT
_STATE_OF = {s.value: s for s in MemberState}

# timer kinds
_T_PROBE = 0
_T_PROBE_TIMEOUT = 1
_T_RELAY = 2
_T_SUSPICION = 3
_T_GOSSIP = 4
_T_PUSH_PULL = 5
_T_JOIN = 6
_T_RECONNECT = 7


class SwimRoster:
    """An immutable membership snapshot that many nodes can share (copy-on-access).

    Bootstrapping every node of a large simulated cluster with its own copy of
    n members costs O(n^2) memory; a roster is stored once and each node only
    materialises the members it touches. A node id in the roster that equals
    the node's own id is ignored by that node.
    """

    __slots__ = ("ids", "states")

    def __init__(self, states: Iterable[SwimMemberState]) -> None:
        self.states: dict[str, SwimMemberState] = {s.node_id: s for s in states}
        self.ids: tuple[str, ...] = tuple(self.states)


class _Member:
    __slots__ = (
        "incarnation",
        "meta",
        "node_id",
        "quic_address",
        "state",
        "state_change",
        "suspecters",
        "suspicion",
        "tcp_address",
    )

    def __init__(
        self,
        node_id: str,
        incarnation: int,
        state: MemberState,
        tcp_address: str,
        quic_address: str,
        meta: Mapping[str, str],
        now: float,
    ) -> None:
        self.node_id = node_id
        self.incarnation = incarnation
        self.state = state
        self.tcp_address = tcp_address
        self.quic_address = quic_address
        self.meta = meta
        self.state_change = now
        self.suspicion: Suspicion | None = None
        self.suspecters: set[str] | None = None


class _Probe:
    __slots__ = ("acked", "expected_nacks", "indirect", "nacks", "seq", "target")

    def __init__(self, target: str, seq: int) -> None:
        self.target = target
        self.seq = seq
        self.acked = False
        self.indirect = False
        self.expected_nacks = 0
        self.nacks = 0


class SwimNode:
    """One member's SWIM/Lifeguard state machine (see the module docstring for the I/O contract)."""

    def __init__(
        self,
        node_id: str,
        config: SwimConfig | None = None,
        *,
        rng: random.Random,
        now: float = 0.0,
        incarnation: int = 0,
        tcp_address: str = "",
        quic_address: str = "",
        meta: Mapping[str, str] | None = None,
        roster: SwimRoster | None = None,
    ) -> None:
        """``incarnation``: start above the one the cluster may remember when restarting (a stale
        Suspect/Dead about us is refuted anyway). ``roster``: members known from the start (bootstrap
        from a trusted snapshot, e.g. a simulator or a Raft-held membership) without a join."""
        self.node_id = node_id
        self.config = cfg = (config or SwimConfig()).validate()
        self._rng = rng
        self.incarnation = incarnation
        self.tcp_address = tcp_address
        self.quic_address = quic_address
        self.meta: dict[str, str] = dict(meta or {})
        self._lifeguard = cfg.lifeguard
        self._awareness = Awareness(cfg.awareness_max_multiplier if cfg.lifeguard else 1)
        # Lifeguard: a timer running this late (s) means we were stalled (see ``_defer_verdict``).
        self._late_after = cfg.probe_timeout / 5 if cfg.lifeguard else math.inf
        self._grace_until = -math.inf
        self._bq = BroadcastQueue()
        self._out: list[tuple[str, Any]] = []
        self._events: list[SwimEvent] = []
        # member table: materialised members + a shared roster for the rest
        self._members: dict[str, _Member] = {}
        self._dead: dict[str, None] = {}  # ids we hold Dead (ordered set), for reconnect attempts
        self._nudged: dict[str, float] = {}  # Dead member -> when we last push-pulled it on hearing from it
        self._roster = roster
        self._roster_ids: tuple[str, ...] = roster.ids if roster is not None else ()
        self._extra_ids: list[str] = []
        self._self_in_roster = roster is not None and node_id in roster.states
        # probe round-robin state
        self._probe: _Probe | None = None
        self._round_pos = 0
        self._round_len = 0
        self._round_offset = 0
        self._round_stride = 1
        self._round_extras: list[str] = []
        self._relays: dict[int, tuple[str, int, bool]] = {}
        self._seq = 0
        # timers: heap of (deadline, tiebreak, kind, key); stale entries are skipped lazily
        self._timers: list[tuple[float, int, int, Any]] = []
        self._timer_seq = 0
        self._tokens = [0] * 8
        self._gossip_armed = False
        self._gossip_phase = rng.uniform(0.0, cfg.gossip_interval)
        self._leaving = False
        # bumped on every change of a member's (incarnation, state), ours included: keys the digest cache
        self._version = 0
        self._digest_cache: tuple[int, int, bytes] | None = None
        self._joined = roster is not None
        self._join_seeds: list[str] = []
        self._arm(_T_PROBE, now + rng.uniform(0.0, cfg.probe_interval))
        if cfg.push_pull_interval > 0:
            self._arm(_T_PUSH_PULL, now + rng.uniform(0.0, cfg.push_pull_period(self.num_members)))
        if cfg.reconnect_interval > 0:
            self._arm(_T_RECONNECT, now + rng.uniform(0.0, cfg.reconnect_interval))

    # ------------------------------------------------------------------ public API

    @property
    def num_members(self) -> int:
        """Known members including ourselves and Dead/Left ones (memberlist's estimate of n)."""
        n = len(self._roster_ids) + len(self._extra_ids)
        return n if self._self_in_roster else n + 1

    @property
    def awareness(self) -> int:
        """Current local health multiplier (1 = healthy)."""
        return self._awareness.multiplier

    @property
    def leaving(self) -> bool:
        return self._leaving

    @property
    def left(self) -> bool:
        """``leave()`` was called and our Left update has been sent its full retransmit count."""
        return self._leaving and self._bq.pending(self.node_id) is None

    @property
    def joined(self) -> bool:
        """A seed answered our join (or we were built with a roster)."""
        return self._joined

    def suspicion_timeout(self) -> float:
        """Current min suspicion timeout in seconds (``suspect_timeout_ms`` of the status API)."""
        return self.config.suspicion_min(self.num_members)

    def join(self, seed_members: Iterable[str], now: float) -> None:
        """Send our state to each seed (push-pull join); retried every ``join_retry_interval`` until one
        answers. A seed id only has to be routable by the adapter: the seed's real id is learnt from
        its reply, so a placeholder such as ``"seed:host:port"`` works."""
        self._join_seeds = [s for s in seed_members if s != self.node_id]
        if not self._join_seeds:
            self._joined = True
            return
        self._joined = False
        self._send_join(now)

    def leave(self, now: float) -> None:
        """Announce a graceful leave; stop probing. Keep ticking until ``left`` before shutting down."""
        if self._leaving:
            return
        self._leaving = True
        self._version += 1
        self._queue(self.node_id, SwimLeft(node_id=self.node_id, incarnation=self.incarnation), now)

    def set_meta(
        self, now: float, *, tcp_address: str | None = None, quic_address: str | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> None:
        """Change our addresses/metadata and announce them at a new incarnation."""
        if tcp_address is not None:
            self.tcp_address = tcp_address
        if quic_address is not None:
            self.quic_address = quic_address
        if meta is not None:
            self.meta = dict(meta)
        self.incarnation += 1
        self._version += 1
        self._queue(self.node_id, self._self_alive(), now)

    def outbox(self) -> list[tuple[str, Any]]:
        """Drain the messages to send, as ``(to_id, message)``."""
        out = self._out
        self._out = []
        return out

    def drain_events(self) -> list[SwimEvent]:
        ev = self._events
        self._events = []
        return ev

    def next_deadline(self) -> float | None:
        """Earliest time ``tick`` has work to do, or None."""
        timers = self._timers
        while timers:
            d, _, kind, key = timers[0]
            if self._live(kind, key, d):
                return d
            heapq.heappop(timers)
        return None

    def tick(self, now: float) -> None:
        """Run every timer due at or before ``now``."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            d, _, kind, key = heapq.heappop(timers)
            if not self._live(kind, key, d):
                continue
            if now - d > self._late_after and self._grace_until < now:
                # we did not run for a while: evidence against ourselves (Lifeguard LHM)
                self._grace_until = now + self.config.probe_timeout
                self._awareness.apply_delta(1)
            if d < self._grace_until and self._defer_verdict(kind, key):
                continue
            if kind == _T_PROBE:
                self._on_probe_period(now)
            elif kind == _T_PROBE_TIMEOUT:
                self._on_probe_timeout(now)
            elif kind == _T_RELAY:
                self._on_relay_timeout(key)
            elif kind == _T_SUSPICION:
                self._on_suspicion_timeout(key, now)
            elif kind == _T_GOSSIP:
                self._on_gossip(now, d)
            elif kind == _T_PUSH_PULL:
                self._on_push_pull(now)
            elif kind == _T_JOIN and not self._joined:
                self._send_join(now)
            elif kind == _T_RECONNECT:
                self._on_reconnect(now)

    def _defer_verdict(self, kind: int, key: Any) -> bool:
        """Lifeguard local health, after a timer fired late (we were stalled: GC pause, starved
        CPU): a probe verdict or a suspicion expiry reached while we were not running is not
        evidence about the peer -- its ack or refutation may be waiting unread in our inbox, behind
        stale confirmations. Wait until ``_grace_until`` (``probe_timeout`` after we woke) so the
        inbox is read first. True if the timer was re-armed instead of run."""
        grace = self._grace_until
        if kind == _T_PROBE:
            p = self._probe
            if p is None or p.acked:
                return False
            self._arm(_T_PROBE, grace)
            return True
        if kind == _T_SUSPICION:
            m = self._members[key]
            assert m.suspicion is not None
            m.suspicion.deadline = grace
            self._push(_T_SUSPICION, key, grace)
            return True
        return False

    handle_timer = tick

    def receive(self, from_id: str, msg: Any, now: float) -> None:
        """Handle one message from ``from_id``."""
        t = type(msg)
        if t is SwimPushPull:
            self._on_push_pull_msg(from_id, msg, now)
            return
        if from_id in self._dead:
            self._on_message_from_dead(from_id, now)
        if t in _UPDATE_TYPES:
            self._apply(msg, now)
            return
        if t not in _PROBE_TYPES:
            raise SwimUnexpectedMessage(f"not a SWIM message: {t.__name__}")
        for u in msg.updates:
            self._apply(u, now)
        if t is SwimPing:
            if msg.target == self.node_id:
                self._out.append((from_id, SwimAck(seq=msg.seq, updates=self._piggyback(now))))
        elif t is SwimAck:
            self._on_ack(msg.seq)
        elif t is SwimPingReq:
            self._on_ping_req(from_id, msg, now)
        elif t is SwimNack:
            p = self._probe
            if p is not None and p.seq == msg.seq:
                p.nacks += 1
        # SwimGossip: updates only

    def member(self, node_id: str) -> MemberInfo | None:
        if node_id == self.node_id:
            return self._self_info()
        m = self._get(node_id)
        return None if m is None else _info(m)

    def members(self) -> list[MemberInfo]:
        """Every known member including ourselves, sorted by id (O(n))."""
        out = [self._self_info()]
        for mid in self._all_ids():
            if mid == self.node_id:
                continue
            m = self._members.get(mid)
            if m is not None:
                out.append(_info(m))
            else:
                st = self._roster.states[mid]  # type: ignore[union-attr]
                out.append(
                    MemberInfo(st.node_id, _STATE_OF[st.state], st.incarnation, st.tcp_address,
                               st.quic_address, st.meta, 0, 0.0)
                )
        out.sort(key=lambda i: i.node_id)
        return out

    def state_of(self, node_id: str) -> MemberState | None:
        """State of ``node_id`` as we see it, without materialising roster entries."""
        if node_id == self.node_id:
            return _LEFT if self._leaving else _ALIVE
        m = self._members.get(node_id)
        if m is not None:
            return m.state
        if self._roster is not None:
            st = self._roster.states.get(node_id)
            if st is not None:
                return _STATE_OF[st.state]
        return None

    def status(self) -> dict[str, Any]:
        """NETWORKING-032 body: protocol period, suspicion timeout and per-member suspect counts."""
        return {
            "protocol_period_ms": round(self.config.probe_interval * 1000),
            "suspect_timeout_ms": round(self.suspicion_timeout() * 1000),
            "members": [
                {"node": m.node_id, "status": m.state.value, "suspect_count": m.suspect_count}
                for m in self.members()
            ],
        }

    def gossip_state(self) -> dict[str, Any]:
        """NETWORKING-025 body: members with state and incarnation, gossip interval and fanout."""
        return {
            "members": [
                {"node": m.node_id, "state": m.state.value, "incarnation": m.incarnation}
                for m in self.members()
            ],
            "gossip_interval_ms": round(self.config.gossip_interval * 1000),
            "fanout": self.config.gossip_nodes,
        }

    # ------------------------------------------------------------------ timers

    def _push(self, kind: int, key: Any, deadline: float) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (deadline, self._timer_seq, kind, key))

    def _arm(self, kind: int, deadline: float) -> None:
        """(Re)arm a singleton timer; earlier entries of that kind become stale."""
        self._tokens[kind] += 1
        self._push(kind, self._tokens[kind], deadline)

    def _live(self, kind: int, key: Any, deadline: float) -> bool:
        if kind == _T_SUSPICION:
            m = self._members.get(key)
            return m is not None and m.suspicion is not None and m.suspicion.deadline == deadline
        if kind == _T_RELAY:
            return key in self._relays
        if kind == _T_PROBE_TIMEOUT:
            p = self._probe
            return p is not None and p.seq == key and not p.acked and not p.indirect
        return self._tokens[kind] == key

    # ------------------------------------------------------------------ member table

    def _get(self, node_id: str) -> _Member | None:
        m = self._members.get(node_id)
        if m is None and self._roster is not None and node_id != self.node_id:
            st = self._roster.states.get(node_id)
            if st is not None:
                m = _Member(st.node_id, st.incarnation, _STATE_OF[st.state], st.tcp_address,
                            st.quic_address, st.meta, 0.0)
                self._members[node_id] = m
                if m.state is _DEAD:
                    self._dead[node_id] = None
        return m

    def _all_ids(self) -> Iterable[str]:
        yield from self._roster_ids
        yield from self._extra_ids

    def _id_at(self, i: int) -> str:
        r = len(self._roster_ids)
        return self._roster_ids[i] if i < r else self._extra_ids[i - r]

    def _random_members(self, k: int, exclude: str | None, accept: Any) -> list[_Member]:
        """Up to ``k`` distinct random members passing ``accept`` (memberlist ``kRandomNodes``)."""
        total = len(self._roster_ids) + len(self._extra_ids)
        out: list[_Member] = []
        if total == 0 or k <= 0:
            return out
        seen: set[str] = set()
        rand = self._rng.random
        for _ in range(3 * total):
            mid = self._id_at(int(rand() * total))
            if mid == self.node_id or mid == exclude or mid in seen:
                continue
            seen.add(mid)
            m = self._get(mid)
            if m is not None and accept(m):
                out.append(m)
                if len(out) >= k:
                    break
        return out

    def _next_probe_target(self) -> _Member | None:
        """Shuffled round-robin (memberlist): every member is probed once per round."""
        for _ in range(2):
            while self._round_pos < self._round_len:
                i = self._round_pos
                self._round_pos += 1
                r = len(self._roster_ids)
                if i < r:
                    mid = self._roster_ids[(self._round_offset + i * self._round_stride) % r]
                else:
                    mid = self._round_extras[i - r]
                if mid == self.node_id:
                    continue
                m = self._get(mid)
                if m is not None and (m.state is _ALIVE or m.state is _SUSPECT):
                    return m
            self._new_round()
            if self._round_len == 0:
                return None
        return None

    def _new_round(self) -> None:
        r = len(self._roster_ids)
        rng = self._rng
        self._round_offset = rng.randrange(r) if r else 0
        stride = 1
        if r > 2:
            while True:
                stride = rng.randrange(1, r)
                if math.gcd(stride, r) == 1:
                    break
        self._round_stride = stride
        extras = list(self._extra_ids)
        rng.shuffle(extras)
        self._round_extras = extras
        self._round_len = r + len(extras)
        self._round_pos = 0

    # ------------------------------------------------------------------ dissemination

    def _queue(self, key: str, msg: Any, now: float) -> None:
        self._bq.queue(key, msg)
        if not self._gossip_armed:
            iv = self.config.gossip_interval
            phase = self._gossip_phase
            nxt = phase + math.ceil((now - phase) / iv) * iv
            if nxt <= now:
                nxt += iv
            self._gossip_armed = True
            self._arm(_T_GOSSIP, nxt)

    def _piggyback(self, now: float, reserved: int = 0, target: str = "") -> tuple[Any, ...]:
        """Updates for one message whose whole encoding must fit ``max_piggyback_bytes`` (a UDP
        packet, as memberlist fills one up to its budget and no more): the budget less the
        message's own fields (``_HEADER_BYTES`` + the ``target`` id) and ``reserved`` bytes."""
        if not self._bq:
            return ()
        limit = retransmit_limit(self.config.retransmit_mult, self.num_members)
        budget = self.config.max_piggyback_bytes - reserved - _HEADER_BYTES - len(target.encode())
        return self._bq.take(budget, limit)

    def _on_gossip(self, now: float, deadline: float) -> None:
        self._gossip_armed = False
        if not self._bq:
            return
        dead_time = self.config.gossip_to_the_dead_time

        def accept(m: _Member) -> bool:
            s = m.state
            return s is _ALIVE or s is _SUSPECT or (s is _DEAD and now - m.state_change <= dead_time)

        for m in self._random_members(self.config.gossip_nodes, None, accept):
            updates = self._piggyback(now)
            if not updates:
                break
            self._out.append((m.node_id, SwimGossip(updates=updates)))
        if self._bq:
            self._gossip_armed = True
            nxt = deadline + self.config.gossip_interval
            self._arm(_T_GOSSIP, nxt if nxt > now else now + self.config.gossip_interval)

    def _self_alive(self) -> SwimAlive:
        return SwimAlive(node_id=self.node_id, incarnation=self.incarnation, tcp_address=self.tcp_address,
                         quic_address=self.quic_address, meta=dict(self.meta))

    def _refute(self, accused_incarnation: int, now: float) -> None:
        self.incarnation = max(self.incarnation, accused_incarnation) + 1
        self._version += 1
        if self._lifeguard:
            self._awareness.apply_delta(1)
        alive = self._self_alive()
        self._queue(self.node_id, alive, now)
        # Also send it at once: a node that was stalled may stall again before its next gossip round,
        # and every moment the refutation waits brings the accusers' timeouts closer.
        for m in self._random_members(self.config.gossip_nodes, None, _probeable):
            self._out.append((m.node_id, SwimGossip(updates=(alive,))))

    # ------------------------------------------------------------------ failure detection

    def _on_probe_period(self, now: float) -> None:
        p = self._probe
        if p is not None and not p.acked:
            self._probe_failed(p, now)
        self._probe = None
        cfg = self.config
        self._arm(_T_PROBE, now + self._awareness.scale(cfg.probe_interval))
        if self._leaving:
            return
        m = self._next_probe_target()
        if m is None:
            return
        self._seq += 1
        p = self._probe = _Probe(m.node_id, self._seq)
        if self._lifeguard and m.state is _SUSPECT:
            # Buddy system: tell the suspect directly so it can refute at once.
            buddy = SwimSuspect(node_id=m.node_id, incarnation=m.incarnation, from_id=self.node_id)
            updates = (buddy, *self._piggyback(now, len(encode_message(buddy)) + 1, m.node_id))
        else:
            updates = self._piggyback(now, target=m.node_id)
        self._out.append((m.node_id, SwimPing(seq=p.seq, target=m.node_id, updates=updates)))
        self._push(_T_PROBE_TIMEOUT, p.seq, now + self._awareness.scale(cfg.probe_timeout))

    def _on_probe_timeout(self, now: float) -> None:
        p = self._probe
        assert p is not None and not p.acked
        p.indirect = True

        def accept(m: _Member) -> bool:
            return m.state is _ALIVE

        relays = self._random_members(self.config.indirect_checks, p.target, accept)
        nack = self._lifeguard
        for r in relays:
            req = SwimPingReq(seq=p.seq, target=p.target, nack=nack, updates=self._piggyback(now, target=p.target))
            self._out.append((r.node_id, req))
        p.expected_nacks = len(relays) if nack else 0

    def _probe_failed(self, p: _Probe, now: float) -> None:
        if self._lifeguard:
            if p.expected_nacks > 0:
                if p.nacks < p.expected_nacks:
                    self._awareness.apply_delta(p.expected_nacks - p.nacks)
            else:
                self._awareness.apply_delta(1)
        m = self._get(p.target)
        if m is not None and (m.state is _ALIVE or m.state is _SUSPECT):
            self._on_suspect(SwimSuspect(node_id=m.node_id, incarnation=m.incarnation, from_id=self.node_id),
                             now)

    def _on_ack(self, seq: int) -> None:
        p = self._probe
        if p is not None and p.seq == seq:
            if not p.acked:
                p.acked = True
                if not p.indirect and self._lifeguard:
                    self._awareness.apply_delta(-1)
            return
        relay = self._relays.pop(seq, None)
        if relay is not None:
            origin, origin_seq, _ = relay
            self._out.append((origin, SwimAck(seq=origin_seq)))

    def _on_ping_req(self, from_id: str, msg: SwimPingReq, now: float) -> None:
        if msg.target == self.node_id:
            self._out.append((from_id, SwimAck(seq=msg.seq)))
            return
        self._seq += 1
        self._relays[self._seq] = (from_id, msg.seq, msg.nack)
        updates = self._piggyback(now, target=msg.target)
        self._out.append((msg.target, SwimPing(seq=self._seq, target=msg.target, updates=updates)))
        # The nack must reach the asker before its verdict at one probe interval (= 2 probe timeouts
        # with our presets) after its ping, and its ping-req left one probe timeout after that ping:
        # a relay that waited a full probe timeout (as memberlist does) delivers every nack a few ms
        # late, so a healthy member probing a dead one blames itself (LHM +3 each time). Nack at 80 %
        # of the probe timeout, as swift-cluster-membership does (its PR #14).
        self._push(_T_RELAY, self._seq, now + 0.8 * self.config.probe_timeout)

    def _on_relay_timeout(self, seq: int) -> None:
        origin, origin_seq, nack = self._relays.pop(seq)
        if nack:
            self._out.append((origin, SwimNack(seq=origin_seq)))

    def _on_suspicion_timeout(self, node_id: str, now: float) -> None:
        m = self._members[node_id]
        assert m.state is _SUSPECT
        self._on_dead(SwimDead(node_id=node_id, incarnation=m.incarnation, from_id=self.node_id), now)

    # ------------------------------------------------------------------ updates

    def _apply(self, u: Any, now: float) -> None:
        t = type(u)
        if t is SwimAlive:
            self._on_alive(u, now, True)
        elif t is SwimSuspect:
            self._on_suspect(u, now)
        elif t is SwimDead:
            self._on_dead(u, now)
        elif t is SwimLeft:
            self._on_left(u, now)

    def _on_alive(self, a: SwimAlive, now: float, broadcast_new: bool) -> None:
        nid = a.node_id
        if nid == self.node_id:
            newer = a.incarnation > self.incarnation or (
                a.incarnation == self.incarnation
                and (a.tcp_address, a.quic_address, a.meta) != (self.tcp_address, self.quic_address, self.meta)
            )
            if newer and not self._leaving:
                self._refute(a.incarnation, now)
            return
        m = self._get(nid)
        if m is None:
            m = _Member(nid, a.incarnation, _ALIVE, a.tcp_address, a.quic_address, a.meta, now)
            self._members[nid] = m
            self._extra_ids.append(nid)
            self._version += 1
            self._events.append(NodeJoined(nid, now, a.incarnation, a.tcp_address, a.quic_address, a.meta))
            if broadcast_new:
                self._queue(nid, a, now)
            return
        if a.incarnation <= m.incarnation:
            return
        prev = m.state
        changed = (a.tcp_address, a.quic_address, a.meta) != (m.tcp_address, m.quic_address, m.meta)
        m.incarnation = a.incarnation
        self._version += 1
        m.tcp_address, m.quic_address, m.meta = a.tcp_address, a.quic_address, a.meta
        if prev is not _ALIVE:
            if nid in self._dead:
                del self._dead[nid]
                self._nudged.pop(nid, None)
            m.state = _ALIVE
            m.state_change = now
            m.suspicion = None
            m.suspecters = None
            cls = NodeJoined if prev is _LEFT else NodeRecovered
            self._events.append(cls(nid, now, a.incarnation, a.tcp_address, a.quic_address, a.meta))
        elif changed:
            self._events.append(NodeUpdated(nid, now, a.incarnation, a.tcp_address, a.quic_address, a.meta))
        self._queue(nid, a, now)

    def _on_suspect(self, s: SwimSuspect, now: float) -> None:
        nid = s.node_id
        if nid == self.node_id:
            if not self._leaving and s.incarnation >= self.incarnation:
                self._refute(s.incarnation, now)
            return
        m = self._get(nid)
        if m is None or s.incarnation < m.incarnation:
            return
        if m.suspicion is not None and s.incarnation == m.incarnation:
            assert m.suspecters is not None
            m.suspecters.add(s.from_id)
            if m.suspicion.confirm(s.from_id, now):
                if m.suspicion.deadline < now:  # min already elapsed: due now, not "late"
                    m.suspicion.deadline = now
                if m.suspicion.deadline < self._grace_until:  # just woke from a stall: read the inbox first
                    m.suspicion.deadline = self._grace_until
                self._push(_T_SUSPICION, nid, m.suspicion.deadline)
                self._queue(nid, s, now)
            return
        if m.state is not _ALIVE and not (m.state is _SUSPECT and s.incarnation > m.incarnation):
            # (A Suspect of a newer incarnation than the one we suspect means the member refuted
            # ours -- we missed its Alive -- and is suspected afresh: restart the timer there
            # rather than let the stale one, confirmed by the new accusers, expire early.
            # memberlist confirms the stale timer; that declared refuted members Dead.)
            return
        cfg = self.config
        n = self.num_members
        min_t = cfg.suspicion_min(n)
        if self._lifeguard:
            k = cfg.confirmations(n)
            max_t = cfg.suspicion_max_timeout_mult * min_t
        else:
            k, max_t = 0, min_t
        m.incarnation = s.incarnation
        m.state = _SUSPECT
        self._version += 1
        m.state_change = now
        m.suspecters = {s.from_id}
        m.suspicion = Suspicion(s.from_id, k, min_t, max_t, now)
        self._push(_T_SUSPICION, nid, m.suspicion.deadline)
        self._queue(nid, s, now)
        self._events.append(NodeSuspected(nid, now, s.incarnation, s.from_id))

    def _on_dead(self, d: SwimDead, now: float) -> None:
        nid = d.node_id
        if nid == self.node_id:
            if not self._leaving and d.incarnation >= self.incarnation:
                self._refute(d.incarnation, now)
            return
        m = self._get(nid)
        if m is None or d.incarnation < m.incarnation or m.state is _DEAD or m.state is _LEFT:
            return
        m.incarnation = d.incarnation
        m.state = _DEAD
        self._version += 1
        self._dead[nid] = None
        m.state_change = now
        m.suspicion = None
        self._queue(nid, d, now)
        self._events.append(NodeFailed(nid, now, d.incarnation, d.from_id))

    def _on_left(self, lv: SwimLeft, now: float) -> None:
        nid = lv.node_id
        if nid == self.node_id:
            if not self._leaving and lv.incarnation >= self.incarnation:
                self._refute(lv.incarnation, now)
            return
        m = self._get(nid)
        if m is None or lv.incarnation < m.incarnation or m.state is _LEFT:
            return
        # A Left overrides a Dead of the same incarnation: it is the more precise news.
        m.incarnation = lv.incarnation
        m.state = _LEFT
        self._version += 1
        self._dead.pop(nid, None)
        m.state_change = now
        m.suspicion = None
        m.suspecters = None
        self._queue(nid, lv, now)
        self._events.append(NodeLeft(nid, now, lv.incarnation))

    # ------------------------------------------------------------------ push-pull

    def _local_states(self, num_buckets: int = 0,
                      buckets: frozenset[int] | None = None) -> tuple[SwimMemberState, ...]:
        """Our membership (self first); with ``buckets``, only the members in those buckets of
        ``num_buckets`` (a partial push-pull)."""
        mask = num_buckets - 1
        me = self.node_id
        out = []
        if buckets is None or (member_bucket(me, mask) in buckets):
            out.append(SwimMemberState(
                node_id=me, incarnation=self.incarnation,
                state=(_LEFT if self._leaving else _ALIVE).value,
                tcp_address=self.tcp_address, quic_address=self.quic_address, meta=dict(self.meta),
            ))
        members = self._members
        roster = self._roster
        for mid in self._all_ids():
            if mid == me:
                continue
            if buckets is not None and member_bucket(mid, mask) not in buckets:
                continue
            m = members.get(mid)
            if m is None:
                out.append(roster.states[mid])  # type: ignore[union-attr]
            else:
                out.append(SwimMemberState(node_id=mid, incarnation=m.incarnation, state=m.state.value,
                                           tcp_address=m.tcp_address, quic_address=m.quic_address,
                                           meta=m.meta))
        return tuple(out)

    def digest(self, num_buckets: int) -> bytes:
        """Anti-entropy digest of our table in ``num_buckets`` buckets (a power of two): per bucket,
        the XOR of ``entry_hash`` over its live (Alive/Suspect) members, self included, as 8 bytes
        little-endian. Dead and Left members are left out: a member that joined after a death never
        learns of it (a remote Dead or Left about an unknown member is ignored), so hashing them
        would keep those buckets different forever; a member one side holds Dead and the other Alive
        still differs (it is in one hash only), and the exchange that follows carries every member of
        the bucket, Dead ones included. Cached until the table changes."""
        cache = self._digest_cache
        if cache is not None and cache[0] == self._version and cache[1] == num_buckets:
            return cache[2]
        mask = num_buckets - 1
        hashes = [0] * num_buckets
        me = self.node_id
        if not self._leaving:
            hashes[member_bucket(me, mask)] ^= entry_hash(me, self.incarnation, "Alive")
        members = self._members
        roster_states = self._roster.states if self._roster is not None else None
        for mid in self._all_ids():
            if mid == me:
                continue
            m = members.get(mid)
            if m is None:
                st = roster_states[mid]  # type: ignore[index]
                state, inc = st.state, st.incarnation
                if state != "Alive" and state != "Suspect":
                    continue
            else:
                if m.state is not _ALIVE and m.state is not _SUSPECT:
                    continue
                state, inc = m.state.value, m.incarnation
            hashes[member_bucket(mid, mask)] ^= entry_hash(mid, inc, state)
        out = struct.pack(f"<{num_buckets}Q", *hashes)
        self._digest_cache = (self._version, num_buckets, out)
        return out

    def _anti_entropy(self, to_id: str) -> None:
        """Start a push-pull with ``to_id``: a digest, or our full state with digests off."""
        nb = self.config.digest_buckets(self.num_members)
        if nb:
            self._out.append((to_id, SwimPushPull(digest=self.digest(nb))))
        else:
            self._out.append((to_id, SwimPushPull(states=self._local_states())))

    def _send_join(self, now: float) -> None:
        states = self._local_states()
        for seed in self._join_seeds:
            self._out.append((seed, SwimPushPull(states=states, join=True)))
        self._arm(_T_JOIN, now + self.config.join_retry_interval)

    def _on_push_pull(self, now: float) -> None:
        self._arm(_T_PUSH_PULL, now + self.config.push_pull_period(self.num_members))
        if self._leaving:
            return
        peers = self._random_members(1, None, lambda m: m.state is _ALIVE)
        if peers:
            self._anti_entropy(peers[0].node_id)

    def _on_reconnect(self, now: float) -> None:
        """Serf's reconnect: push-pull with a random Dead member, with probability dead/alive, so the
        sides of a healed partition (which hold each other Dead and no longer probe or gossip to each
        other) find each other again without an operator rejoin."""
        self._arm(_T_RECONNECT, now + self.config.reconnect_interval)
        dead = self._dead
        if self._leaving or not dead:
            return
        alive = max(1, self.num_members - len(dead))
        rng = self._rng
        if rng.random() >= len(dead) / alive:
            return
        target = list(dead)[rng.randrange(len(dead))]
        self._anti_entropy(target)  # a digest: a member that really is dead costs 8 B per bucket

    def _on_message_from_dead(self, from_id: str, now: float) -> None:
        """A member we hold Dead is talking to us, so it is up and has not heard of its death (it
        would have refuted). This happens after a partition heals: gossip about it went to the
        other side while we held it Dead. Push-pull with it (at most once per ``probe_interval``):
        it refutes, and its reply carries the new incarnation and its view, so both tables catch
        up in one exchange instead of waiting for periodic push-pull."""
        last = self._nudged.get(from_id)
        if last is not None and now - last < self.config.probe_interval:
            return
        self._nudged[from_id] = now
        self._anti_entropy(from_id)

    def _on_push_pull_msg(self, from_id: str, msg: SwimPushPull, now: float) -> None:
        if msg.digest:
            self._on_digest(from_id, msg.digest)
            return
        if msg.request:
            # the peer's digest differed from ours in these buckets: push ours (shape 3)
            buckets = _valid_buckets(msg.num_buckets, msg.request)
            if buckets:
                states = self._local_states(msg.num_buckets, frozenset(buckets))
                self._out.append((from_id, SwimPushPull(states=states, num_buckets=msg.num_buckets,
                                                        buckets=buckets)))
            return
        if msg.reply:
            self._joined = True
        self._merge_states(from_id, msg, now)
        if not msg.reply:
            # Reply with the merged state (memberlist replies first): a member the sender holds Dead has
            # just refuted that here, so the reply carries its new incarnation and the sender can take
            # it back at once -- this one exchange bridges a healed partition. A partial push gets the
            # same buckets back.
            if msg.num_buckets:
                buckets = _valid_buckets(msg.num_buckets, msg.buckets)
                states = self._local_states(msg.num_buckets, frozenset(buckets))
                reply = SwimPushPull(states=states, reply=True, num_buckets=msg.num_buckets, buckets=buckets)
            else:
                reply = SwimPushPull(states=self._local_states(), reply=True)
            self._out.append((from_id, reply))

    def _on_digest(self, from_id: str, digest: bytes) -> None:
        """A peer's digest (shape 1): ask for the buckets that differ from ours, if any."""
        nb = len(digest) // 8
        if nb * 8 != len(digest) or nb & (nb - 1) or nb > MAX_DIGEST_BUCKETS:
            return  # malformed: not a power of two of 8-byte hashes
        mine = self.digest(nb)
        if mine == digest:
            return
        theirs = struct.unpack(f"<{nb}Q", digest)
        ours = struct.unpack(f"<{nb}Q", mine)
        diff = tuple(i for i in range(nb) if theirs[i] != ours[i])
        self._out.append((from_id, SwimPushPull(num_buckets=nb, request=diff)))

    def _merge_states(self, from_id: str, msg: SwimPushPull, now: float) -> None:
        members = self._members
        roster_states = self._roster.states if self._roster is not None else None
        me = self.node_id
        for st in msg.states:
            nid = st.node_id
            if nid != me and nid not in members and roster_states is not None:
                rs = roster_states.get(nid)
                if rs is not None and st.incarnation <= rs.incarnation and st.state == rs.state:
                    continue  # nothing new, do not materialise
            state = st.state
            if state == "Alive":
                a = SwimAlive(node_id=nid, incarnation=st.incarnation, tcp_address=st.tcp_address,
                              quic_address=st.quic_address, meta=st.meta)
                # Re-gossip a newly learnt member only if it is the sender itself (the joiner);
                # third parties are announced by whoever first accepted them (unless
                # ``merge_rebroadcast``: memberlist re-gossips them all).
                self._on_alive(a, now, nid == from_id or self.config.merge_rebroadcast)
            elif state == "Left":
                self._on_left(SwimLeft(node_id=nid, incarnation=st.incarnation), now)
            else:
                # As in memberlist, a remote Dead is only grounds for suspicion; unlike memberlist the
                # accuser is the sender (who holds that belief), not us: we probed nothing.
                self._on_suspect(SwimSuspect(node_id=nid, incarnation=st.incarnation, from_id=from_id), now)

    def _self_info(self) -> MemberInfo:
        return MemberInfo(self.node_id, _LEFT if self._leaving else _ALIVE, self.incarnation,
                          self.tcp_address, self.quic_address, dict(self.meta), 0, 0.0)


@functools.lru_cache(maxsize=1 << 17)
def _id_crc(node_id: str) -> int:
    return zlib.crc32(node_id.encode())


def member_bucket(node_id: str, mask: int) -> int:
    """Digest bucket of ``node_id`` among ``mask + 1`` buckets (a power of two): ``crc32(id) & mask``."""
    return _id_crc(node_id) & mask


@functools.lru_cache(maxsize=1 << 17)
def entry_hash(node_id: str, incarnation: int, state: str) -> int:
    """64-bit hash of one member's (id, incarnation, state), the same in every process."""
    data = f"{len(node_id)}:{node_id}:{incarnation}:{state}".encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def _valid_buckets(num_buckets: int, buckets: Iterable[int]) -> tuple[int, ...]:
    """The bucket ids that make sense for ``num_buckets`` (a power of two up to the cap), sorted."""
    if num_buckets <= 0 or num_buckets & (num_buckets - 1) or num_buckets > MAX_DIGEST_BUCKETS:
        return ()
    return tuple(sorted({b for b in buckets if 0 <= b < num_buckets}))


def _info(m: _Member) -> MemberInfo:
    return MemberInfo(m.node_id, m.state, m.incarnation, m.tcp_address, m.quic_address, m.meta,
                      len(m.suspecters) if m.suspecters else 0, m.state_change)


def _probeable(m: _Member) -> bool:
    return m.state is _ALIVE or m.state is _SUSPECT


_HEADER_BYTES = 64
"""Upper bound of a probe/gossip message's encoding without its updates and target id: the type tag
and field names (~45 B for SwimPingReq), a uint64 seq (9 B), the array header (<= 3 B)."""

_UPDATE_TYPES = frozenset({SwimAlive, SwimSuspect, SwimDead, SwimLeft})
_PROBE_TYPES = frozenset({SwimPing, SwimAck, SwimPingReq, SwimNack, SwimGossip})
