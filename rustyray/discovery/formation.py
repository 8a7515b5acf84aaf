"""Cluster formation through discovery: the sans-I/O core behind the discovery service.

Theory of operation. The service (the asyncio adapter) talks to the backends; this core decides
what their answers mean for the node and keeps the record the status page shows. It is fed events,
each with the wall-clock ``now`` the adapter read once for it, and returns actions:

* *Which backends.* :meth:`FormationCore.registration_targets` names the backends the node registers
  itself in at start (etcd and Consul, when configured and ``register`` is on);
  :meth:`~FormationCore.joined_backends` those whose candidates it joins (``join``, default all);
  :meth:`~FormationCore.loop_jobs` the POLL / WATCH jobs that follow them (see :mod:`.schedule`
  for when those run again).
* *How results merge.* A ``discover()`` round is a full listing: it replaces the backend's sighting
  set, keeping first-seen times of nodes still listed. A watch JOIN adds or refreshes one sighting, a
  LEAVE drops it. Removal stops there: membership (SWIM) decides who is gone; discovery only adds.
* *Whom to join.* A candidate at this node's own address or with its node id is skipped, as is a
  peer already connected or already known at that address. Candidates that carry node ids become
  :class:`Learn` actions (the node dials them with ``expect_node``) and are remembered in ``learned``
  (first sighting wins). Cloud candidates carry instance ids only: each new address becomes one
  :class:`Probe` (a dial whose hello names the node) and is not probed again while that dial runs.
* *Backend failure.* A failed round, a broken watch or a failed probe is recorded as the backend's
  ``last_error`` (the round also counts in ``failures``); it keeps its last sightings. A failed
  self-registration is recorded as ``registration_error`` until a retry succeeds. Either makes the
  backend ``failing`` and the service ``degraded`` until the backend next succeeds.

No asyncio, sockets or clock reads here: the adapter performs the actions and reports back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from rustyray.discovery.model import Candidate, DiscoveryEvent, DiscoveryEventKind
from rustyray.discovery.registry import BACKENDS
from rustyray.discovery.schedule import Job, JobKind
from rustyray.records import record

#: Backends a node registers itself in.
REGISTERING = ("etcd", "consul")
#: Backends whose ``watch()`` is a real change feed (the others would only poll again).
WATCHABLE = ("etcd", "consul", "kubernetes")
#: Backends whose candidates are instances, not node ids: their addresses are dialled like seeds.
ADDRESS_ONLY = ("aws", "azure", "gcp")


class FormationSettings(Protocol):
    """The service keys the core decides with (``DiscoveryServiceConfig`` has them)."""

    @property
    def register(self) -> bool: ...

    @property
    def join(self) -> tuple[str, ...] | None: ...

    @property
    def watch(self) -> bool: ...


class PeerView(Protocol):
    """What the core reads of a peer the node already knows."""

    @property
    def connected(self) -> bool: ...

    @property
    def tcp_address(self) -> str: ...


class NodeView(Protocol):
    """What the core reads of the node (the ``Host`` satisfies it)."""

    @property
    def node_id(self) -> str: ...

    @property
    def tcp_address(self) -> str: ...

    @property
    def peers(self) -> Mapping[str, PeerView]: ...


@dataclass(frozen=True)
class Learn:
    """Action: hand ``node_id`` at ``address`` to the node (``node.learn_peer``)."""

    node_id: str
    address: str
    quic_address: str = ""


@dataclass(frozen=True)
class Probe:
    """Action: dial the cloud instance ``candidate`` of ``backend`` and report with ``probe_ended``."""

    backend: str
    candidate: Candidate


Action = Learn | Probe


@dataclass
class Sighting:
    """A candidate as this node last saw it, with when it first and last did."""

    candidate: Candidate
    first_seen_at: float
    last_seen_at: float

    def describe(self) -> dict[str, Any]:
        c = self.candidate
        out = {"id": c.node_id, "address": c.address, "first_seen_at": self.first_seen_at,
               "last_seen_at": self.last_seen_at}
        if c.meta.get("quic_address"):
            out["quic_address"] = c.meta["quic_address"]
        return out


@dataclass
class BackendState:
    """What the service has done with one backend: rounds, errors, sightings, registration."""

    name: str
    rounds: int = 0
    failures: int = 0
    watch_events: int = 0
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_event_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    registration: dict[str, Any] | None = None
    registration_error: str | None = None
    seen: dict[str, Sighting] = field(default_factory=dict)

    @property
    def failing(self) -> bool:
        if self.registration_error is not None:
            return True
        return self.last_error_at is not None and (self.last_success_at or 0) < self.last_error_at

    def saw_all(self, candidates: Iterable[Candidate], now: float) -> None:
        """A full listing: replace the set, keeping first-seen times of nodes still there."""
        fresh: dict[str, Sighting] = {}
        for c in candidates:
            old = self.seen.get(c.node_id)
            fresh[c.node_id] = Sighting(c, old.first_seen_at if old else now, now)
        self.seen = fresh

    def saw_one(self, candidate: Candidate, now: float) -> None:
        old = self.seen.get(candidate.node_id)
        self.seen[candidate.node_id] = Sighting(candidate, old.first_seen_at if old else now, now)

    def failed(self, error: str, now: float) -> None:
        self.last_error = error
        self.last_error_at = now

    def view(self) -> dict[str, Any]:
        """The status page's record of this backend (from ``registration_error`` on)."""
        return {"registration_error": self.registration_error,
                **record(self, exclude=("name", "registration", "registration_error", "seen")),
                "discovered": [s.describe() for _, s in sorted(self.seen.items())]}


