"""SWIM + Lifeguard configuration (memberlist's ``Default*Config`` style).

Each duration is in seconds. Derived values used at run time, with ``n`` the
number of known members (self included):

* suspicion min  = ``suspicion_mult * max(1, log10(n)) * probe_interval``
* suspicion max  = ``suspicion_max_timeout_mult * suspicion min``
* confirmations  = ``min(suspicion_confirmations, n - 2)``, or memberlist's ``int(suspicion_mult) - 2``
  (0 when ``n - 2`` is smaller) if ``suspicion_confirmations`` is None
* retransmits    = ``retransmit_mult * ceil(log10(n + 1))`` per update
* push-pull      = ``push_pull_interval * (ceil(log2(n) - log2(32)) + 1)`` above 32 members
* digest buckets = ``2 ** ceil(log2(n / digest_bucket_size))`` (1 up to ``digest_bucket_size``), capped
  at 65,536: periodic anti-entropy sends one 64-bit hash per bucket, then only the differing buckets
* probe interval / probe timeout are multiplied by the local health score + 1
  (1 .. ``awareness_max_multiplier``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rustyray.validation import at_least, positive

__all__ = ["SwimConfig"]


@dataclass(frozen=True)
class SwimConfig:
    """Knobs of ``SwimNode``. Field defaults (= ``memberlist()``) are memberlist's DefaultLANConfig;
    ``lan()`` is the tuned preset the live service uses; ``local()`` is memberlist's DefaultLocalConfig."""

    probe_interval: float = 1.0
    """Seconds per protocol period: one member is probed per period (seed: protocol_period_ms 1000)."""

    probe_timeout: float = 0.5
    """Seconds to wait for a direct ack before asking ``indirect_checks`` members to probe for us; should
    be about the 99th percentile round-trip time. Must be < ``probe_interval``."""

    indirect_checks: int = 3
    """k of SWIM: members asked (ping-req) to probe a target that missed its direct ack."""

    suspicion_mult: float = 4
    """alpha of Lifeguard: suspicion min = suspicion_mult * max(1, log10(n)) * probe_interval (may be
    fractional); also sets the confirmations when ``suspicion_confirmations`` is None."""

    suspicion_confirmations: int | None = None
    """k of Lifeguard: independent suspicions (other accusers) that shrink a suspicion from max to min,
    capped at n - 2 (the members that could confirm). None = memberlist's int(suspicion_mult) - 2,
    which becomes 0 when fewer than k + 2 members are known."""

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
    """Seconds between anti-entropy exchanges with one random member, scaled up above 32 members
    (memberlist's pushPullScale); 0 disables periodic push-pull (join still uses it)."""

    digest_bucket_size: int = 32
    """Members per bucket of the anti-entropy digest; 0 = memberlist's full-state push-pull.

    Why: a full-state push-pull is O(n) bytes (~90 B per member, both ways) while pushPullScale only
    stretches its interval by log2(n), so its cost per member per second grows as n / log n: it was
    ~95 % of the growth of SWIM bytes per member per second from 100 to 1,000 members (1,120 ->
    1,911 B/s; push-pull alone 281 -> 1,041 B/s) and would pass 5 KB/s at 10,000. Scaling the
    interval linearly with n instead (the other fix) keeps bytes flat but makes each member's
    anti-entropy round hours long at 10,000. So periodic push-pull, reconnects and the push-pull to
    a member that talks to us while we hold it Dead all start with a *digest*, as Cassandra's and
    Dynamo's Merkle-tree repair or Scuttlebutt's digests do: members are hashed into
    ``digest_buckets(n)`` buckets (about ``digest_bucket_size`` members each) by crc32 of their id;
    each bucket's hash is the XOR of a 64-bit hash of (id, incarnation, state) of its Alive/Suspect
    members (``SwimNode.digest`` says why Dead/Left are left out). The
    peer answers with the buckets whose hashes differ (nothing when none does), and only the
    members of those buckets are pushed and pulled, with the same merge rules and the same
    "reply after merging" order as a full push-pull, so partitions heal as before. A converged
    exchange costs 8 bytes per bucket (~0.25 B per member, sent every pushPullScale period: O(1 /
    log n) per member per second), and a reconnect to a member that really is dead no longer sends
    it the whole table. Join stays a full-state push-pull (a joiner has to learn everything).
    Measured (bench/membership.py, lan(), crash + join run, Lifeguard): 881 / 873 / 994 / 905 / 971
    B per member per s at 100 / 300 / 1,000 / 3,000 / 10,000 members (was 1,120 / 1,220 / 1,911 /
    3,101 / 7,035); push-pull is now 10-21 B/s of it. What still grows a little is the
    dissemination of updates: each one is sent retransmit_limit(n) = O(log n) times by every member,
    the bound SWIM needs to reach all members with high probability."""

    max_piggyback_bytes: int = 1400
    """Budget (msgpack bytes) of one probe or gossip message, its own fields included (memberlist's
    UDP payload size: it fills a packet up to it, no more), so piggybacked updates never grow a
    packet past it however many are queued; a lone update (a buddy Suspect, a refutation) is sent
    whatever its size."""

    lifeguard: bool = True
    """Enable Lifeguard (LHM awareness, nacks, dynamic suspicion with confirmations, buddy system).
    False gives plain SWIM with a fixed suspicion timeout of ``suspicion min``."""

    join_retry_interval: float = 1.0
    """Seconds between join attempts while no seed has answered."""

    reconnect_interval: float = 10.0
    """Seconds between reconnect rounds (Serf's reconnect_interval): each round, with probability
    dead/alive, push-pull with one random Dead member, so both sides of a healed partition merge
    without an operator rejoin (memberlist alone never contacts a Dead member again once
    ``gossip_to_the_dead_time`` has passed). 0 disables."""

    merge_rebroadcast: bool = False
    """memberlist's rule for a push-pull: every member it teaches us is re-gossiped (``mergeState`` goes
    through ``aliveNode``, which broadcasts what it accepts). False (ours): only the sender itself is
    re-gossiped, since the third parties were announced by whoever first accepted them. The memberlist
    member (``autodiscovery.memberlist_swim``) turns it on so an agent the push-pull partner's gossip
    missed still hears of a member within a gossip round rather than at the next push-pull."""

    @classmethod
    def memberlist(cls) -> SwimConfig:
        """memberlist DefaultLANConfig: T = 1 s period, 500 ms probe timeout, 3 indirect probes,
        alpha = 4, beta = 6, k = alpha - 2 = 2. Its suspicion min alone is 12 s at N = 1,000, so
        crash-to-dead p99 is ~16-18 s there (see ``lan()``); kept for comparison."""
        return cls()

    @classmethod
    def lan(cls) -> SwimConfig:
        """Tuned LAN preset (the live service's default): T = 500 ms period, 250 ms probe timeout,
        alpha = 3, beta = 6, k = 3 confirmations; the rest as memberlist.

        Crash-to-dead latency (time until 99 % of members hold a crashed member Dead), at the
        p-th percentile over crashes, with N members::

            T                        the failing probe's own period (direct + indirect probes)
          + T * ln(1 / (1 - p))      wait for someone to probe the victim (about one probe per T
                                     arrives at any member, so the wait is exponential of mean T)
          + alpha * max(1, log10 N) * T   suspicion min; k independent suspicions arrive about
                                     k * T after the first, well before min, so min is what counts
          + ~0.5 s                   Dead reaches 99 % by gossip (every 200 ms, fanout 3)

        N = 1,000, p = 0.99: 0.5 + 2.3 + 4.5 + 0.5 = ~7.8 s (target <= 10 s; measured p99 in
        bench/results/membership.json). memberlist's defaults give 1 + 4.6 + 12 + 0.5 = ~18 s:
        alpha = 4 alone puts the floor at 12 s, and alpha = 2 with T = 1 s still leaves ~12 s at
        p99 because the exponential wait for the first probe scales with T.

        False positives do not rise with the shorter min: Lifeguard starts every suspicion at
        max = beta * min (27 s at N = 1,000, 18 s at 100, 9 s at 5) and only k = 3 *independent*
        accusers bring it down to min. A healthy member fails a probe under 1 % loss with
        probability ~2 % * (4 %)^3 = 1e-6 (direct and all 3 relays lost), so three independent
        accusations of it within min essentially never happen, and it refutes within a gossip
        round of hearing one. A stalled accuser raises its LHM and defers verdicts reached while it
        was not running (core ``_defer_verdict``). Cost: probing every 500 ms adds ~10 % bytes per
        member at N = 1,000 against T = 1 s with alpha = 2. With lifeguard=False (plain SWIM) the
        timeout is min, fixed.
        """
        return cls(probe_interval=0.5, probe_timeout=0.25, suspicion_mult=3, suspicion_confirmations=3,
                   suspicion_max_timeout_mult=6)

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
        positive(self, "probe_interval")
        if not 0 < self.probe_timeout < self.probe_interval:
            raise ValueError("probe_timeout must be in (0, probe_interval)")
        if self.suspicion_confirmations is not None and self.suspicion_confirmations < 0:
            raise ValueError("suspicion_confirmations must be >= 0 or None")
        positive(self, "gossip_interval", "join_retry_interval")
        at_least(self, 0, "indirect_checks", "gossip_to_the_dead_time", "push_pull_interval", "reconnect_interval")
        at_least(self, 1, "suspicion_mult", "suspicion_max_timeout_mult", "awareness_max_multiplier",
                 "retransmit_mult", "gossip_nodes")
        at_least(self, 0, "digest_bucket_size")
        at_least(self, 64, "max_piggyback_bytes")
        return self

    # Derived values (pure; table-tested).

    def suspicion_min(self, n: int) -> float:
        """Lifeguard's min suspicion timeout for ``n`` members (memberlist ``suspicionTimeout``)."""
        return suspicion_timeout(self.suspicion_mult, n, self.probe_interval)

    def confirmations(self, n: int) -> int:
        """Lifeguard's k for ``n`` members: confirmations that bring a suspicion down to min."""
        k = self.suspicion_confirmations
        if k is None:  # memberlist: alpha - 2, and none at all when fewer than k others could confirm
            k = max(0, int(self.suspicion_mult) - 2)
            return 0 if n - 2 < k else k
        # explicit k: as many as the other members can give (memberlist's all-or-nothing rule would
        # leave a 4-member cluster with the bare min, 1.5 s with lan(), and no Lifeguard protection)
        return max(0, min(k, n - 2))

    def retransmit_limit(self, n: int) -> int:
        return retransmit_limit(self.retransmit_mult, n)

    def push_pull_period(self, n: int) -> float:
        """memberlist ``pushPullScale``: slow anti-entropy down logarithmically above 32 members."""
        if n <= 32:
            return self.push_pull_interval
        mult = math.ceil(math.log2(n) - math.log2(32)) + 1
        return self.push_pull_interval * mult

    def digest_buckets(self, n: int) -> int:
        """Buckets of the anti-entropy digest for ``n`` members (a power of two; 0 = no digest)."""
        return digest_buckets(self.digest_bucket_size, n)


def suspicion_timeout(suspicion_mult: float, n: int, interval: float) -> float:
    """``suspicion_mult * max(1, log10(n)) * interval`` (kept to ms precision like memberlist)."""
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    return suspicion_mult * math.floor(node_scale * 1000) * interval / 1000


MAX_DIGEST_BUCKETS = 1 << 16
"""Upper bound of ``digest_buckets`` (512 KB of digest); larger digests received are ignored."""


def digest_buckets(bucket_size: int, n: int) -> int:
    """``2 ** ceil(log2(n / bucket_size))``: at least 1, at most ``MAX_DIGEST_BUCKETS``; 0 when
    ``bucket_size`` is 0 (digests off). A power of two, so two members whose estimates of n differ
    a little still agree on it (and the digest carries its bucket count anyway)."""
    if bucket_size <= 0:
        return 0
    if n <= bucket_size:
        return 1
    return min(MAX_DIGEST_BUCKETS, 1 << math.ceil(math.log2(n / bucket_size)))


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """``retransmit_mult * ceil(log10(n + 1))``: transmissions of one update before it is dropped."""
    return retransmit_mult * math.ceil(math.log10(n + 1))
