"""Beacon protocol: periodic presence over the broadcast channel (NETWORKING-028), sans-I/O.

Theory of operation
-------------------
Every ``interval_ms`` a node broadcasts one signed ``AutodiscBeacon`` (format and checks in
``broadcast_core``). Any verified packet from a peer (beacon, announce or reply) refreshes that
peer's candidate entry; a peer silent for ``ttl_ms`` is dropped. This is the soft-state
refresh scheme of SAP (RFC 2974 §3, announcements time out unless repeated): the TTL should
span several intervals so a few lost datagrams do not evict a live node.

The core owns no timer: ``next_deadline()`` says when to call ``on_timer(now)`` next; the
adapter (``beacon_runner``) re-arms one ``loop.call_at``. ``now`` is the same Unix time the
broadcast core uses for freshness.
"""

from __future__ import annotations

from dataclasses import dataclass

from rustyray.autodiscovery.broadcast_core import BroadcastCore, SendDatagram
from rustyray.autodiscovery.errors import AutodiscoveryConfigError

__all__ = ["BeaconConfig", "BeaconCore"]


@dataclass(frozen=True, kw_only=True)
class BeaconConfig:
    """Beacon timing. Off by default."""

    enabled: bool = False
    """Whether beacons are sent and candidates expire."""
    interval_ms: int = 1000
    """Milliseconds between two beacons of this node."""
    ttl_ms: int = 5000
    """Milliseconds without any packet after which a peer's candidate entry expires;
    must exceed ``interval_ms`` (default: five intervals, so four lost beacons are tolerated)."""

    def validate(self) -> None:
        if self.interval_ms <= 0:
            raise AutodiscoveryConfigError("interval_ms must be > 0")
        if self.ttl_ms <= self.interval_ms:
            raise AutodiscoveryConfigError("ttl_ms must be greater than interval_ms")

    @classmethod
    def local(cls) -> BeaconConfig:
        """Fast preset for a single host (tests, development)."""
        return cls(enabled=True, interval_ms=200, ttl_ms=1000)


class BeaconCore:
    """Schedules beacons and expires silent candidates of a ``BroadcastCore``."""

    def __init__(self, config: BeaconConfig, broadcast: BroadcastCore) -> None:
        config.validate()
        self.config = config
        self.broadcast = broadcast
        self._next_beacon: float | None = None
        self.beacons_sent = 0
        # Ids expired by the last ``on_timer`` call, for the adapter to report to membership.
        self.expired: list[str] = []

    @property
    def _interval(self) -> float:
        return self.config.interval_ms / 1000.0

    @property
    def _ttl(self) -> float:
        return self.config.ttl_ms / 1000.0

    def next_deadline(self) -> float | None:
        """When ``on_timer`` must run next: the next beacon or the earliest expiry."""
        if not self.config.enabled:
            return None
        deadlines = [] if self._next_beacon is None else [self._next_beacon]
        deadlines.extend(c.last_seen + self._ttl for c in self.broadcast.candidates)
        return min(deadlines) if deadlines else None

    def start(self, now: float) -> list[SendDatagram]:
        """Begin beaconing: the first beacon goes out at once."""
        if not self.config.enabled:
            return []
        self._next_beacon = now
        return self.on_timer(now)

    def on_timer(self, now: float) -> list[SendDatagram]:
        """Send a beacon if due and expire silent candidates."""
        self.expired = self.broadcast.candidates.expire(now - self._ttl)
        out: list[SendDatagram] = []
        if self._next_beacon is not None and now >= self._next_beacon:
            out.append(self.broadcast.beacon(now))
            self.beacons_sent += 1
            # Catch up without a burst if the loop stalled for several intervals.
            while self._next_beacon <= now:
                self._next_beacon += self._interval
        return out

    def status(self, now: float) -> dict[str, object]:
        """Status body. ``last_seen_ms`` is the age of the last packet from that node (ms ago);
        ``expires_in_ms`` is the time left before the entry is dropped."""
        ttl = self._ttl
        return {
            "enabled": self.config.enabled,
            "interval_ms": self.config.interval_ms,
            "ttl_ms": self.config.ttl_ms,
            "beacons_sent": self.beacons_sent,
            "beacons_received": self.broadcast.stats["beacons_received"],
            "candidates": [
                {
                    "node_id": c.node_id,
                    "address": c.tcp_addr,
                    "last_seen_ms": round(max(0.0, now - c.last_seen) * 1000),
                    "expires_in_ms": round(max(0.0, c.last_seen + ttl - now) * 1000),
                }
                for c in self.broadcast.candidates
            ],
        }
