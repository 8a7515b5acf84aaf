"""A node's load-balancing decisions: the send gate and selection as a query (NETWORKING-037..043), sans-I/O.

Theory of operation: two paths share one set of circuit breakers, token buckets and per-node
stats, and all time is passed in.

- The send gate, around every routed send. ``admit(target, now)`` refuses (a ``Refusal``,
  counted in ``refused``) when the target's breaker takes no attempt (Open, or HalfOpen with
  every trial slot taken) or its token bucket is empty; otherwise it claims a breaker slot and a
  token and counts the request in flight. ``record`` puts the outcome in the breaker and the
  latency / error EWMAs; exactly one ``record`` follows each admitted send.
- Selection through the API, a query. ``skip_reasons`` says why each requested node cannot be
  chosen (not live, circuit Open/HalfOpen, rate limited) by *peeking*: no trial slot and no
  token is taken, so asking does not change the answer. ``refresh`` installs the connection
  counts the adapter measured; ``choose`` asks the strategy and at once releases
  ConsistentHash's bounded-load assignment, so the same key keeps mapping to the same node.
  (``balancer.LoadBalancer.select``, by contrast, claims the chosen node.)
- Rate limits: ``set_rate_limit`` validates a limit (``LoadBalancerConfigError`` names the
  field) and installs its bucket; ``limits`` keeps what was set, for the messages and the API.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rustyray.loadbalancer.circuit_breaker import BreakerRegistry, CircuitState, CircuitStatus
from rustyray.loadbalancer.node_stats import NodeStatsTracker
from rustyray.loadbalancer.strategies import Selection, Strategy, StrategyName
from rustyray.loadbalancer.traffic_shaping import RateLimitConfig, RateLimiterRegistry


def plain_number(value: float) -> float | int:
    """``2.0`` as ``2``, other values as they are (how rates read in messages and responses)."""
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class Refusal:
    """Why ``admit`` refused a send."""

    reason: str
    """``circuit_open`` or ``rate_limited`` (the keys of ``NodeSelector.refused``)."""
    message: str
    """What to tell the caller: the breaker's state and failures, or the limit and when to retry."""


class NodeSelector:
    """Breakers, buckets, stats and strategies of one node (see the module docstring)."""

    def __init__(self, breakers: BreakerRegistry, limiters: RateLimiterRegistry, tracker: NodeStatsTracker,
                 strategies: Mapping[StrategyName, Strategy]) -> None:
        self.breakers = breakers
        self.limiters = limiters
        self.tracker = tracker
        self.strategies = dict(strategies)
        self.limits: dict[str, RateLimitConfig] = {}
        """Node -> the rate limit set for sends to it."""
        self.refused = {"rate_limited": 0, "circuit_open": 0}
        """Sends ``admit`` refused, by reason."""

    # ---- the send gate ------------------------------------------------------------------

    def admit(self, target: str, now: float) -> Refusal | None:
        """Claim a breaker slot and a token for one send to ``target``, or say why not."""
        breaker = self.breakers.get(target)
        if not breaker.can_attempt(now):
            self.refused["circuit_open"] += 1
            state = breaker.state(now)
            retry_in = ""
            if state is CircuitState.OPEN and breaker.opened_at is not None:
                left = max(0.0, breaker.opened_at + breaker.config.open_timeout_sec - now)
                retry_in = f"; half-open in {left:.1f} s"
            return Refusal("circuit_open", f"circuit open for {target} ({state.value}, "
                                           f"{breaker.failure_count} consecutive failures{retry_in})")
        if not self.limiters.try_acquire(target, now):
            self.refused["rate_limited"] += 1
            wait = self.limiters.retry_after(target, now)
            limit = self.limits.get(target)
            rate = f"{plain_number(limit.requests_per_second)} req/s, burst {limit.burst_size}" if limit else ""
            return Refusal("rate_limited", f"rate limited: {target} allows {rate}; retry after {wait:.3f} s")
        admitted = breaker.allow(now)
        assert admitted, "a breaker that passed can_attempt must admit"
        self.tracker.on_request_start(target)
        return None

    def record(self, target: str, ok: bool, latency_ms: float, now: float) -> None:
        """The outcome of a send that ``admit`` let through."""
        self.breakers.record(target, now, ok)
        self.tracker.on_request_end(target, max(0.0, float(latency_ms)), ok)

    # ---- selection as a query -----------------------------------------------------------

    def skip_reasons(self, requested: Sequence[str], live: Iterable[str], now: float) -> dict[str, str]:
        """Requested nodes that cannot be chosen now, each with why (peeks only)."""
        live = set(live)
        skipped: dict[str, str] = {}
        for node_id in requested:
            if node_id not in live:
                skipped[node_id] = "not live"
            elif not self.breakers.available([node_id], now):
                skipped[node_id] = f"circuit {self.breakers.state(node_id, now).value}"
            elif not self.limiters.has_token(node_id, now):
                skipped[node_id] = "rate limited"
        return skipped

    def refresh(self, connections: Mapping[str, int]) -> None:
        """Install the open-connection counts the adapter measured (what LeastConnections reads)."""
        for node_id, count in connections.items():
            self.tracker.set_connections(node_id, count)

    def choose(self, name: StrategyName, candidates: Sequence[str], routing_key: str | None) -> Selection:
        """The strategy's pick among ``candidates``, claiming nothing (NoAvailableNodeError if it finds none)."""
        strategy = self.strategies[name]
        selection = strategy.select(candidates, routing_key, self.tracker.snapshot())
        if name is StrategyName.CONSISTENT_HASH:
            strategy.on_complete(selection.selected_node)  # a query, not an assignment
        return selection

    # ---- breakers and limits ------------------------------------------------------------

    def breaker_statuses(self, known: Iterable[str], now: float) -> list[CircuitStatus]:
        """One row per known node and per node with a breaker (a node never used is Closed)."""
        nodes = sorted(set(known) | {s.node for s in self.breakers.statuses(now)})
        return [self.breakers.get(node_id).status(node_id, now) for node_id in nodes]

    def open_circuits(self, now: float) -> list[str]:
        return [s.node for s in self.breakers.statuses(now) if s.state is CircuitState.OPEN]

    def set_rate_limit(self, node: str, requests_per_second: float, burst_size: int, now: float) -> None:
        """Validate (LoadBalancerConfigError names the field) and install a limit for sends to ``node``."""
        config = RateLimitConfig(requests_per_second=requests_per_second, burst_size=burst_size)
        config.validate()
        self.limiters.set_limit(node, requests_per_second, burst_size, now)
        self.limits[node] = config
