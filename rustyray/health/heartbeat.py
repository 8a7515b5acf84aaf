"""Heartbeat bookkeeping for many peers (seed NETWORKING-014/015).

Theory of operation: every node sends a heartbeat to each peer every
``interval`` seconds (the adapter asks ``due(now)`` when that is and calls
``sent(now)`` after sending). Each received heartbeat is ``record``-ed into a
per-peer phi accrual detector (Hayashibara et al. 2004, see ``phi.py``). A
peer's status combines the adaptive phi with a hard silence timeout:

* ``Failed``    -- silent for more than ``failed_after`` seconds;
* ``Suspected`` -- ``phi >= phi.threshold`` or silent for more than ``timeout``;
* ``Healthy``   -- otherwise.

"Silent" counts from the last heartbeat, or from ``add_peer`` if none arrived
yet (a peer that never speaks is suspected after ``timeout`` like any other).
The timeout catches peers whose history taught phi to be lenient; phi catches a
usually punctual peer well before the timeout. Sans-I/O: time is passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from rustyray.health.phi import PhiAccrualDetector, PhiConfig
from rustyray.records import record
from rustyray.validation import positive

__all__ = ["HeartbeatConfig", "HeartbeatMonitor", "HeartbeatStatus", "PeerHeartbeat"]


class HeartbeatStatus(enum.Enum):
    HEALTHY = "Healthy"
    SUSPECTED = "Suspected"
    FAILED = "Failed"


def _default_phi() -> PhiConfig:
    # Tolerate 3 s beyond the mean interval: with 1 s heartbeats and the 0.1 s std
    # floor, phi crosses 8.0 after ~4.5 s of silence, just before the 5 s timeout.
    return PhiConfig(acceptable_heartbeat_pause=3.0, first_heartbeat_estimate=1.0)


@dataclass(frozen=True)
class HeartbeatConfig:
    """Timings of the heartbeat monitor (seconds; seed defaults 1000 ms / 5000 ms)."""

    interval: float = 1.0
    """Seconds between two heartbeats we send to each peer; drives ``due``."""

    timeout: float = 5.0
    """Seconds of silence after which a peer is ``Suspected`` whatever its phi."""

    failed_after: float = 15.0
    """Seconds of silence after which a peer is ``Failed`` (must be >= timeout)."""

    phi: PhiConfig = field(default_factory=_default_phi)
    """Per-peer phi detector settings; ``phi.threshold`` also makes a peer ``Suspected``."""

    @classmethod
    def lan(cls) -> HeartbeatConfig:
        return cls()

    @classmethod
    def local(cls) -> HeartbeatConfig:
        """Fast timings for one host and tests: 100 ms heartbeats, 500 ms timeout."""
        return cls(
            interval=0.1,
            timeout=0.5,
            failed_after=1.5,
            phi=PhiConfig(acceptable_heartbeat_pause=0.3, first_heartbeat_estimate=0.1, min_std_deviation=0.01),
        )

    def validate(self) -> HeartbeatConfig:
        """Raise ValueError naming the first bad field; return self."""
        positive(self, "interval", "timeout")
        if self.failed_after < self.timeout:
            raise ValueError("failed_after must be >= timeout")
        self.phi.validate()
        return self


@dataclass(frozen=True)
class PeerHeartbeat:
    """One row of ``status()``; ``to_dict`` gives the seed's JSON spelling."""

    node_id: str
    last_heartbeat_ms: int
    """Milliseconds since the last heartbeat (or since the peer was added, if none yet)."""
    phi: float
    status: HeartbeatStatus
    heartbeats: int
    """Heartbeats received from this peer so far."""

    def to_dict(self) -> dict[str, object]:
        return record(self, exclude=("heartbeats",), phi=round(self.phi, 3))


class _Peer:
    __slots__ = ("added", "count", "detector")

    def __init__(self, added: float, cfg: PhiConfig) -> None:
        self.added = added
        self.count = 0
        self.detector = PhiAccrualDetector(cfg)


class HeartbeatMonitor:
    """Tracks heartbeats from many peers and says when to send ours."""

    def __init__(self, config: HeartbeatConfig | None = None) -> None:
        self._config = (config or HeartbeatConfig()).validate()
        self._peers: dict[str, _Peer] = {}
        self._last_sent: float | None = None

    @property
    def config(self) -> HeartbeatConfig:
        return self._config

    def peers(self) -> list[str]:
        return sorted(self._peers)

    def add_peer(self, peer_id: str, now: float) -> None:
        """Start watching ``peer_id``; idempotent (re-adding keeps its history)."""
        if peer_id not in self._peers:
            self._peers[peer_id] = _Peer(now, self._config.phi)

    def remove_peer(self, peer_id: str) -> None:
        self._peers.pop(peer_id, None)

    def record(self, peer_id: str, now: float) -> None:
        """A heartbeat from ``peer_id`` arrived at ``now`` (unknown peers are added)."""
        peer = self._peers.get(peer_id)
        if peer is None:
            peer = self._peers[peer_id] = _Peer(now, self._config.phi)
        peer.detector.heartbeat(now)
        peer.count += 1

    def phi(self, peer_id: str, now: float) -> float:
        return self._peers[peer_id].detector.phi(now)

    def peer_status(self, peer_id: str, now: float) -> PeerHeartbeat:
        """Status of one peer by the rule in the module docstring; KeyError if unknown."""
        peer = self._peers[peer_id]
        cfg = self._config
        last = peer.detector.last_heartbeat
        silent = max(now - (last if last is not None else peer.added), 0.0)
        phi = peer.detector.phi(now)
        if silent > cfg.failed_after:
            status = HeartbeatStatus.FAILED
        elif silent > cfg.timeout or phi >= cfg.phi.threshold:
            status = HeartbeatStatus.SUSPECTED
        else:
            status = HeartbeatStatus.HEALTHY
        return PeerHeartbeat(peer_id, round(silent * 1000), phi, status, peer.count)

    def status(self, now: float) -> list[PeerHeartbeat]:
        """Every peer's status at ``now``, sorted by node id."""
        return [self.peer_status(p, now) for p in sorted(self._peers)]

    def due(self, now: float) -> float:
        """Time at which our next heartbeat should be sent (``now`` if overdue or never sent)."""
        if self._last_sent is None:
            return now
        return max(self._last_sent + self._config.interval, now)

    def is_due(self, now: float) -> bool:
        return self._last_sent is None or now >= self._last_sent + self._config.interval

    def sent(self, now: float) -> None:
        """We sent a heartbeat round at ``now``; the next one is due ``interval`` later."""
        self._last_sent = now
