"""Which peers are watched, and what their heartbeat status changes set off (NETWORKING-014/019), sans-I/O.

Theory of operation. The node's peer table says who the members are: every peer it knows, gone
ones included (a killed node must turn Suspected, then Failed, not vanish), and no peer it removed.
Of those, the monitoring ring (``monitor_ring.py``, Akka's ``HeartbeatNodeRing`` with
``HealthConfig.monitored_by_nr_of_members`` = k) picks whom this node watches: its k predecessors
on the ring, the peers that send their heartbeats to it, while it sends its own only to its k
successors (``heartbeat_targets``). ``sync`` rebuilds the ring when the peer table changed and
adds/removes watched peers to match, so per-node cost is O(k), not O(N). A peer this node does not
monitor is simply not in its heartbeat rows (``rows``, the API's heartbeat and phi lists); some k
other nodes watch it, and SWIM membership detects failures cluster-wide on its own. With
k >= N - 1 (the default 9 and up to 10 nodes) every node watches every other, as before.

Each tick (``HealthConfig.tick_ms``) the adapter passes the time the tick was
scheduled from and the time it ran: the difference beyond the period is the event-loop lag, the
liveness probe's input (``loop_lag_ms``, ``last_tick``). The tick then syncs and reads every
peer's heartbeat status (``heartbeat.py``: phi accrual, Hayashibara et al. 2004, plus silence
timeouts). A peer whose status turns Failed (the transition, not every tick it stays Failed) and
that the node still wants goes into recovery with ExponentialBackoff when ``auto_recover`` is on
(``recovery.py``). The recovery attempts due at that time are returned for the adapter to make (a
reconnect each); it reports each outcome back (``on_attempt_result``), which moves the recovery
state machine and records the attempt in ``recovery_log`` for the API.

Time is passed in; the adapter measures an attempt's duration and the wall-clock time itself.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Iterable
from typing import Any

from rustyray.health.errors import RecoveryError
from rustyray.health.heartbeat import HeartbeatMonitor, HeartbeatStatus, PeerHeartbeat
from rustyray.health.monitor_ring import DEFAULT_MONITORED_BY, MonitorRing
from rustyray.health.recovery import RecoveryAttempt, RecoveryManager, RecoveryStatus, RecoveryStrategy

__all__ = ["LOOP_LAG_LIMIT_MS", "PeerWatch"]

LOOP_LAG_LIMIT_MS = 1000.0
"""Event-loop lag (ms) at and above which this node's ``event_loop`` check fails."""