class FormationCore:
    """One node's discovery decisions and record (see the module docstring)."""

    def __init__(self, node_id: str, config: FormationSettings, configured: Iterable[str]) -> None:
        self.node_id = node_id
        self.config = config
        #: Backends with a valid table, in registry order.
        self.configured = [n for n in BACKENDS if n in set(configured)]
        self.state: dict[str, BackendState] = {name: BackendState(name) for name in BACKENDS}
        #: node id -> how and when discovery first handed it to the node.
        self.learned: dict[str, dict[str, Any]] = {}
        #: Cloud addresses being dialled now.
        self.probing: set[str] = set()

    # ------------------------------------------------------------------ which backends
    def joined_backends(self) -> list[str]:
        """Configured backends whose candidates this node joins, in registry order."""
        if self.config.join is None:
            return list(self.configured)
        return [n for n in self.configured if n in self.config.join]

    def registration_targets(self) -> list[str]:
        """Backends to register this node in at start."""
        return [n for n in REGISTERING if n in self.configured] if self.config.register else []

    def loop_jobs(self) -> list[Job]:
        """The background jobs that follow the joined backends, due at start."""
        jobs = []
        for name in self.joined_backends():
            jobs.append(Job(JobKind.POLL, name))
            if self.config.watch and name in WATCHABLE:
                jobs.append(Job(JobKind.WATCH, name))
        return jobs

    # ------------------------------------------------------------------ self-registration
    def registered(self, name: str, result: Mapping[str, Any], now: float) -> None:
        state = self.state[name]
        state.registration = {**result, "registered_at": now}
        state.registration_error = None

    def registration_failed(self, name: str, reason: str) -> str:
        """Record a failed attempt; returns the recorded message."""
        self.state[name].registration_error = f"registration failed: {reason}"
        return self.state[name].registration_error

    def registered_backends(self) -> list[str]:
        """Backends this node is registered in (to deregister from on stop)."""
        return [n for n in REGISTERING if self.state[n].registration is not None]

    def deregistered(self, name: str) -> None:
        self.state[name].registration = None

    # ------------------------------------------------------------------ rounds and watches
    def round_started(self, name: str, now: float) -> None:
        self.state[name].rounds += 1
        self.state[name].last_attempt_at = now

    def round_failed(self, name: str, error: str, now: float) -> None:
        self.state[name].failures += 1
        self.state[name].failed(error, now)

    def round_succeeded(self, name: str, candidates: Iterable[Candidate], now: float,
                        here: NodeView) -> list[Action]:
        """Merge a full listing; join it when ``name`` is joined."""
        candidates = tuple(candidates)
        state = self.state[name]
        state.last_success_at = now
        state.saw_all(candidates, now)
        return self._join(name, candidates, now, here) if name in self.joined_backends() else []

    def watch_event(self, name: str, event: DiscoveryEvent, now: float, here: NodeView) -> list[Action]:
        state = self.state[name]
        state.watch_events += 1
        state.last_event_at = now
        if event.kind is DiscoveryEventKind.JOIN:
            state.saw_one(event.candidate, now)
            return self._join(name, [event.candidate], now, here)
        state.seen.pop(event.candidate.node_id, None)
        return []

    def watch_failed(self, name: str, error: str, now: float) -> None:
        self.state[name].failed(f"watch: {error}", now)

    # ------------------------------------------------------------------ joining
    def _join(self, name: str, candidates: Iterable[Candidate], now: float, here: NodeView) -> list[Action]:
        actions: list[Action] = []
        learning: dict[str, str] = {}  # node id -> address of a Learn in this batch (the node knows it next)
        for c in candidates:
            if c.address == here.tcp_address:
                continue
            if name in ADDRESS_ONLY:
                if c.address in self.probing or any(p.tcp_address == c.address for p in here.peers.values()):
                    continue
                self.probing.add(c.address)
                actions.append(Probe(name, c))
                continue
            if c.node_id == here.node_id or learning.get(c.node_id) == c.address:
                continue
            peer = here.peers.get(c.node_id)
            if peer is not None and (peer.connected or peer.tcp_address == c.address):
                continue
            learning[c.node_id] = c.address
            actions.append(Learn(c.node_id, c.address, str(c.meta.get("quic_address", ""))))
            self.learned.setdefault(c.node_id, {"node_id": c.node_id, "backend": name, "address": c.address,
                                                "learned_at": now})
        return actions

    def probe_ended(self, name: str, candidate: Candidate, now: float, *, answered: str | None = None,
                    error: str | None = None) -> None:
        """A probe dial ended: ``answered`` names the node that said hello, ``error`` why the dial failed."""
        self.probing.discard(candidate.address)
        if error is not None:
            self.state[name].failed(f"dial {candidate.node_id} at {candidate.address}: {error}", now)
        if answered is not None and answered != self.node_id:
            self.learned.setdefault(answered, {"node_id": answered, "backend": name, "address": candidate.address,
                                               "instance_id": candidate.node_id, "learned_at": now})

    def learned_peers(self, here: NodeView) -> list[dict[str, Any]]:
        """``learned``, sorted by node id, each with whether the node is connected to it now."""
        out = []
        for node_id, entry in sorted(self.learned.items()):
            peer = here.peers.get(node_id)
            out.append({**entry, "connected": bool(peer and peer.connected)})
        return out

    # ------------------------------------------------------------------ health
    def health(self, registry_status: Mapping[str, Mapping[str, Any]], config_error: str | None) -> tuple[str, str]:
        """"not_configured" without backends, "degraded" when one fails, else "healthy"."""
        problems = [f"{n}: {s['error']}" for n, s in registry_status.items() if s["error"]]
        if config_error:
            problems.insert(0, config_error)
        if not self.configured and not problems:
            return "not_configured", "no discovery backend configured. " + BACKENDS["etcd"].hint
        for name in self.configured:
            st = self.state[name]
            if st.failing:
                problems.append(f"{name}: {st.registration_error or st.last_error}")
        if problems:
            return "degraded", "; ".join(problems)
        parts = []
        for name in self.configured:
            st = self.state[name]
            seen = f"{len(st.seen)} nodes" if st.last_success_at else "not queried yet"
            parts.append(f"{name}: {seen}{', registered' if st.registration else ''}")
        return "healthy", "; ".join(parts)
