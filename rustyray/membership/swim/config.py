"""SWIM + Lifeguard configuration (memberlist's ``Default*Config`` style).

Each duration is in seconds. Derived values used at run time, with ``n`` the
number of known members (self included):

* suspicion min  = ``suspicion_mult * max(1, log10(n)) * probe_interval``
* suspicion max  = ``suspicion_max_timeout_mult * suspicion min``
* confirmations  = ``suspicion_mult - 2`` (0 when ``n - 2`` is smaller)
* retransmits    = ``retransmit_mult * ceil(log10(n + 1))`` per update
* push-pull      = ``push_pull_interval * (ceil(log2(n) - log2(32)) + 1)`` above 32 members
* probe interval / probe timeout are multiplied by the local health score + 1
  (1 .. ``awareness_max_multiplier``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["SwimConfig"]


@dataclass(frozen=True)
class SwimConfig:
    """Knobs of ``SwimNode``; ``lan()`` is memberlist's DefaultLANConfig, ``local()`` its DefaultLocalConfig."""

    probe_interval: float = 1.0
    """Seconds per protocol period: one member is probed per period (seed: protocol_period_ms 1000)."""

    probe_timeout: float = 0.5
    """Seconds to wait for a direct ack before asking ``indirect_checks`` members to probe for us; should
    be about the 99th percentile round-trip time. Must be < ``probe_interval``."""

    indirect_checks: int = 3
    """k of SWIM: members asked (ping-req) to probe a target that missed its direct ack."""

    suspicion_mult: int = 4
    """alpha of Lifeguard: suspicion min = suspicion_mult * max(1, log10(n)) * probe_interval; also
    sets the confirmations that shrink the timeout to min: suspicion_mult - 2."""

    suspicion_max_timeout_mult: int = 6
    """beta of Lifeguard: suspicion max = this * suspicion min (the timeout with no confirmations)."""

    awareness_max_multiplier: int = 8
    """Upper bound of the local health multiplier applied to probe interval and timeout (Lifeguard LHM)."""

    retransmit_mult: int = 4
    """lambda of SWIM: each update is piggybacked retransmit_mult * ceil(log10(n + 1)) times."""

    gossip_interval: float = 0.2
    """Seconds between gossip rounds that push queued updates to ``gossip_nodes`` random members
    (only when the queue is not empty)."""

    gossip_nodes: int = 3
    """Fanout of each gossip round (seed NETWORKING-025: fanout 3)."""

    gossip_to_the_dead_time: float = 30.0
    """Seconds a Dead member still receives gossip, so a falsely-declared node hears it and refutes."""

    push_pull_interval: float = 30.0
    """Seconds between full-state exchanges with one random member (anti-entropy), scaled up above 32
    members; 0 disables periodic push-pull (join still uses it)."""

    max_piggyback_bytes: int = 1400
    """Budget (msgpack bytes) of updates piggybacked on one message; memberlist's UDP payload size."""

    lifeguard: bool = True
    """Enable Lifeguard (LHM awareness, nacks, dynamic suspicion with confirmations, buddy system).
    False gives plain SWIM with a fixed suspicion timeout of ``suspicion min``."""

    join_retry_interval: float = 1.0
    """Seconds between join attempts while no seed has answered."""

    @classmethod
    def lan(cls) -> SwimConfig:
        """memberlist DefaultLANConfig: 1 s period, 500 ms probe timeout, k=3, alpha=4, beta=6."""
        return cls()

    @classmethod
    def local(cls) -> SwimConfig:
        """memberlist DefaultLocalConfig: loopback/single host, tighter timeouts, fewer retransmits."""
        return cls(
            probe_interval=1.0,
            probe_timeout=0.2,
            indirect_checks=1,
            suspicion_mult=3,
            retransmit_mult=2,
            gossip_interval=0.1,
            gossip_to_the_dead_time=15.0,
            push_pull_interval=15.0,
        )

    def validate(self) -> SwimConfig:
        """Raise ValueError naming the first bad field; return self."""
        if not self.probe_interval > 0:
            raise ValueError("probe_interval must be > 0")
        if not 0 < self.probe_timeout < self.probe_interval:
            raise ValueError("probe_timeout must be in (0, probe_interval)")
        if self.indirect_checks < 0:
            raise ValueError("indirect_checks must be >= 0")
        if self.suspicion_mult < 1:
            raise ValueError("suspicion_mult must be >= 1")
        if self.suspicion_max_timeout_mult < 1:
            raise ValueError("suspicion_max_timeout_mult must be >= 1")
        if self.awareness_max_multiplier < 1:
            raise ValueError("awareness_max_multiplier must be >= 1")
        if self.retransmit_mult < 1:
            raise ValueError("retransmit_mult must be >= 1")
        if not self.gossip_interval > 0:
            raise ValueError("gossip_interval must be > 0")
        if self.gossip_nodes < 1:
            raise ValueError("gossip_nodes must be >= 1")
        if self.gossip_to_the_dead_time < 0:
            raise ValueError("gossip_to_the_dead_time must be >= 0")
        if self.push_pull_interval < 0:
            raise ValueError("push_pull_interval must be >= 0")
        if self.max_piggyback_bytes < 64:
            raise ValueError("max_piggyback_bytes must be >= 64")
        if not self.join_retry_interval > 0:
            raise ValueError("join_retry_interval must be > 0")
        return self

    # Derived values (pure; table-tested).

    def suspicion_min(self, n: int) -> float:
        """Lifeguard's min suspicion timeout for ``n`` members (memberlist ``suspicionTimeout``)."""
        return suspicion_timeout(self.suspicion_mult, n, self.probe_interval)

    def retransmit_limit(self, n: int) -> int:
        return retransmit_limit(self.retransmit_mult, n)

    def push_pull_period(self, n: int) -> float:
        """memberlist ``pushPullScale``: slow anti-entropy down logarithmically above 32 members."""
        if n <= 32:
            return self.push_pull_interval
        mult = math.ceil(math.log2(n) - math.log2(32)) + 1
        return self.push_pull_interval * mult


def suspicion_timeout(suspicion_mult: int, n: int, interval: float) -> float:
    """``suspicion_mult * max(1, log10(n)) * interval`` (kept to ms precision like memberlist)."""
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    return suspicion_mult * math.floor(node_scale * 1000) * interval / 1000


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """``retransmit_mult * ceil(log10(n + 1))``: transmissions of one update before it is dropped."""
    return retransmit_mult * math.ceil(math.log10(n + 1))
