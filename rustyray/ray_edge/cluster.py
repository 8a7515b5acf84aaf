"""Cluster operations on Ray: the registry, the placement group, node actors.

The registry is a small detached actor that remembers the cluster's settings
(state directory, TOML document, HTTP port) and which node actors exist, so that
the Serve app can spawn a joining node with the same settings and ``launch`` can
stop everything it started, including nodes that joined later. It is pinned to
the launch host (where the state directory is) and saves what it learns to
``registry.json`` there: when Ray restarts it, it comes back with the node list
instead of taking the management API down with it. A node actor that Ray
restarts on another host asks it for its peers' addresses.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy, PlacementGroupSchedulingStrategy

from rustyray.config import node_config_from_toml
from rustyray.ray_edge.actor import NAMESPACE, NodeActor

REGISTRY_NAME = "rustyray-registry"
NODE_CPUS = 0.1
"""CPU share of one node actor: 5 to 20 nodes fit on two cores."""


REGISTRY_FILE = "registry.json"


@ray.remote(num_cpus=0)
class ClusterRegistry:
    def __init__(self, settings: dict[str, Any]) -> None:
        """A new launch starts empty; a restart by Ray (same arguments) reloads ``registry.json``."""
        self._file = Path(settings["state_dir"]) / REGISTRY_FILE
        saved: dict[str, Any] = {}
        if ray.get_runtime_context().was_current_actor_reconstructed:
            try:
                saved = json.loads(self._file.read_text())
            except (OSError, ValueError):
                saved = {}
        self.settings = {**settings, **saved.get("settings_updates", {})}
        self._updates: dict[str, Any] = dict(saved.get("settings_updates", {}))
        self.nodes: dict[str, dict[str, Any]] = dict(saved.get("nodes", {}))
        self.placement_groups: list[str] = list(saved.get("placement_groups", []))
        self._save()

    def _save(self) -> None:
        tmp = self._file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"settings_updates": self._updates, "nodes": self.nodes,
                                       "placement_groups": self.placement_groups}))
            os.replace(tmp, self._file)
        except OSError:
            pass  # a read-only state directory: the registry still works, only without surviving a restart

    def get_settings(self) -> dict[str, Any]:
        return self.settings

    def update_settings(self, **kw: Any) -> None:
        self.settings.update(kw)
        self._updates.update(kw)
        self._save()

    def add_node(self, node_id: str, record: dict[str, Any]) -> None:
        self.nodes[node_id] = {**record, "added_at": time.time()}
        self._save()

    def moved_node(self, node_id: str, address: str) -> None:
        """A node actor that Ray restarted (maybe on another host) listens at ``address`` now."""
        if node_id in self.nodes:
            self.nodes[node_id] = {**self.nodes[node_id], "address": address}
            self._save()

    def remove_node(self, node_id: str) -> None:
        self.nodes.pop(node_id, None)
        self._save()

    def list_nodes(self) -> dict[str, dict[str, Any]]:
        return dict(self.nodes)

    def add_placement_group(self, name: str) -> None:
        self.placement_groups.append(name)
        self._save()

    def list_placement_groups(self) -> list[str]:
        return list(self.placement_groups)


def get_registry() -> Any:
    return ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)


def peer_seeds(own_id: str, timeout: float = 30.0) -> tuple[str, ...]:
    """The other nodes' TCP addresses as the registry last heard them; () when it cannot be asked."""
    try:
        nodes = ray.get(get_registry().list_nodes.remote(), timeout=timeout)
    except Exception:  # no registry (a bare test cluster) or it is restarting: start without seeds
        return ()
    return tuple(sorted(r["address"] for n, r in nodes.items() if n != own_id and r.get("address")))


def create_registry(settings: dict[str, Any]) -> Any:
    try:
        old = ray.get_actor(REGISTRY_NAME, namespace=NAMESPACE)
        ray.kill(old, no_restart=True)
    except ValueError:
        pass
    here = ray.get_runtime_context().get_node_id()
    return ClusterRegistry.options(
        name=REGISTRY_NAME, namespace=NAMESPACE, lifetime="detached", max_restarts=-1,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=here, soft=False),
    ).remote(settings)


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
