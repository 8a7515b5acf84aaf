"""Service discovery: backends that turn an external registry into SWIM join candidates.

Backends (each a frozen ``*Config`` with ``validate()`` and an async client with ``discover()``):
DNS-SRV (:mod:`.dns_srv`), etcd (:mod:`.etcd`), Consul (:mod:`.consul`), Kubernetes
(:mod:`.kubernetes`), AWS/Azure/GCP (:mod:`.cloud`). :class:`DiscoveryRegistry` builds them from the
``[discovery]`` config section. Pure parsing lives in the ``*_records`` modules.
"""

from rustyray.discovery.errors import (
    BackendMisconfiguredError,
    BackendNotConfiguredError,
    BackendResponseError,
    BackendUnavailableError,
    DiscoveryError,
    UnknownBackendError,
)
from rustyray.discovery.model import (
    Candidate,
    DiscoveryEvent,
    DiscoveryEventKind,
    DiscoveryResult,
    diff_candidates,
)
from rustyray.discovery.registry import BACKENDS, DiscoveryBackend, DiscoveryRegistry

__all__ = [
    "BACKENDS",
    "BackendMisconfiguredError",
    "BackendNotConfiguredError",
    "BackendResponseError",
    "BackendUnavailableError",
    "Candidate",
    "DiscoveryBackend",
    "DiscoveryError",
    "DiscoveryEvent",
    "DiscoveryEventKind",
    "DiscoveryRegistry",
    "DiscoveryResult",
    "UnknownBackendError",
    "diff_candidates",
]
