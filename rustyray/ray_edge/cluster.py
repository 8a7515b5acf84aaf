"""Cluster operations on Ray: the registry, the placement group, node actors.

The registry is a small detached actor that remembers the cluster's settings
(state directory, TOML document, HTTP port) and which node actors exist, so that
the Serve app can spawn a joining node with the same settings and ``launch`` can
stop everything it started, including nodes that joined later.
"""

from __future__ import annotations

import time
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from rustyray.config import node_config_from_toml
from rustyray.ray_edge.actor import NAMESPACE, NodeActor

REGISTRY_NAME = "rustyray-registry"
NODE_CPUS = 0.1
"""CPU share of one node actor: 5 to 20 nodes fit on two cores."""


@ray.remote(num_cpus=0)
class ClusterRegistry:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.nodes: dict[str, dict[str, Any]] = {}
        self.placement_groups: list[str] = []

    def get_settings(self) -> dict[str, Any]:
        return self.settings

    def update_settings(self, **kw: Any) -> None:
        self.settings.update(kw)

    def add_node(self, node_id: str, record: dict[str, Any]) -> None:
        self.nodes[node_id] = {**record, "added_at": time.time()}

    def remove_node(self, node_id: str) -> None:
        self.nodes.pop(node_id, None)

    def list_nodes(self) -> dict[str, dict[str, Any]]:
        return dict(self.nodes)

    def add_placement_group(self, name: str) -> None:
        self.placement_groups.append(name)

    def list_placement_groups(self) -> list[str]:
        return list(self.placement_groups)


def get_registry() -> Any:
    return ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)


def create_registry(settings: dict[str, Any]) -> Any:
    try:
        old = ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)
        ray.kill(old, no_restart=True)
    except ValueError:
        pass
    return ClusterRegistry.options(name=REGISTRY_NAME, namespace=NAMESPACE, lifetime="detached").remote(settings)


def create_placement_group(count: int, name: str, *, strategy: str = "SPREAD", timeout: float = 120.0) -> Any:
    """One bundle per node; SPREAD puts nodes on different machines where the cluster has them."""
    pg = placement_group([{"CPU": NODE_CPUS}] * count, strategy=strategy, name=name, lifetime="detached")
    ready, _ = ray.wait([pg.ready()], timeout=timeout)
    if not ready:
        remove_placement_group(pg)
        raise TimeoutError(f"placement group {name} with {count} bundles was not placed within {timeout:.0f}s")
    return pg


def node_actor_options(node_id: str, pg: Any = None, bundle_index: int = 0) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "name": node_id,
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": 0,
        "num_cpus": NODE_CPUS,
        "max_concurrency": 1000,
    }
    if pg is not None:
        opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
            placement_group=pg, placement_group_bundle_index=bundle_index)
    return opts


def make_node_config(settings: dict[str, Any], node_id: str, *, seeds: tuple[str, ...] = (),
                     bootstrap_members: tuple[str, ...] = (), overrides: dict[str, Any] | None = None) -> Any:
    return node_config_from_toml(
        node_id, settings.get("toml", {}), state_dir=settings["state_dir"],
        cluster_name=settings.get("cluster_name"), seeds=seeds, bootstrap_members=bootstrap_members,
        overrides={**settings.get("transport_overrides", {}), **(overrides or {})},
    )


def spawn_node(settings: dict[str, Any], node_id: str, *, pg: Any = None, bundle_index: int = 0,
               seeds: tuple[str, ...] = (), overrides: dict[str, Any] | None = None) -> Any:
    """Create one node actor (it starts listening by itself); returns its handle."""
    config = make_node_config(settings, node_id, seeds=seeds, overrides=overrides)
    host_auto = bool(settings.get("host_auto")) and not (overrides or {}).get("host")
    return NodeActor.options(**node_actor_options(node_id, pg, bundle_index)).remote(config, host_auto)


def get_node(node_id: str) -> Any:
    """The actor handle of a node, or raise ``ValueError`` when no such actor is alive."""
    return ray.get_actor(node_id, namespace=NAMESPACE)
