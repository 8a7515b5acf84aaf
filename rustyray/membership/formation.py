"""Forming the cluster and changing its Raft configuration, sans-I/O.

Theory of operation
-------------------
SWIM says who is alive; the Raft configuration (who votes) is the authoritative member set
(Ongaro, "Consensus: Bridging Theory and Practice", 2014, ch. 4). This module decides how that
configuration comes to be and changes; ``formation_adapter.py`` does the sending, the waiting and
the persisting, and ``service.py`` the start-up.

* Start. A node that kept ``cluster.json`` (Ray restarted it) learns the peers it knew and rejoins
  SWIM through them; a new node with seeds joins SWIM through the seeds and asks to be added to
  the configuration (``plan_start``).
* Bootstrap. An operator names the initial members, or, with ``[membership] bootstrap_expect = n``
  (Consul's option of that name), the node with the lowest id among at least ``n`` Alive SWIM
  members bootstraps them all once it sees them (``expect_bootstrap``): one node decides, so no
  two different first configurations form. Every initial member writes the same first
  configuration (``plan_bootstrap``: learn the peers, bootstrap Raft with them as voters, join
  SWIM through them); a node that already has a Raft log ignores a bootstrap.
* Changes. One server at a time through the log (single-server changes, thesis 4.1).
  ``route_change`` decides where a ``MembershipChange`` goes: refused without a configuration,
  forwarded to the leader from a follower (at most ``MAX_HOPS`` times), answered at once when it is
  already in effect, proposed on the leader otherwise. A proposal refused because another change is
  in flight (``RETRYABLE_CHANGE_ERRORS``) is retried on ``CHANGE_RETRY``.
* Joining. A new node asks each connected peer in turn to add it, in ``JOIN_RETRY`` rounds with a
  growing pause; the reply that adds it carries the cluster's name and id.
* Leaving. A leader first hands leadership to an Alive voter (``handoff_target``), then removes
  itself.
* The cluster record (``ClusterRecord``). The cluster's name and id, replicated as a
  ``{"type": "cluster"}`` entry (``cluster_entry``), and the log of configuration entries the API
  shows, both folded in from committed entries (``apply``); with the peers' addresses they make
  ``cluster.json`` (``snapshot`` / ``restore``).

Nothing here reads a clock: the retry schedules are pauses for the adapter to sleep.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rustyray.membership.messages import MembershipChange, MembershipChangeResult
from rustyray.membership.raft.errors import ConfChangeRejected, ProposalDropped
from rustyray.membership.raft.messages import EntryKind, RaftEntry, decode_conf_change
from rustyray.membership.swim.events import MemberInfo, MemberState

__all__ = [
    "BOOTSTRAP_REQUEST_TIMEOUT_S",
    "CHANGE_RETRY",
    "CHANGE_TIMEOUT_S",
    "FORWARD_TIMEOUT_S",
    "HANDOFF_POLL",
    "JOIN_REQUEST_TIMEOUT_S",
    "JOIN_RETRY",
    "LEADER_POLL_S",
    "LEADER_WAIT_S",
    "MAX_HOPS",
    "RETRYABLE_CHANGE_ERRORS",
    "BootstrapOutcome",
    "BootstrapPlan",
    "ClusterRecord",
    "Forward",
    "InEffect",
    "Propose",
    "Refuse",
    "RetrySchedule",
    "StartPlan",
    "bootstrap_report",
    "cluster_entry",
    "expect_bootstrap",
    "handoff_target",
    "plan_bootstrap",
    "plan_start",
    "route_change",
]

MAX_HOPS = 3
"""Forwards a change may take towards the leader before a node answers "no Raft leader"."""
FORWARD_TIMEOUT_S = 15.0
"""Seconds to wait for the leader's answer to a forwarded change."""
CHANGE_TIMEOUT_S = 10.0
"""Seconds a proposed change may take to commit and apply on the leader."""
JOIN_REQUEST_TIMEOUT_S = 15.0
"""Seconds to wait for one peer's answer to a join request."""
BOOTSTRAP_REQUEST_TIMEOUT_S = 10.0
"""Seconds to wait for each initial member to acknowledge the ``ClusterBootstrap``."""
LEADER_WAIT_S = 15.0
"""Seconds a bootstrap waits for the first leader before it answers without one."""
LEADER_POLL_S = 0.05
"""Seconds between two looks for the first leader."""


