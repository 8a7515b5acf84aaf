"""Node and cluster configuration, and the TOML file that maps onto it.

One frozen dataclass per subsystem, each field documented with its unit; the
subsystems' classes live next to them (``rustyray/<subsystem>/config.py``), the
transport's and heartbeat's here. ``ClusterConfig`` gathers them: one field per TOML
table of the file given to ``launch --config`` (``[transport]``, ``[heartbeat]``,
``[swim]``, ``[raft]``, ``[routing]``, ``[discovery.dns]``, ...), every one built by
the same loader (:func:`rustyray.config_loader.build`), so an unknown table or key, or
a value of the wrong type, is a ``ConfigError`` naming the table and the key: a typo
never silently falls back to a default, and ``launch`` refuses the file before any
actor starts. ``NodeConfig`` is what one node runs with: its ``ClusterConfig`` plus
its id, state directory, per-node transport overrides and seeds.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rustyray.autodiscovery.config import AutodiscoveryConfig
from rustyray.config_loader import ConfigError, build
from rustyray.discovery.config import DiscoveryServiceConfig
from rustyray.health.config import HealthConfig
from rustyray.loadbalancer.config import LoadBalancerServiceConfig
from rustyray.membership.config import MembershipConfig, RaftSettings
from rustyray.membership.swim.config import SwimConfig
from rustyray.pool.config import PoolServiceConfig
from rustyray.routing.config import RoutingConfig
from rustyray.security.config import SecurityServiceConfig
from rustyray.transport.config import HeartbeatSettings, TransportConfig

__all__ = [
    "ClusterConfig",
    "ClusterSettings",
    "ConfigError",
    "HeartbeatSettings",
    "NodeConfig",
    "TransportConfig",
    "load_cluster_config",
    "load_toml",
    "node_config_from_toml",
]


@dataclass(frozen=True)
class ClusterSettings:
    """The ``[cluster]`` table."""

    name: str = "rustyray"
    """Cluster name; peers of another cluster are refused in the handshake (``--cluster-name`` overrides it)."""

    def validate(self) -> None:
        if not self.name:
            raise ValueError("name must not be empty")


@dataclass(frozen=True)
class ClusterConfig:
    """The whole config file, typed: one field per TOML table, each its subsystem's frozen config.

    Defaults are the subsystems' documented defaults (``ClusterConfig()`` is what an empty file gives).
    """

    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    """``[cluster]``: the cluster name."""
    transport: TransportConfig = field(default_factory=TransportConfig)
    """``[transport]`` (sub-table ``[transport.reconnect]``): listeners, TLS, timeouts, what may be dialled."""
    heartbeat: HeartbeatSettings = field(default_factory=HeartbeatSettings)
    """``[heartbeat]``: heartbeat period and the failure detector's thresholds."""
    swim: SwimConfig = field(default_factory=SwimConfig.lan)
    """``[swim]``: SWIM + Lifeguard; keys the table leaves out keep ``SwimConfig.lan()``'s values."""
    raft: RaftSettings = field(default_factory=RaftSettings)
    """``[raft]``: a ``RaftConfig`` preset and overrides (``RaftSettings.for_node``)."""
    membership: MembershipConfig = field(default_factory=MembershipConfig)
    """``[membership]``: ``bootstrap_expect``."""
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    """``[routing]``: outboxes, retries, the dedup window and the routing service's logs."""
    health: HealthConfig = field(default_factory=HealthConfig)
    """``[health]``: scoring, probes, recovery; ``phi_threshold`` defaults to ``[heartbeat]``'s."""
    pool: PoolServiceConfig = field(default_factory=PoolServiceConfig)
    """``[pool]`` (sub-table ``[pool.multiplex]``): per-peer connection pools."""
    loadbalancer: LoadBalancerServiceConfig = field(default_factory=LoadBalancerServiceConfig)
    """``[loadbalancer]`` (sub-tables ``.circuit_breaker``, ``.stats``, ``.adaptive``, ``.consistent_hash``,
    ``.retry``)."""
    security: SecurityServiceConfig = field(default_factory=SecurityServiceConfig)
    """``[security]``: admission defaults, rule replication, key ring, payload encryption."""
    discovery: DiscoveryServiceConfig = field(default_factory=DiscoveryServiceConfig)
    """``[discovery]`` and its backend sub-tables ``[discovery.dns]``, ``.etcd``, ... (None: not configured)."""
    autodiscovery: AutodiscoveryConfig = field(default_factory=AutodiscoveryConfig)
    """``[autodiscovery]``: sub-tables ``.mdns``, ``.broadcast``, ``.beacon``, ``.serf``, ``.anti_entropy``."""

    @classmethod
    def from_toml(cls, doc: Mapping[str, Any]) -> ClusterConfig:
        """Map a parsed TOML document onto a validated ``ClusterConfig``.

        Raises ``ConfigError`` (a ValueError) naming the table and the key: an unknown table or key, a
        value of the wrong type, or one the subsystem's ``validate()`` refuses. The one cross-table
        default: ``[health] phi_threshold`` is ``[heartbeat] phi_threshold`` unless set, and
        ``phi_floor`` at most half of it.
        """
        if not isinstance(doc, Mapping):
            raise ConfigError(f"the config file must be a table of tables, got {type(doc).__name__}")
        doc = dict(doc)
        health = doc.get("health", {})
        if isinstance(health, Mapping):
            heartbeat = build(HeartbeatSettings, doc.get("heartbeat", {}), "heartbeat")
            health = dict(health)
            threshold = health.setdefault("phi_threshold", heartbeat.phi_threshold)
            if isinstance(threshold, int | float) and not isinstance(threshold, bool):
                health.setdefault("phi_floor", min(HealthConfig.phi_floor, threshold / 2))
            doc["health"] = health
        return build(cls, doc, "")


