"""Accounting for fan-out patterns: broadcast, scatter-gather and quorum.

Theory of operation. The dispatcher adapter sends one message to many nodes and
feeds each outcome (answer, failure, timeout) into one of these collectors; the
collectors decide when the operation is finished. ``QuorumCollector`` follows
the quorum rule of Gifford's weighted voting (1979) as used by Raft (2014): an
operation succeeds once ``quorum_size`` nodes answered, and fails as soon as so
many nodes failed that ``quorum_size`` answers are impossible. Votes are tallied
into a consensus with the commit rule: ACCEPT once ``quorum_size`` nodes voted
ACCEPT, REJECT as soon as ACCEPT can no longer reach ``quorum_size``. Both
decisions are monotonic, so they can be reported early and never flip.

Everything here is pure: time comes in as ``now``; the first outcome per node
wins and later ones are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from rustyray.routing.errors import InvalidQuorumError


class OutcomeStatus(Enum):
    """Per-node outcome of a fan-out; the values appear in REST responses."""

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"


@dataclass(frozen=True)
class NodeOutcome:
    node: str
    status: OutcomeStatus
    payload: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Seed shape: ``{"node": ..., "status": ..., **payload}`` (payload fields inlined)."""
        out: dict[str, Any] = {"node": self.node}
        if self.payload:
            out.update({k: v for k, v in self.payload.items() if k not in ("node", "status")})
        out["status"] = self.status.value
        if self.error is not None:
            out["error"] = self.error
        return out


def _unique_targets(targets: Iterable[str]) -> tuple[str, ...]:
    out = tuple(targets)
    if len(set(out)) != len(out):
        raise ValueError("targets must not contain duplicates")
    return out


class _FanOut:
    def __init__(self, targets: Iterable[str]) -> None:
        self.targets = _unique_targets(targets)
        self._outcomes: dict[str, NodeOutcome] = {}

    def _record(self, outcome: NodeOutcome) -> bool:
        if outcome.node not in self.targets or outcome.node in self._outcomes:
            return False
        self._outcomes[outcome.node] = outcome
        return True

    @property
    def outstanding(self) -> list[str]:
        return [t for t in self.targets if t not in self._outcomes]

    def _count(self, status: OutcomeStatus) -> int:
        return sum(1 for o in self._outcomes.values() if o.status is status)

    def outcomes(self) -> list[NodeOutcome]:
        """Known outcomes in target order."""
        return [self._outcomes[t] for t in self.targets if t in self._outcomes]


# -- broadcast ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BroadcastResult:
    total_nodes: int
    successful_sends: int
    failed_sends: int
    nodes_reached: list[str]
    failures: dict[str, str] = field(default_factory=dict)

    def to_dict(self, latency_ms: float | None = None) -> dict[str, Any]:
        """NETWORKING-008 shape; the adapter supplies the measured latency."""
        out: dict[str, Any] = {
            "total_nodes": self.total_nodes,
            "successful_sends": self.successful_sends,
            "failed_sends": self.failed_sends,
            "nodes_reached": list(self.nodes_reached),
        }
        if latency_ms is not None:
            out["broadcast_latency_ms"] = round(latency_ms, 3)
        if self.failures:
            out["failures"] = dict(self.failures)
        return out


class Broadcast(_FanOut):
    """Counts deliveries of one message to every target; unanswered targets count as failed."""

    def on_success(self, node: str, payload: dict[str, Any] | None = None) -> bool:
        return self._record(NodeOutcome(node, OutcomeStatus.SUCCESS, payload))

    def on_failure(self, node: str, error: str) -> bool:
        return self._record(NodeOutcome(node, OutcomeStatus.ERROR, error=error))

    @property
    def done(self) -> bool:
        return not self.outstanding

    def result(self) -> BroadcastResult:
        reached = [o.node for o in self.outcomes() if o.status is OutcomeStatus.SUCCESS]
        failures = {o.node: o.error or "" for o in self.outcomes() if o.status is not OutcomeStatus.SUCCESS}
        failures.update({t: "no outcome" for t in self.outstanding})
        return BroadcastResult(len(self.targets), len(reached), len(failures), reached, failures)


# -- scatter-gather -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScatterGatherResult:
    total_sent: int
    responses_received: int
    responses: list[NodeOutcome]

    def to_dict(self, response_time_ms: float | None = None) -> dict[str, Any]:
        """NETWORKING-009 shape; the adapter supplies the measured time."""
        out: dict[str, Any] = {
            "responses_received": self.responses_received,
            "total_sent": self.total_sent,
            "responses": [o.to_dict() for o in self.responses],
        }
        if response_time_ms is not None:
            out["response_time_ms"] = round(response_time_ms, 3)
        return out