@dataclass(frozen=True)
class RetrySchedule:
    """``attempts`` tries; after failed try ``n`` (0-based) pause ``min(max_s, first_s + step_s * n)`` seconds."""

    attempts: int
    first_s: float
    step_s: float = 0.0
    max_s: float = math.inf

    def pauses(self) -> Iterator[float]:
        """One pause per attempt, in order (the adapter tries, then sleeps the pause on failure)."""
        for n in range(self.attempts):
            yield min(self.max_s, self.first_s + self.step_s * n)


CHANGE_RETRY = RetrySchedule(attempts=50, first_s=0.1)
"""A change refused because another one is in flight: wait for that one to commit, 50 times."""
JOIN_RETRY = RetrySchedule(attempts=120, first_s=0.2, step_s=0.2, max_s=2.0)
"""Rounds of join requests: 0.2 s, 0.4 s, ... up to 2 s between rounds (about 3.7 minutes in all)."""
HANDOFF_POLL = RetrySchedule(attempts=40, first_s=0.05)
"""Looks (2 s in all) for another leader after a leaving leader transferred its leadership."""

RETRYABLE_CHANGE_ERRORS = (ConfChangeRejected, ProposalDropped)
"""Proposal errors that mean "another change is in flight (or was lost): try again"."""


# ---------------------------------------------------------------------------------------- start-up


@dataclass(frozen=True)
class StartPlan:
    """How a starting node (re)joins: peers to learn, members to join SWIM through, whether to ask Raft."""

    learn: dict[str, tuple[str, str]]
    """Peers (tcp, quic) known from ``cluster.json``, this node excluded."""
    swim_seeds: list[str]
    """Whom SWIM joins through: the known peers, else the seeds as ``seed:host:port``."""
    join_raft: bool
    """A new node with seeds: ask the cluster to add it to the Raft configuration."""


def plan_start(own_id: str, known: Mapping[str, Sequence[str]], seeds: Sequence[str]) -> StartPlan:
    """``known``: the peers of ``cluster.json`` (node id -> [tcp, quic]); ``seeds``: ``host:port`` strings."""
    learn = {peer: (tcp, quic) for peer, (tcp, quic) in known.items() if peer != own_id}
    if known:  # a restarted node rejoins through the peers it knew
        return StartPlan(learn, sorted(known), join_raft=False)
    if seeds:
        return StartPlan(learn, [f"seed:{s}" for s in seeds], join_raft=True)
    return StartPlan(learn, [], join_raft=False)


def join_steps(node_id: str, tcp_address: str, quic_address: str, *, has_raft_state: bool) -> list[MembershipChange]:
    """The changes a node joining through seeds asks for, in order.

    A node without Raft state may be a member that lost its state (a host crash, a node Ray restarted
    on another host): its old self's log entries and votes are gone. Rejoining under the old identity
    with an empty log would let it vote twice in a term and count toward a quorum for entries it no
    longer holds (Raft's amnesia problem). So it first asks to *remove* a voter of its name (a no-op for
    a brand-new node) and only then to be added, as a fresh member that catches up from the leader's log.
    Until the removal is answered it takes no part in Raft (``FormationAdapter.rejoining``)."""
    add = MembershipChange(op="add", node_id=node_id, tcp_address=tcp_address, quic_address=quic_address)
    if has_raft_state:
        return [add]
    return [MembershipChange(op="remove", node_id=node_id), add]