class PeerWatch:
    """Peer sync, the tick's lag measurement and Failed -> recovery, over a monitor and a recovery manager."""

    def __init__(self, own_id: str, monitor: HeartbeatMonitor, recovery: RecoveryManager, *,
                 auto_recover: bool, tick_s: float, log_size: int = 200,
                 monitored_by: int = DEFAULT_MONITORED_BY) -> None:
        if tick_s <= 0:
            raise ValueError("tick_s must be > 0")
        self.own_id = own_id
        self.monitor = monitor
        self.recovery = recovery
        self.auto_recover = auto_recover
        self.tick_s = tick_s
        self.last_tick: float | None = None
        """``now`` of the last tick (None before the first)."""
        self.loop_lag_ms = 0.0
        """How late (ms) the last tick ran after its period."""
        self.recovery_log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._last_status: dict[str, HeartbeatStatus] = {}
        self.ring = MonitorRing({own_id}, monitored_by)
        """The monitoring ring of the last ``sync`` (this node and the peers it knew then)."""
        self._watched: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ peers
    def sync(self, known: Iterable[str], now: float) -> None:
        """Watch the peers of ``known`` the ring assigns to this node; forget watched peers it no longer does.

        The ring is rebuilt only when the member set changed (an unchanged table costs one set
        comparison); peers that stay watched keep their phi history. A peer dropped from the watch
        also drops its last status (should it come back, its first Failed is a new transition).
        """
        ring = self.ring.with_members({*known, self.own_id})
        if ring is not self.ring:
            self.ring = ring
            self._watched = ring.monitored(self.own_id)
        for peer in self._watched:
            self.monitor.add_peer(peer, now)
        for peer in set(self.monitor.peers()) - self._watched:
            self.monitor.remove_peer(peer)
            self._last_status.pop(peer, None)

    @property
    def watched(self) -> frozenset[str]:
        """The peers this node monitors (runs phi accrual on) as of the last ``sync``."""
        return self._watched

    def heartbeat_targets(self) -> frozenset[str]:
        """The peers this node sends its heartbeats to as of the last ``sync`` (its ring successors)."""
        return self.ring.targets(self.own_id)

    def accepts_heartbeat(self, peer: str) -> bool:
        """Whether a heartbeat from ``peer`` goes into the monitor.

        Yes from a watched peer, and from one the ring does not know yet (a peer learned since the
        last ``sync``; the next ``sync`` keeps or drops it); no from a known peer this node does not
        monitor (it heartbeats us only while our views of the membership disagree), so its row
        does not flicker in and out of the API's lists.
        """
        return peer != self.own_id and (peer in self._watched or peer not in self.ring)

    def rows(self, known: Iterable[str], now: float) -> list[PeerHeartbeat]:
        """Heartbeat status of every peer in ``known`` at ``now``, sorted by id."""
        self.sync(known, now)
        return self.monitor.status(now)

    def verdict(self, known: Iterable[str], now: float) -> tuple[str, str]:
        """The component health the manager reports: degraded while a peer is not Healthy."""
        rows = self.rows(known, now)
        bad = [p.node_id for p in rows if p.status is not HeartbeatStatus.HEALTHY]
        if bad:
            return "degraded", f"suspected peers: {', '.join(bad)}"
        return "healthy", f"{len(self.monitor.peers())} peers heartbeating"

    def loop_ok(self) -> bool:
        """This node's event loop ticks, late by less than ``LOOP_LAG_LIMIT_MS``."""
        return self.last_tick is not None and self.loop_lag_ms < LOOP_LAG_LIMIT_MS

    # ------------------------------------------------------------------ ticks
    def tick(self, started: float, now: float, known: Iterable[str], wanted: Container[str]) -> list[RecoveryAttempt]:
        """A tick scheduled at ``started`` ran at ``now``; returns the recovery attempts to make now.

        ``known``: the node's peers; ``wanted``: those it still wants (only these are recovered).
        """
        self.loop_lag_ms = max(0.0, (now - started - self.tick_s) * 1000.0)
        self.last_tick = now
        self.sync(known, now)
        self.newly_failed(now, wanted)
        return self.recovery.due(now)

    def newly_failed(self, now: float, wanted: Container[str]) -> list[str]:
        """Peers whose status turned Failed since the last look; those wanted go into recovery (auto_recover)."""
        failed = []
        for row in self.monitor.status(now):
            before = self._last_status.get(row.node_id)
            self._last_status[row.node_id] = row.status
            if row.status is HeartbeatStatus.FAILED and before is not HeartbeatStatus.FAILED:
                failed.append(row.node_id)
                if self.auto_recover and row.node_id in wanted:
                    self.recovery.trigger(row.node_id, RecoveryStrategy.EXPONENTIAL_BACKOFF, now)
        return failed

    # ------------------------------------------------------------------ recovery outcomes
    def on_attempt_result(self, attempt: RecoveryAttempt, error: str | None, now: float, *,
                          duration_ms: float, wall_time: float) -> RecoveryStatus | None:
        """Report one attempt (``error`` None: it reconnected); None when recovery had moved on meanwhile."""
        try:
            status = self.recovery.on_attempt_result(attempt.node, error is None, now)
        except RecoveryError:
            return None
        self.recovery_log.append({
            "node": attempt.node,
            "attempt": attempt.attempt,
            "strategy": attempt.strategy.value,
            "success": error is None,
            "error": error,
            "phase_after": status.phase.value,
            "duration_ms": round(duration_ms, 3),
            "at": wall_time,
        })
        return status

    def attempts_of(self, node_id: str) -> list[dict[str, Any]]:
        """The recorded attempts to recover ``node_id``, oldest first."""
        return [a for a in self.recovery_log if a["node"] == node_id]
