"""Lifeguard local health multiplier (LHM).

Theory of operation (Dadgar et al. 2018, section IV-A; memberlist's
``awareness.go``): a node that is itself slow (CPU starved, GC, overloaded
NIC) sees its probes fail although the targets are fine, and would spread
false suspicions. It therefore keeps a saturating score in
``[0, max_multiplier - 1]`` of evidence about its *own* health and scales its
probe interval and probe timeout by ``score + 1``:

* +1  a probe failed and no nacks were expected (we cannot tell who is at fault);
* +m  a probe failed and ``m`` of the expected nacks from relays are missing
  (relays that answer prove the network; missing nacks point at us);
* +1  we had to refute a suspicion of ourselves;
* -1  a direct probe succeeded in time.
"""

from __future__ import annotations

__all__ = ["Awareness"]


class Awareness:
    """Saturating local-health score."""

    __slots__ = ("_max", "score")

    def __init__(self, max_multiplier: int) -> None:
        assert max_multiplier >= 1
        self._max = max_multiplier
        self.score = 0

    def apply_delta(self, delta: int) -> None:
        self.score = min(max(self.score + delta, 0), self._max - 1)

    @property
    def multiplier(self) -> int:
        return self.score + 1

    def scale(self, timeout: float) -> float:
        """``timeout * (score + 1)``."""
        return timeout * (self.score + 1)
