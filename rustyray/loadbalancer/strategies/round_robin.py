"""Round robin: cycle over the candidate list.

Theory of operation: a single request counter ``c``; request ``c`` goes to
``candidates[c mod n]``. While the candidate list is unchanged, any ``k`` consecutive
selections give every node either ``floor(k/n)`` or ``ceil(k/n)`` requests (fair within
one). When the list changes the counter carries on, so the cycle resumes at a shifted
position rather than restarting at the first node (which would overload it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rustyray.loadbalancer.strategies.base import (
    NodeLoad,
    Selection,
    Strategy,
    StrategyName,
    require_candidates,
)


class RoundRobin(Strategy):
    """Exact cycling; ``request_count`` counts every selection made so far."""

    name = StrategyName.ROUND_ROBIN

    def __init__(self) -> None:
        self.request_count = 0

    def select(self, candidates: Sequence[str], key: str | None, stats: Mapping[str, NodeLoad]) -> Selection:
        require_candidates(candidates)
        node = candidates[self.request_count % len(candidates)]
        self.request_count += 1
        return Selection(selected_node=node, strategy=self.name, request_count=self.request_count)
