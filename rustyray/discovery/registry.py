"""Builds the configured discovery backends from the parsed ``[discovery]`` TOML section.

Each subtable (``[discovery.dns]``, ``.etcd``, ``.consul``, ``.kubernetes``, ``.aws``, ``.azure``,
``.gcp``) is validated into its frozen config up front; a bad table does not stop the others, it is
remembered and reported (409) when that backend is asked for. Backends are instantiated lazily on first
use (so their HTTP clients are created inside the running event loop). For a backend that has no table,
:meth:`DiscoveryRegistry.hint` gives the TOML to add, which the API returns with 503.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from rustyray.discovery._config import config_from_mapping
from rustyray.discovery.errors import (
    BackendMisconfiguredError,
    BackendNotConfiguredError,
    DiscoveryError,
    UnknownBackendError,
)
from rustyray.discovery.model import DiscoveryResult


class DiscoveryBackend(Protocol):
    """What every backend offers; register/deregister/watch exist where the backend supports them."""

    name: str

    async def discover(self) -> DiscoveryResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class BackendSpec:
    """How to build one backend and how to tell a user to configure it."""

    name: str
    module: str
    """The adapter's module, imported on first use; it exports the backend class and its config class."""
    adapter: str
    """The backend class's name; its config class is named ``<adapter>Config``."""
    hint: str

    def load(self) -> tuple[type, Callable[[Any], DiscoveryBackend]]:
        """The backend's config class and the backend class (importing the adapter's module)."""
        module = importlib.import_module(self.module)
        return getattr(module, f"{self.adapter}Config"), getattr(module, self.adapter)


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "dns",
            "rustyray.discovery.dns_srv",
            "DnsDiscovery",
            'Add to the node config:\n[discovery.dns]\nservice_name = "rustydb"\ndomain = "cluster.local"\n'
            'nameservers = ["127.0.0.1:53"]   # optional; default /etc/resolv.conf',
        ),
        BackendSpec(
            "etcd",
            "rustyray.discovery.etcd",
            "EtcdDiscovery",
            'Add to the node config:\n[discovery.etcd]\nendpoints = ["http://127.0.0.1:2379"]\n'
            'key_prefix = "/rustyray/nodes/"\nlease_ttl_s = 10',
        ),
        BackendSpec(
            "consul",
            "rustyray.discovery.consul",
            "ConsulDiscovery",
            'Add to the node config:\n[discovery.consul]\naddress = "http://127.0.0.1:8500"\n'
            'service_name = "rustydb"\ndatacenter = "dc1"   # optional',
        ),
        BackendSpec(
            "kubernetes",
            "rustyray.discovery.kubernetes",
            "KubernetesDiscovery",
            'Add to the node config:\n[discovery.kubernetes]\nnamespace = "database"\nservice = "rustydb"\n'
            'statefulset = "rustydb"   # optional: follow the StatefulSet\'s pods instead of endpoints\n'
            "# in a pod the API server, token and CA come from the service account; outside set\n"
            '# api_server = "https://host:6443", token = "...", ca_path = "/path/ca.crt"',
        ),
        BackendSpec(
            "aws",
            "rustyray.discovery.cloud.aws",
            "AwsDiscovery",
            'Add to the node config:\n[discovery.aws]\nregion = "us-east-1"\n'
            'tag_filters = { "rustyray-cluster" = "prod" }\nauto_scaling_group = "rustydb-asg"   # optional',
        ),
        BackendSpec(
            "azure",
            "rustyray.discovery.cloud.azure",
            "AzureDiscovery",
            'Add to the node config:\n[discovery.azure]\nsubscription_id = "..."\nresource_group = "..."\n'
            'scale_set = "rustydb-vmss"\naccess_token = "..."',
        ),
        BackendSpec(
            "gcp",
            "rustyray.discovery.cloud.gcp",
            "GcpDiscovery",
            'Add to the node config:\n[discovery.gcp]\nproject = "..."\nzone = "us-central1-a"\n'
            'instance_group = "rustydb-ig"\naccess_token = "..."',
        ),
    )
}


class DiscoveryRegistry:
    """The backends a node has configured, by name."""

    def __init__(self, configs: Mapping[str, Any], problems: Mapping[str, str]) -> None:
        self._configs = dict(configs)
        self._problems = dict(problems)
        self._instances: dict[str, DiscoveryBackend] = {}

    @classmethod
    def from_dict(cls, section: Mapping[str, Any] | None) -> DiscoveryRegistry:
        """From the parsed ``[discovery]`` table; keys that are not backend names are ignored."""
        configs: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for name, table in (section or {}).items():
            spec = BACKENDS.get(name)
            if spec is None:
                continue
            config_cls, _ = spec.load()
            try:
                configs[name] = config_from_mapping(config_cls, table, f"discovery.{name}")
            except ValueError as exc:
                problems[name] = str(exc)
        return cls(configs, problems)

    @staticmethod
    def known() -> list[str]:
        """Every backend name, configured or not."""
        return list(BACKENDS)

    def configured(self) -> list[str]:
        """Names of backends with a valid table, in registry order."""
        return [n for n in BACKENDS if n in self._configs]

    @staticmethod
    def hint(name: str) -> str:
        """The TOML to add to configure ``name``."""
        if name not in BACKENDS:
            raise UnknownBackendError(name, list(BACKENDS))
        return BACKENDS[name].hint

    def check(self, name: str) -> None:
        """Raise the DiscoveryError the API should answer with when ``name`` cannot be used."""
        if name not in BACKENDS:
            raise UnknownBackendError(name, list(BACKENDS))
        if name in self._problems:
            raise BackendMisconfiguredError(name, self._problems[name], BACKENDS[name].hint)
        if name not in self._configs:
            raise BackendNotConfiguredError(name, BACKENDS[name].hint)

    def config(self, name: str) -> Any:
        """The validated config of ``name`` (raises like :meth:`check`)."""
        self.check(name)
        return self._configs[name]

    def get(self, name: str) -> DiscoveryBackend:
        """The backend instance, created on first use (raises like :meth:`check`)."""
        self.check(name)
        if name not in self._instances:
            _, factory = BACKENDS[name].load()
            try:
                self._instances[name] = factory(self._configs[name])
            except ValueError as exc:  # e.g. in-cluster Kubernetes config outside a cluster
                raise BackendMisconfiguredError(name, str(exc), BACKENDS[name].hint) from exc
        return self._instances[name]

    def status(self) -> dict[str, dict[str, Any]]:
        """Per backend: configured?, the problem if any, and the hint (for a /discovery index page)."""
        return {
            name: {
                "configured": name in self._configs,
                "error": self._problems.get(name),
                "hint": None if name in self._configs else spec.hint,
            }
            for name, spec in BACKENDS.items()
        }

    async def aclose(self) -> None:
        """Close every backend that was instantiated."""
        for backend in self._instances.values():
            with contextlib.suppress(DiscoveryError):
                await backend.aclose()
        self._instances.clear()