# ---------------------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapPlan:
    """What an initial member does with a bootstrap's member table."""

    learn: dict[str, tuple[str, str]]
    """The other initial members' addresses (tcp, quic)."""
    voters: list[str]
    """The first Raft configuration (every initial member, this one included)."""
    swim_seeds: list[str]
    """The other initial members, to join SWIM through."""


def plan_bootstrap(own_id: str, members: Mapping[str, Sequence[str]]) -> BootstrapPlan:
    """``members``: node id -> [tcp_address, quic_address] (``ClusterBootstrap.members``)."""
    learn = {node_id: (tcp, quic) for node_id, (tcp, quic) in members.items() if node_id != own_id}
    return BootstrapPlan(learn, list(members), [m for m in members if m != own_id])


def expect_bootstrap(own_id: str, expect: int, members: Iterable[MemberInfo]) -> dict[str, list[str]] | None:
    """With ``bootstrap_expect``: the member table to bootstrap when this node should do it now, else None.

    This node bootstraps when SWIM shows at least ``expect`` Alive members (itself included) and it
    has the lowest id among them; the table holds every Alive member.
    """
    if expect <= 0:
        return None
    members = list(members)
    alive = sorted(m.node_id for m in members if m.state is MemberState.ALIVE)
    if len(alive) < expect or alive[0] != own_id:
        return None
    return {m.node_id: [m.tcp_address, m.quic_address] for m in members if m.node_id in alive}


# ---------------------------------------------------------------------------------------- changes


@dataclass(frozen=True)
class Refuse:
    """Answer the change with this error (nothing to propose, nobody to forward to)."""

    error: str

    def result(self) -> MembershipChangeResult:
        return MembershipChangeResult(ok=False, error=self.error)


@dataclass(frozen=True)
class Forward:
    """Send ``change`` (one more hop) to ``leader`` and relay its answer."""

    leader: str
    change: MembershipChange


@dataclass(frozen=True)
class InEffect:
    """The change is already in effect: answer ok."""


@dataclass(frozen=True)
class Propose:
    """This node leads: propose ``op`` of ``node_id`` through the log (learn the new server's address first)."""

    op: str
    node_id: str
    learn: tuple[str, str] | None
    """(tcp, quic) of a server being added, so the leader can replicate to it; None: nothing to learn."""


ChangeRoute = Refuse | Forward | InEffect | Propose


def route_change(msg: MembershipChange, *, started: bool, is_leader: bool, leader: str | None,
                 voters: Iterable[str]) -> ChangeRoute:
    """Where ``msg`` goes, given this node's Raft state (``voters``: the current configuration)."""
    if not started:
        return Refuse("this node has no cluster configuration yet")
    if not is_leader:
        if leader is None or msg.hops >= MAX_HOPS:
            return Refuse("no Raft leader at the moment; retry")
        return Forward(leader, MembershipChange(op=msg.op, node_id=msg.node_id, tcp_address=msg.tcp_address,
                                                quic_address=msg.quic_address, hops=msg.hops + 1))
    current = set(voters)
    if (msg.op == "add" and msg.node_id in current) or (msg.op == "remove" and msg.node_id not in current):
        return InEffect()
    learn = (msg.tcp_address, msg.quic_address) if msg.op == "add" and msg.tcp_address else None
    return Propose(msg.op, msg.node_id, learn)


def handoff_target(own_id: str, voters: Iterable[str], state_of: Callable[[str], MemberState | None]) -> str | None:
    """The voter a leaving leader hands leadership to: the first other voter SWIM holds Alive, if any."""
    return next((m for m in voters if m != own_id and state_of(m) is MemberState.ALIVE), None)


# ---------------------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class BootstrapOutcome:
    """What a bootstrap really did, as the adapter observed it."""

    cluster_name: str
    cluster_id: str
    members: tuple[str, ...]
    unreached: Mapping[str, str]
    """Initial members that did not acknowledge the ``ClusterBootstrap`` -> the error."""
    leader: str | None
    """The first Raft leader, None when none appeared within ``leader_wait_s``."""
    record_error: str | None
    """None when the cluster entry committed; else why not (no leader, refused, timed out)."""
    leader_wait_s: float