class ScatterGather(_FanOut):
    """Collects one answer per target until all answered or ``deadline`` passed."""

    def __init__(self, targets: Iterable[str], deadline: float) -> None:
        super().__init__(targets)
        self.deadline = deadline

    def on_response(self, node: str, now: float, payload: dict[str, Any] | None = None) -> bool:
        """Record an answer; False when ignored (unknown node, already settled, or late)."""
        if now >= self.deadline:
            self.check_timeout(now)
            return False
        return self._record(NodeOutcome(node, OutcomeStatus.SUCCESS, payload))

    def on_failure(self, node: str, error: str) -> bool:
        return self._record(NodeOutcome(node, OutcomeStatus.ERROR, error=error))

    def check_timeout(self, now: float) -> list[str]:
        """At or after the deadline, mark every outstanding target timed out; returns them."""
        if now < self.deadline:
            return []
        late = self.outstanding
        for node in late:
            self._record(NodeOutcome(node, OutcomeStatus.TIMEOUT, error="timed out"))
        return late

    @property
    def done(self) -> bool:
        return not self.outstanding

    def result(self) -> ScatterGatherResult:
        return ScatterGatherResult(len(self.targets), self._count(OutcomeStatus.SUCCESS), self.outcomes())


# -- quorum ---------------------------------------------------------------------------------------


class QuorumStatus(Enum):
    PENDING = "Pending"
    REACHED = "Reached"
    FAILED = "Failed"


class Consensus(Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    PENDING = "PENDING"


@dataclass(frozen=True)
class QuorumResult:
    quorum_reached: bool
    quorum_size: int
    responses: int
    consensus: Consensus
    status: QuorumStatus
    votes: dict[str, int]
    failed: list[str]
    timed_out: list[str]

    def to_dict(self, response_time_ms: float | None = None) -> dict[str, Any]:
        """NETWORKING-010 shape plus the tally and the nodes that did not answer."""
        out: dict[str, Any] = {
            "quorum_reached": self.quorum_reached,
            "quorum_size": self.quorum_size,
            "responses": self.responses,
            "consensus": self.consensus.value,
            "votes": dict(self.votes),
            "failed_nodes": list(self.failed),
            "timed_out_nodes": list(self.timed_out),
        }
        if response_time_ms is not None:
            out["response_time_ms"] = round(response_time_ms, 3)
        return out


def validate_quorum(n_targets: int, quorum_size: int) -> None:
    """Raise ``InvalidQuorumError`` unless ``1 <= quorum_size <= n_targets``."""
    if n_targets < 1:
        raise InvalidQuorumError("targets: a quorum needs at least one target")
    if not 1 <= quorum_size <= n_targets:
        raise InvalidQuorumError(f"quorum_size must be in 1..{n_targets}, got {quorum_size}")


class QuorumCollector(_FanOut):
    """Tracks votes of ``targets`` against ``quorum_size``; see the module docstring for the rules."""

    def __init__(self, targets: Iterable[str], quorum_size: int, deadline: float | None = None) -> None:
        super().__init__(targets)
        validate_quorum(len(self.targets), quorum_size)
        self.quorum_size = quorum_size
        self.deadline = deadline
        self._votes: dict[str, str] = {}

    def on_vote(self, node: str, vote: str | Consensus, payload: dict[str, Any] | None = None) -> bool:
        """Record ``node``'s answer carrying ``vote`` (e.g. "ACCEPT"/"REJECT", case-insensitive)."""
        value = vote.value if isinstance(vote, Consensus) else str(vote).upper()
        if not self._record(NodeOutcome(node, OutcomeStatus.SUCCESS, payload)):
            return False
        self._votes[node] = value
        return True

    def on_failure(self, node: str, error: str) -> bool:
        return self._record(NodeOutcome(node, OutcomeStatus.ERROR, error=error))

    def check_timeout(self, now: float) -> list[str]:
        """At or after the deadline (if any), mark outstanding targets timed out."""
        if self.deadline is None or now < self.deadline:
            return []
        return self.timeout_all()

    def timeout_all(self) -> list[str]:
        """Mark every outstanding target timed out (the adapter's own timer fired)."""
        late = self.outstanding
        for node in late:
            self._record(NodeOutcome(node, OutcomeStatus.TIMEOUT, error="timed out"))
        return late

    @property
    def responses(self) -> int:
        return len(self._votes)

    @property
    def status(self) -> QuorumStatus:
        if self.responses >= self.quorum_size:
            return QuorumStatus.REACHED
        if self.responses + len(self.outstanding) < self.quorum_size:
            return QuorumStatus.FAILED
        return QuorumStatus.PENDING

    @property
    def consensus(self) -> Consensus:
        accepts = sum(1 for v in self._votes.values() if v == Consensus.ACCEPT.value)
        if accepts >= self.quorum_size:
            return Consensus.ACCEPT
        if accepts + len(self.outstanding) < self.quorum_size:
            return Consensus.REJECT
        return Consensus.PENDING

    @property
    def done(self) -> bool:
        """Both the quorum and the consensus are decided (the adapter may stop waiting)."""
        return self.status is not QuorumStatus.PENDING and self.consensus is not Consensus.PENDING

    def tally(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for vote in self._votes.values():
            out[vote] = out.get(vote, 0) + 1
        return out

    def result(self) -> QuorumResult:
        outcomes = self.outcomes()
        return QuorumResult(
            quorum_reached=self.status is QuorumStatus.REACHED,
            quorum_size=self.quorum_size,
            responses=self.responses,
            consensus=self.consensus,
            status=self.status,
            votes=self.tally(),
            failed=[o.node for o in outcomes if o.status is OutcomeStatus.ERROR],
            timed_out=[o.node for o in outcomes if o.status is OutcomeStatus.TIMEOUT],
        )
