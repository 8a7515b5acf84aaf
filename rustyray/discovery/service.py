"""Discovery service: the asyncio adapter that puts the discovery backends to work on one node.

Three jobs, all driven from the ``[discovery]`` table (backend subtables plus the service keys of
:class:`DiscoveryServiceConfig`):

* Self-registration. When etcd or Consul is configured the node registers itself at start (its node
  id, its advertised TCP address, ``quic_address`` in the metadata) on a lease / TTL check the backend
  keeps alive, and deregisters on stop (graceful leave). A failed first attempt is retried every
  ``refresh_interval_s`` until it succeeds.
* Cluster formation. For every joined backend a job runs ``discover()`` at start and every
  ``refresh_interval_s``; etcd, Consul and Kubernetes are also followed through ``watch()`` so joins are
  seen at once. Candidates that carry node ids (DNS target label, etcd/Consul registrations, pod
  names) go to ``node.learn_peer`` and the node dials them with ``expect_node``; cloud candidates only
  carry instance ids, so their address is dialled like a seed and the handshake names the node.
  Removal is membership's business: discovery only ever adds peers.
* The REST operations of NETWORKING-020..024, in :class:`~rustyray.discovery.api.DiscoveryApi` (``self.api``).

What to do with each answer (whom to join, how sightings merge, what a failure records) is decided by
:class:`~rustyray.discovery.formation.FormationCore`; when each job runs next by
:class:`~rustyray.discovery.schedule.Schedule`, behind one ``loop.call_at`` timer. This module reads
the clocks, awaits the backends and the node, and performs the cores' actions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rustyray._aio import cancel_and_wait
from rustyray.discovery.api import DiscoveryApi
from rustyray.discovery.config import DiscoveryServiceConfig
from rustyray.discovery.errors import DiscoveryError
from rustyray.discovery.formation import Action, FormationCore, Learn, Probe
from rustyray.discovery.model import DiscoveryResult
from rustyray.discovery.registry import DiscoveryRegistry
from rustyray.discovery.schedule import Job, JobKind, Schedule

if TYPE_CHECKING:
    from rustyray.transport.api import Host

log = logging.getLogger(__name__)


class DiscoveryService:
    """One node's discovery: registry, self-registration, formation jobs; the REST operations are ``self.api``."""

    def __init__(self, node: Host) -> None:
        self.node = node
        section = node.config.section("discovery")
        self.config_error: str | None = None
        try:
            self.config = DiscoveryServiceConfig.from_section(section)
        except (ValueError, TypeError) as exc:
            self.config_error = str(exc)
            self.config = DiscoveryServiceConfig()
        self.registry = DiscoveryRegistry.from_dict(section)
        self.core = FormationCore(node.node_id, self.config, self.registry.configured())
        self.schedule = Schedule(self.config.refresh_interval_s)
        self._runners = {JobKind.REGISTER: self._register, JobKind.POLL: self._poll, JobKind.WATCH: self._watch}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self.api = DiscoveryApi(self)

    @property
    def learned(self) -> dict[str, dict[str, Any]]:
        """node id -> how and when discovery first handed it to the node."""
        return self.core.learned

    def joined_backends(self) -> list[str]:
        """Configured backends whose candidates this node joins, in registry order."""
        return self.core.joined_backends()

    def health(self) -> tuple[str, str]:
        """"not_configured" without backends, "degraded" when one fails, else "healthy"."""
        return self.core.health(self.registry.status(), self.config_error)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Register where configured (failures are retried in the background), then start the jobs."""
        loop = asyncio.get_running_loop()
        for name in self.core.registration_targets():
            ok = await self._register(name)
            self.schedule.finished(Job(JobKind.REGISTER, name), loop.time(), ok=ok)
        now = loop.time()
        for job in self.core.loop_jobs():
            self.schedule.add(job, now)
        self._on_timer()

    async def stop(self) -> None:
        """Stop the jobs, deregister (graceful leave), close the backends' clients."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        await cancel_and_wait(list(self._tasks), 2.0, owner=f"{self.node.node_id} discovery")
        self._tasks.clear()
        self.schedule.clear()
        # Node.stop allows a service 5 s: deregister everywhere in parallel within one budget.
        names = self.core.registered_backends()
        if names:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(self._deregister(n) for n in names)),
                                       self.config.registration_timeout_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.registry.aclose(), 1.0)

    async def _deregister(self, name: str) -> None:
        try:
            backend: Any = self.registry.get(name)
            await backend.deregister(self.node.node_id)
        except DiscoveryError as exc:
            log.warning("%s could not deregister from %s: %s", self.node.node_id, name, exc)
            return
        self.core.deregistered(name)

    # ------------------------------------------------------------------ the timer and the jobs
    def _on_timer(self) -> None:
        """Start the jobs that are due, then re-arm the one timer at the next deadline."""
        self._timer = None
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        for job in self.schedule.due(loop.time()):
            task = self.node.spawn(self._run(job), name=f"discovery {job.kind.value} {job.backend}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        deadline = self.schedule.next_deadline()
        if deadline is not None:
            self._timer = loop.call_at(deadline, self._on_timer)

    async def _run(self, job: Job) -> None:
        ok = await self._runners[job.kind](job.backend)
        self.schedule.finished(job, asyncio.get_running_loop().time(), ok=ok)
        if self._timer is not None:
            self._timer.cancel()
        self._on_timer()

    async def _register(self, name: str) -> bool:
        node = self.node
        meta = {"quic_address": node.quic_address} if node.quic_address else {}
        try:
            backend: Any = self.registry.get(name)
            result = await asyncio.wait_for(backend.register(node.node_id, node.advertise_host, node.tcp_port,
                                                             meta=meta), self.config.registration_timeout_s)
        except (DiscoveryError, TimeoutError) as exc:
            error = self.core.registration_failed(name, f"{exc or type(exc).__name__}")
            log.warning("%s could not register in %s: %s", node.node_id, name, error)
            return False
        self.core.registered(name, result, time.time())
        return True

    async def _poll(self, name: str) -> bool:
        with contextlib.suppress(DiscoveryError):
            await self.discover(name)
        return True

    async def _watch(self, name: str) -> bool:
        try:
            backend: Any = self.registry.get(name)
            async for event in backend.watch():
                self._perform(self.core.watch_event(name, event, time.time(), self.node))
        except DiscoveryError as exc:
            self.core.watch_failed(name, str(exc), time.time())
        return True

    # ------------------------------------------------------------------ formation
    async def discover(self, name: str) -> DiscoveryResult:
        """One ``discover()`` round on ``name``: recorded in the status and joined if ``name`` is joined."""
        backend = self.registry.get(name)  # raises the not-configured / misconfigured errors
        self.core.round_started(name, time.time())
        try:
            result = await backend.discover()
        except DiscoveryError as exc:
            self.core.round_failed(name, str(exc), time.time())
            raise
        self._perform(self.core.round_succeeded(name, result.candidates, time.time(), self.node))
        return result

    def _perform(self, actions: Iterable[Action]) -> None:
        for action in actions:
            if isinstance(action, Learn):
                self.node.learn_peer(action.node_id, action.address, action.quic_address)
            else:
                self.node.spawn(self._probe(action), name=f"discovery probe {action.candidate.address}")

    async def _probe(self, probe: Probe) -> None:
        """Dial a cloud instance's address without knowing its node id; the hello teaches it."""
        c = probe.candidate
        try:
            conn, ack = await self.node.dial(c.host, c.port)
        except (ConnectionError, OSError) as exc:
            self.core.probe_ended(probe.backend, c, time.time(), error=str(exc))
            return
        except BaseException:
            self.core.probe_ended(probe.backend, c, time.time())
            raise
        self.core.probe_ended(probe.backend, c, time.time(), answered=ack.node_id)
        conn.close("discovery probe done")  # dial() taught the node the peer; it redials with expect_node