def bootstrap_report(o: BootstrapOutcome) -> dict[str, Any]:
    """The ``POST /membership/bootstrap`` answer: ``bootstrapped`` only when a leader was elected and the
    cluster's identity committed through it; every member that did not answer and every error is named."""
    errors = [f"{n} did not acknowledge the bootstrap: {e}" for n, e in sorted(o.unreached.items())]
    if o.leader is None:
        errors.append(f"no Raft leader within {o.leader_wait_s:g} s: a majority of the {len(o.members)} initial "
                      "members must be reachable; the configuration is written, a leader may still appear")
    elif o.record_error is not None:
        errors.append(f"the cluster record was not committed: {o.record_error}")
    return {
        "bootstrapped": o.leader is not None and o.record_error is None,
        "cluster_id": o.cluster_id,
        "cluster_name": o.cluster_name,
        "initial_leader": o.leader,
        "members": len(o.members),
        "member_ids": sorted(o.members),
        "acknowledged": sorted(set(o.members) - set(o.unreached)),
        "unreached": sorted(o.unreached),
        "cluster_record": "committed" if o.leader is not None and o.record_error is None else "not_committed",
        "errors": errors,
    }


def cluster_entry(cluster_name: str, cluster_id: str, replication_factor: int | None) -> bytes:
    """The Raft entry that replicates the cluster's identity (``ClusterRecord.apply`` reads it back)."""
    return json.dumps({"type": "cluster", "cluster_name": cluster_name, "cluster_id": cluster_id,
                       "replication_factor": replication_factor}).encode()


class ClusterRecord:
    """The cluster's identity (``name``, ``id``; None until known) and its configuration log."""

    def __init__(self, *, log_size: int = 256) -> None:
        self.name: str | None = None
        self.id: str | None = None
        self.log: deque[dict[str, Any]] = deque(maxlen=log_size)

    def restore(self, saved: Mapping[str, Any]) -> dict[str, list[str]]:
        """Read back a ``snapshot`` (``{}`` when there was none); returns its peers (id -> [tcp, quic])."""
        self.name = saved.get("cluster_name")
        self.id = saved.get("cluster_id")
        return dict(saved.get("peers", {}))

    def snapshot(self, peers: Mapping[str, list[str]]) -> dict[str, Any]:
        """``cluster.json``: the identity and the peers the node wants (id -> [tcp, quic])."""
        return {"cluster_name": self.name, "cluster_id": self.id, "peers": dict(peers)}

    def adopt(self, name: str, cluster_id: str) -> None:
        """The identity a join reply carries (an empty field keeps what this node had)."""
        self.name = name or self.name
        self.id = cluster_id or self.id

    def apply(self, entry: RaftEntry) -> bool:
        """Fold in a committed entry; True when it was a cluster entry (the identity may have changed)."""
        if entry.kind is EntryKind.CONF_CHANGE:
            cc = decode_conf_change(entry.data)
            self.log.append({"index": entry.index, "term": entry.term, "op": cc.op, "node_id": cc.node_id,
                             "members": sorted(cc.members)})
            return False
        if entry.kind is not EntryKind.NORMAL or not entry.data.startswith(b"{"):
            return False  # membership entries are JSON objects; anything else is opaque to us
        try:
            data = json.loads(entry.data)
        except ValueError:
            return False
        is_cluster = data.get("type") == "cluster"
        if is_cluster:
            self.name = data.get("cluster_name", self.name)
            self.id = data.get("cluster_id", self.id)
        self.log.append({"index": entry.index, "term": entry.term, **data})
        return is_cluster

    def result(self, ok: bool, leader: str | None, voters: list[str]) -> MembershipChangeResult:
        """A change's answer from the leader: the configuration now and the cluster's identity."""
        return MembershipChangeResult(ok=ok, leader=leader or "", members=voters, cluster_name=self.name or "",
                                      cluster_id=self.id or "")
