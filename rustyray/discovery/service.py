"""Discovery service: the asyncio adapter that puts the discovery backends to work on one node.

Three jobs, all driven from the ``[discovery]`` table (backend subtables plus the service keys of
:class:`DiscoveryServiceConfig`):

* Self-registration. When etcd or Consul is configured the node registers itself at start (its node
  id, its advertised TCP address, ``quic_address`` in the metadata) on a lease / TTL check the backend
  keeps alive, and deregisters on stop (graceful leave). A failed first attempt is retried every
  ``refresh_interval_s`` until it succeeds.
* Cluster formation. For every joined backend a loop runs ``discover()`` at start and every
  ``refresh_interval_s``; etcd, Consul and Kubernetes are also followed through ``watch()`` so joins are
  seen at once. Candidates that carry node ids (DNS target label, etcd/Consul registrations, pod
  names) go to ``node.learn_peer`` and the node dials them with ``expect_node``; cloud candidates only
  carry instance ids, so their address is dialled like a seed and the handshake names the node.
  Removal is membership's business: discovery only ever adds peers.
* The REST operations of NETWORKING-020..024 (``api_*``), which return the backend's body unchanged
  and map :class:`~rustyray.discovery.errors.DiscoveryError` onto ``ApiError`` with its ``http_status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from rustyray._aio import cancel_and_wait
from rustyray.discovery.errors import (
    BackendMisconfiguredError,
    BackendNotConfiguredError,
    DiscoveryError,
    UnknownBackendError,
)
from rustyray.discovery.model import Candidate, DiscoveryEventKind, DiscoveryResult
from rustyray.discovery.registry import BACKENDS, DiscoveryRegistry
from rustyray.errors import ApiError

if TYPE_CHECKING:
    from rustyray.transport.api import Host

log = logging.getLogger(__name__)

#: Backends a node registers itself in.
REGISTERING = ("etcd", "consul")
#: Backends whose ``watch()`` is a real change feed (the others would only poll again).
WATCHABLE = ("etcd", "consul", "kubernetes")
#: Backends whose candidates are instances, not node ids: their addresses are dialled like seeds.
ADDRESS_ONLY = ("aws", "azure", "gcp")
CLOUD_PROVIDERS = ("aws", "azure", "gcp")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")


@dataclass(frozen=True)
class DiscoveryServiceConfig:
    """The service keys at the top of ``[discovery]`` (beside the backend subtables)."""

    #: Seconds between two ``discover()`` rounds of each joined backend (and between registration retries).
    refresh_interval_s: float = 10.0
    #: Register this node in etcd / Consul when they are configured (and deregister on stop).
    register: bool = True
    #: Backends whose candidates this node joins; None joins every configured backend, [] none.
    join: tuple[str, ...] | None = None
    #: Follow etcd / Consul / Kubernetes change feeds between rounds, so joins are seen at once.
    watch: bool = True
    #: Seconds allowed for each registration or deregistration at start / stop.
    registration_timeout_s: float = 3.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        for name in ("refresh_interval_s", "registration_timeout_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        for name in ("register", "watch"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.join is not None:
            if not isinstance(self.join, tuple) or not all(isinstance(n, str) for n in self.join):
                raise ValueError("join must be a list of backend names")
            unknown = [n for n in self.join if n not in BACKENDS]
            if unknown:
                raise ValueError(f"join names unknown backend(s) {', '.join(unknown)}; "
                                 f"known: {', '.join(BACKENDS)}")

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> DiscoveryServiceConfig:
        """The service keys of a parsed ``[discovery]`` table (backend subtables are skipped)."""
        names = {f.name for f in fields(cls)}
        table = {k: v for k, v in section.items() if k not in BACKENDS}
        unknown = sorted(set(table) - names)
        if unknown:
            raise ValueError(f"[discovery] has unknown key(s) {', '.join(unknown)}; service keys: "
                             f"{', '.join(sorted(names))}; backend tables: {', '.join(BACKENDS)}")
        if isinstance(table.get("join"), list):
            table["join"] = tuple(table["join"])
        config = cls(**table)
        config.validate()
        return config


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
    last_error: str | None = None
    last_error_at: float | None = None
    last_event_at: float | None = None
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


class DiscoveryService:
    """One node's discovery: registry, self-registration, formation loops and the REST operations."""

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
        self.state: dict[str, BackendState] = {name: BackendState(name) for name in DiscoveryRegistry.known()}
        #: node id -> how and when discovery first handed it to the node.
        self.learned: dict[str, dict[str, Any]] = {}
        self._probing: set[str] = set()  # cloud addresses being dialled now
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = False

    # ------------------------------------------------------------------ configuration views
    def joined_backends(self) -> list[str]:
        """Configured backends whose candidates this node joins, in registry order."""
        configured = self.registry.configured()
        if self.config.join is None:
            return configured
        return [n for n in configured if n in self.config.join]

    def _self_meta(self) -> dict[str, str]:
        return {"quic_address": self.node.quic_address} if self.node.quic_address else {}

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Register where configured (failures are retried in the background), then start the loops."""
        if self.config.register:
            for name in REGISTERING:
                if name in self.registry.configured() and not await self._register(name):
                    self._spawn(self._register_loop(name), f"discovery register {name}")
        for name in self.joined_backends():
            self._spawn(self._poll_loop(name), f"discovery poll {name}")
            if self.config.watch and name in WATCHABLE:
                self._spawn(self._watch_loop(name), f"discovery watch {name}")

    async def stop(self) -> None:
        """Stop the loops, deregister (graceful leave), close the backends' clients."""
        self._stopping = True
        await cancel_and_wait(self._tasks, 2.0, owner=f"{self.node.node_id} discovery")
        self._tasks.clear()
        # Node.stop allows a service 5 s: deregister everywhere in parallel within one budget.
        names = [n for n in REGISTERING if self.state[n].registration is not None]
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
        self.state[name].registration = None

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.append(self.node.spawn(coro, name=name))

    # ------------------------------------------------------------------ self-registration
    async def _register(self, name: str) -> bool:
        state = self.state[name]
        node = self.node
        try:
            backend: Any = self.registry.get(name)
            result = await asyncio.wait_for(
                backend.register(node.node_id, node.advertise_host, node.tcp_port, meta=self._self_meta()),
                self.config.registration_timeout_s,
            )
        except (DiscoveryError, TimeoutError) as exc:
            state.registration_error = f"registration failed: {exc or type(exc).__name__}"
            log.warning("%s could not register in %s: %s", node.node_id, name, state.registration_error)
            return False
        state.registration = {**result, "registered_at": time.time()}
        state.registration_error = None
        return True

    async def _register_loop(self, name: str) -> None:
        while not self._stopping:
            await asyncio.sleep(self.config.refresh_interval_s)
            if await self._register(name):
                return

    def _registration_view(self, name: str) -> dict[str, Any] | None:
        reg = self.state[name].registration
        if reg is None:
            return None
        out = dict(reg)
        if name == "etcd":  # the lease id changes when an expired lease is re-granted
            with contextlib.suppress(DiscoveryError):
                live = self.registry.get("etcd").registration(self.node.node_id)  # type: ignore[attr-defined]
                if live is not None:
                    out["lease_id"] = live.lease_id
                    out["keepalives"] = live.keepalives
        return out

    # ------------------------------------------------------------------ formation
    async def discover(self, name: str) -> DiscoveryResult:
        """One ``discover()`` round on ``name``: recorded in the status and joined if ``name`` is joined."""
        backend = self.registry.get(name)  # raises the not-configured / misconfigured errors
        state = self.state[name]
        state.rounds += 1
        state.last_attempt_at = time.time()
        try:
            result = await backend.discover()
        except DiscoveryError as exc:
            state.failures += 1
            state.last_error = str(exc)
            state.last_error_at = time.time()
            raise
        now = time.time()
        state.last_success_at = now
        state.saw_all(result.candidates, now)
        if name in self.joined_backends():
            self._join(name, result.candidates)
        return result

    async def _poll_loop(self, name: str) -> None:
        while not self._stopping:
            with contextlib.suppress(DiscoveryError):
                await self.discover(name)
            await asyncio.sleep(self.config.refresh_interval_s)

    async def _watch_loop(self, name: str) -> None:
        state = self.state[name]
        while not self._stopping:
            try:
                backend: Any = self.registry.get(name)
                async for event in backend.watch():
                    now = time.time()
                    state.watch_events += 1
                    state.last_event_at = now
                    if event.kind is DiscoveryEventKind.JOIN:
                        state.saw_one(event.candidate, now)
                        self._join(name, [event.candidate])
                    else:
                        state.seen.pop(event.candidate.node_id, None)
            except DiscoveryError as exc:
                state.last_error = f"watch: {exc}"
                state.last_error_at = time.time()
            await asyncio.sleep(self.config.refresh_interval_s)

    def _join(self, name: str, candidates: Iterable[Candidate]) -> None:
        node = self.node
        for c in candidates:
            if c.address == node.tcp_address:
                continue
            if name in ADDRESS_ONLY:
                self._probe(name, c)
                continue
            if c.node_id == node.node_id:
                continue
            peer = node.peers.get(c.node_id)
            if peer is not None and (peer.connected or peer.tcp_address == c.address):
                continue
            node.learn_peer(c.node_id, c.address, str(c.meta.get("quic_address", "")))
            self.learned.setdefault(c.node_id, {"node_id": c.node_id, "backend": name, "address": c.address,
                                                "learned_at": time.time()})

    def _probe(self, name: str, c: Candidate) -> None:
        """Dial a cloud instance's address without knowing its node id; the hello teaches it."""
        node = self.node
        if c.address in self._probing or any(p.tcp_address == c.address for p in node.peers.values()):
            return
        self._probing.add(c.address)

        async def dial() -> None:
            try:
                conn, ack = await node.dial(c.host, c.port)
            except (ConnectionError, OSError) as exc:
                self.state[name].last_error = f"dial {c.node_id} at {c.address}: {exc}"
                self.state[name].last_error_at = time.time()
                return
            finally:
                self._probing.discard(c.address)
            conn.close("discovery probe done")  # dial() taught the node the peer; it redials with expect_node
            if ack.node_id != node.node_id:
                self.learned.setdefault(ack.node_id, {"node_id": ack.node_id, "backend": name,
                                                      "address": c.address, "instance_id": c.node_id,
                                                      "learned_at": time.time()})

        node.spawn(dial(), name=f"discovery probe {c.address}")

    # ------------------------------------------------------------------ health & status
    def health(self) -> tuple[str, str]:
        """"not_configured" without backends, "degraded" when one fails, else "healthy"."""
        configured = self.registry.configured()
        status = self.registry.status()
        problems = [f"{n}: {s['error']}" for n, s in status.items() if s["error"]]
        if self.config_error:
            problems.insert(0, self.config_error)
        if not configured and not problems:
            return "not_configured", "no discovery backend configured. " + self.registry.hint("etcd")
        for name in configured:
            st = self.state[name]
            if st.failing:
                problems.append(f"{name}: {st.registration_error or st.last_error}")
        if problems:
            return "degraded", "; ".join(problems)
        parts = []
        for name in configured:
            st = self.state[name]
            seen = f"{len(st.seen)} nodes" if st.last_success_at else "not queried yet"
            parts.append(f"{name}: {seen}{', registered' if st.registration else ''}")
        return "healthy", "; ".join(parts)

    def api_status(self) -> dict[str, Any]:
        """Every backend (configured or not, with the hint), what it found and when, and what was joined."""
        joined = self.joined_backends()
        backends: dict[str, Any] = {}
        for name, info in self.registry.status().items():
            st = self.state[name]
            backends[name] = {
                **info,
                "joined": name in joined,
                "registration": self._registration_view(name),
                "registration_error": st.registration_error,
                "rounds": st.rounds,
                "failures": st.failures,
                "watch_events": st.watch_events,
                "last_attempt_at": st.last_attempt_at,
                "last_success_at": st.last_success_at,
                "last_event_at": st.last_event_at,
                "last_error": st.last_error,
                "last_error_at": st.last_error_at,
                "discovered": [s.describe() for _, s in sorted(st.seen.items())],
            }
        status, detail = self.health()
        learned = []
        for node_id, entry in sorted(self.learned.items()):
            peer = self.node.peers.get(node_id)
            learned.append({**entry, "connected": bool(peer and peer.connected)})
        return {
            "node": self.node.node_id,
            "health": status,
            "detail": detail,
            "configured": self.registry.configured(),
            "joined_backends": joined,
            "refresh_interval_s": self.config.refresh_interval_s,
            "register": self.config.register,
            "watch": self.config.watch,
            "config_error": self.config_error,
            "backends": backends,
            "learned_peers": learned,
        }

    async def api_refresh(self) -> dict[str, Any]:
        """Run one round on every joined backend now (errors are recorded, not raised), then the status."""
        for name in self.joined_backends():
            with contextlib.suppress(DiscoveryError):
                await self.discover(name)
        return self.api_status()

    # ------------------------------------------------------------------ REST operations
    async def _nodes(self, name: str) -> dict[str, Any]:
        try:
            result = await self.discover(name)
        except DiscoveryError as exc:
            raise api_error(name, exc) from exc
        return result.as_response()

    async def api_dns_nodes(self) -> dict[str, Any]:
        """NETWORKING-020: ``{"discovered_nodes": [{id, address, port}], "discovery_method", "ttl_seconds"}``.

        The answer is cached for its DNS TTL (bounded by ``min_refresh_s`` / ``max_refresh_s``).
        """
        return await self._nodes("dns")

    async def api_kubernetes_nodes(self) -> dict[str, Any]:
        """NETWORKING-021: ``{"namespace", "service", "nodes": [{pod, ip, ready}]}``."""
        return await self._nodes("kubernetes")

    async def api_consul_nodes(self) -> dict[str, Any]:
        """NETWORKING-022: the passing instances ``{"service", "datacenter", "consul_index", "nodes"}``."""
        return await self._nodes("consul")

    async def api_etcd_nodes(self) -> dict[str, Any]:
        """NETWORKING-023: ``{"nodes": [{id, address, lease_id}], "revision"}``."""
        return await self._nodes("etcd")

    async def api_cloud_nodes(self, provider: str) -> dict[str, Any]:
        """NETWORKING-024: ``{"provider", "region", "instances": [{instance_id, private_ip, az}]}``."""
        name = provider.lower()
        if name not in CLOUD_PROVIDERS:
            raise ApiError(404, f"unknown cloud provider {provider!r}; known: {', '.join(CLOUD_PROVIDERS)}",
                           "provider")
        return await self._nodes(name)

    async def api_consul_register(self, node_id: str, address: str, port: int, tags: list[str] | None = None,
                                  service_name: str | None = None) -> dict[str, Any]:
        """NETWORKING-022: register a node in Consul; this node keeps its TTL check passing while it runs."""
        if not isinstance(node_id, str) or not node_id.strip() or "/" in node_id:
            raise ApiError(422, "node_id must be a non-empty string without '/'", "node_id")
        if not is_host(address):
            raise ApiError(422, f"address must be a host name or IP address without a port, got {address!r}",
                           "address")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ApiError(422, "port must be between 1 and 65535", "port")
        try:
            backend: Any = self.registry.get("consul")
        except DiscoveryError as exc:
            raise api_error("consul", exc) from exc
        configured = backend.config.service_name
        if service_name is not None and service_name != configured:
            raise ApiError(422, f"service_name must be the configured Consul service {configured!r} "
                                f"([discovery.consul] service_name), got {service_name!r}", "service_name")
        try:
            return await backend.register(node_id, address, port, tags=list(tags or ()))
        except DiscoveryError as exc:
            raise api_error("consul", exc) from exc

    async def api_consul_deregister(self, node_id: str) -> dict[str, Any]:
        """Remove ``<service>-<node_id>`` from the Consul agent."""
        try:
            backend: Any = self.registry.get("consul")
            result = await backend.deregister(node_id)
        except DiscoveryError as exc:
            raise api_error("consul", exc) from exc
        if node_id == self.node.node_id:
            self.state["consul"].registration = None
        return result


def api_error(name: str, exc: DiscoveryError) -> ApiError:
    """The ApiError the REST layer answers with: configuration errors carry the hint, failures the reason."""
    if isinstance(exc, BackendNotConfiguredError | BackendMisconfiguredError | UnknownBackendError):
        return ApiError(exc.http_status, str(exc))
    return ApiError(exc.http_status, f"discovery backend {name!r} failed: {exc}")


def is_host(address: object) -> bool:
    """True for an IP address or a DNS host name (no port, no spaces)."""
    if not isinstance(address, str):
        return False
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return bool(_HOSTNAME.match(address))
    return True