_SELF_REPORTING = ("discovery", "autodiscovery")
"""Tables whose services still read the raw table (``NodeConfig.section``) and report a bad one themselves:
discovery answers 409 / ``config_error`` at run time, autodiscovery fails the node's start."""


@dataclass(frozen=True)
class NodeConfig:
    """Everything one node needs; built by ``launch`` and shipped to the node actor."""

    node_id: str
    cluster_name: str = "rustyray"
    state_dir: str = ".rustyray"
    transport: TransportConfig = field(default_factory=TransportConfig)
    heartbeat: HeartbeatSettings = field(default_factory=HeartbeatSettings)
    seeds: tuple[str, ...] = ()
    """TCP addresses (host:port) of existing members to join through."""
    bootstrap_members: tuple[str, ...] = ()
    """Node ids of the initial Raft configuration when this node bootstraps a new cluster."""
    min_incarnation: int = 0
    """The incarnation to start at when the node has no saved state (with state it is the saved one + 1).
    A node that lost its state would otherwise restart at 0, below what its old self reached by refuting
    suspicion, and the others would keep it Dead and its new address unused; the node actor sets this from
    the wall clock when Ray restarts it (Cassandra's gossip generation does the same)."""
    sections: dict[str, Any] = field(default_factory=dict)
    """The raw TOML tables other than transport, heartbeat and cluster (``section()``; the typed view is
    ``cluster``)."""
    cluster: ClusterConfig = None  # type: ignore[assignment]  # derived in __post_init__ when not given
    """Every table, typed; ``cluster.transport`` is this node's ``transport``. ``node_config_from_toml``
    builds it; a NodeConfig made by hand derives it from ``sections`` (plus ``transport``, ``heartbeat``
    and ``cluster_name``), so both views agree."""

    def __post_init__(self) -> None:
        if self.cluster is None:
            object.__setattr__(self, "cluster", self._derive_cluster())

    def _derive_cluster(self) -> ClusterConfig:
        doc = {k: v for k, v in self.sections.items() if k not in ("transport", "heartbeat", "cluster")}
        doc["heartbeat"] = dataclasses.asdict(self.heartbeat)
        for name in _SELF_REPORTING:  # leave a bad table to its service, as a launched node never sees one
            try:
                ClusterConfig.from_toml({name: doc.get(name, {})})
            except ValueError:
                doc.pop(name, None)
        cluster = ClusterConfig.from_toml(doc)
        return dataclasses.replace(cluster, transport=self.transport, cluster=ClusterSettings(name=self.cluster_name))

    @property
    def node_dir(self) -> Path:
        return Path(self.state_dir) / "nodes" / self.node_id

    @property
    def certs_dir(self) -> Path:
        return Path(self.state_dir) / "certs"

    def section(self, name: str) -> dict[str, Any]:
        """A subsystem's raw table (dotted names walk sub-tables), empty when absent."""
        cur: Any = self.sections
        for part in name.split("."):
            cur = cur.get(part, {}) if isinstance(cur, dict) else {}
        return dict(cur) if isinstance(cur, dict) else {}

    def validate(self) -> None:
        if not self.node_id or not all(c.isalnum() or c in "-_." for c in self.node_id):
            raise ValueError(f"node_id {self.node_id!r} must be non-empty and use only letters, digits, - _ .")
        self.transport.validate()
        self.heartbeat.validate()


def load_toml(path: str | Path | None) -> dict[str, Any]:
    """Read a cluster TOML file (empty dict when ``path`` is None)."""
    if path is None:
        return {}
    with open(path, "rb") as f:
        return tomllib.load(f)


def load_cluster_config(path: str | Path | None) -> ClusterConfig:
    """Read and validate a cluster TOML file (defaults when ``path`` is None).

    Raises OSError when the file cannot be read, ``tomllib.TOMLDecodeError`` when it is no TOML, and
    ``ConfigError`` naming the table and key when it does not map onto ``ClusterConfig`` (both ValueErrors).
    """
    return ClusterConfig.from_toml(load_toml(path))


def node_config_from_toml(node_id: str, doc: dict[str, Any], *, state_dir: str, cluster_name: str | None = None,
                          seeds: tuple[str, ...] = (), bootstrap_members: tuple[str, ...] = (),
                          overrides: dict[str, Any] | None = None) -> NodeConfig:
    """Map a parsed TOML document onto a validated ``NodeConfig`` for one node.

    ``overrides`` are ``[transport]`` keys set for this node (host, ports, allowed networks).
    """
    cluster = ClusterConfig.from_toml(doc)
    transport = build(TransportConfig, {**doc.get("transport", {}), **(overrides or {})}, "transport")
    name = cluster_name or cluster.cluster.name
    cluster = dataclasses.replace(cluster, transport=transport, cluster=ClusterSettings(name=name))
    sections = {k: v for k, v in doc.items() if k not in ("transport", "heartbeat", "cluster")}
    cfg = NodeConfig(
        node_id=node_id,
        cluster_name=name,
        state_dir=state_dir,
        transport=transport,
        heartbeat=cluster.heartbeat,
        seeds=seeds,
        bootstrap_members=bootstrap_members,
        sections=sections,
        cluster=cluster,
    )
    cfg.validate()
    return cfg
