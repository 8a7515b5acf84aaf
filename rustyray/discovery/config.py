"""Configuration of discovery: the ``[discovery]`` table and its backend sub-tables (pure).

``DiscoveryServiceConfig`` is the whole table: the service keys at its top (refresh
interval, registration, which backends to join) and one optional sub-table per backend,
``[discovery.dns]``, ``.etcd``, ``.consul``, ``.kubernetes``, ``.aws``, ``.azure``,
``.gcp``, each a frozen config whose ``validate()`` names the first bad field. The
backends' adapters (``dns_srv.py``, ``etcd.py``, ...) import their config from here, so
checking a config file never loads an HTTP, DNS or cloud client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from rustyray.config_loader import build
from rustyray.discovery._config import require_http_url, require_port, require_positive, require_text
from rustyray.discovery.dns_records import parse_nameserver, srv_query_name
from rustyray.discovery.registry import BACKENDS

__all__ = [
    "MIN_LEASE_TTL_S",
    "SERVICE_ACCOUNT_DIR",
    "AwsDiscoveryConfig",
    "AzureDiscoveryConfig",
    "ConsulDiscoveryConfig",
    "DiscoveryServiceConfig",
    "DnsDiscoveryConfig",
    "EtcdDiscoveryConfig",
    "GcpDiscoveryConfig",
    "KubernetesDiscoveryConfig",
]

#: etcd refuses (or silently raises) lease TTLs below this many seconds.
MIN_LEASE_TTL_S = 2
#: Where a pod's service-account token, CA bundle and namespace are mounted.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


@dataclass(frozen=True)
class DnsDiscoveryConfig:
    """``[discovery.dns]``: where the SRV records of the cluster live."""

    #: Service label: records are looked up at ``_<service_name>._<protocol>.<domain>``.
    service_name: str = "rustydb"
    #: Zone holding the SRV records, e.g. "cluster.local" or "service.consul".
    domain: str = "cluster.local"
    #: Resolvers to ask, each "host" or "host:port" ("[v6]:port" for IPv6). Empty: /etc/resolv.conf.
    nameservers: tuple[str, ...] = ()
    #: The SRV protocol label ("tcp" or "udp"), i.e. the transport the *nodes* speak.
    protocol: str = "tcp"
    #: Ask the resolver over TCP instead of UDP (large answers, or resolvers that only do TCP).
    query_over_tcp: bool = False
    #: Seconds allowed for each lookup (all retries included) before it counts as unavailable.
    timeout_s: float = 3.0
    #: Prefer AAAA over A when a target has both.
    prefer_ipv6: bool = False
    #: Floor on the re-resolution interval in seconds, so TTL 0 does not become a query storm.
    min_refresh_s: float = 1.0
    #: Ceiling on the re-resolution interval in seconds, bounding staleness under long TTLs.
    max_refresh_s: float = 300.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        require_text("service_name", self.service_name)
        require_text("domain", self.domain)
        if self.protocol not in ("tcp", "udp"):
            raise ValueError(f"protocol must be 'tcp' or 'udp', got {self.protocol!r}")
        if not isinstance(self.nameservers, tuple):
            raise ValueError("nameservers must be a list of 'host' or 'host:port' strings")
        for entry in self.nameservers:
            try:
                parse_nameserver(entry)
            except (ValueError, AttributeError) as exc:
                raise ValueError(f"nameservers entry {entry!r} is invalid: {exc}") from exc
        require_positive("timeout_s", self.timeout_s)
        if self.min_refresh_s < 0:
            raise ValueError(f"min_refresh_s must be >= 0, got {self.min_refresh_s!r}")
        if self.max_refresh_s < self.min_refresh_s:
            raise ValueError("max_refresh_s must be >= min_refresh_s")

    @property
    def query_name(self) -> str:
        """The absolute SRV owner name queried."""
        return srv_query_name(self.service_name, self.protocol, self.domain)


@dataclass(frozen=True)
class EtcdDiscoveryConfig:
    """``[discovery.etcd]``: the etcd cluster and how nodes register in it."""

    #: Client URLs of etcd members, tried in order until one answers.
    endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    #: Key prefix under which every node registers ``<prefix><node_id>``.
    key_prefix: str = "/rustyray/nodes/"
    #: Lease TTL in seconds (>= 2): how long a crashed node stays listed. Renewed every TTL/3.
    lease_ttl_s: int = 10
    #: Seconds allowed for each non-streaming request.
    request_timeout_s: float = 5.0
    #: Seconds to wait before re-opening a watch stream that broke.
    watch_retry_s: float = 1.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if not self.endpoints or not isinstance(self.endpoints, tuple):
            raise ValueError("endpoints must be a non-empty list of http(s) URLs")
        for url in self.endpoints:
            require_http_url("endpoints", url)
        require_text("key_prefix", self.key_prefix)
        if not isinstance(self.lease_ttl_s, int) or self.lease_ttl_s < MIN_LEASE_TTL_S:
            raise ValueError(f"lease_ttl_s must be an integer >= {MIN_LEASE_TTL_S}, got {self.lease_ttl_s!r}")
        require_positive("request_timeout_s", self.request_timeout_s)
        require_positive("watch_retry_s", self.watch_retry_s)

    @property
    def keepalive_interval_s(self) -> float:
        """Renew the lease at a third of its TTL, leaving two chances before it lapses."""
        return self.lease_ttl_s / 3


@dataclass(frozen=True)
class ConsulDiscoveryConfig:
    """``[discovery.consul]``: the agent to talk to and how this cluster's service is named."""

    #: Base URL of the local Consul agent's HTTP API.
    address: str = "http://127.0.0.1:8500"
    #: Consul service name shared by every node of the cluster.
    service_name: str = "rustydb"
    #: Datacenter to query (``?dc=``); None means the agent's own datacenter.
    datacenter: str | None = None
    #: ACL token sent as X-Consul-Token; None sends none.
    token: str | None = None
    #: Tags added to every registration (e.g. "database").
    tags: tuple[str, ...] = ()
    #: TTL of the registration's health check in seconds; it is marked passing every TTL/3.
    check_ttl_s: float = 10.0
    #: Seconds a check may stay critical before Consul drops the registration; 0 disables.
    deregister_critical_after_s: float = 60.0
    #: Longest a blocking query is held by Consul, in seconds (its ``wait`` parameter).
    wait_s: float = 30.0
    #: Seconds allowed for each non-blocking request.
    request_timeout_s: float = 5.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        require_http_url("address", self.address)
        require_text("service_name", self.service_name)
        if self.datacenter is not None:
            require_text("datacenter", self.datacenter)
        if not isinstance(self.tags, tuple) or not all(isinstance(t, str) for t in self.tags):
            raise ValueError("tags must be a list of strings")
        require_positive("check_ttl_s", self.check_ttl_s)
        if self.deregister_critical_after_s < 0:
            raise ValueError("deregister_critical_after_s must be >= 0")
        require_positive("wait_s", self.wait_s)
        require_positive("request_timeout_s", self.request_timeout_s)


@dataclass(frozen=True)
class KubernetesDiscoveryConfig:
    """``[discovery.kubernetes]``: where the API server is and which workload to follow."""

    #: Namespace of the Service / StatefulSet.
    namespace: str = "default"
    #: Service whose EndpointSlices (or Endpoints) list the nodes; also echoed in the result.
    service: str = "rustydb"
    #: If set, discover the pods of this StatefulSet (via its spec.selector) instead of endpoints.
    statefulset: str | None = None
    #: If set (and no statefulset), discover pods matching this label selector, e.g. "app=rustydb".
    label_selector: str | None = None
    #: Named port to take from the endpoints/containers; None takes the first one.
    port_name: str | None = None
    #: Port used when the object names none (pods without declared ports).
    default_port: int = 7000
    #: API server URL; None derives it from KUBERNETES_SERVICE_HOST/PORT (in-cluster).
    api_server: str | None = None
    #: Bearer token; None reads ``token_path`` on every request (tokens are rotated on disk).
    token: str | None = None
    #: Service-account token file used when ``token`` is None.
    token_path: str = f"{SERVICE_ACCOUNT_DIR}/token"
    #: CA bundle that signed the API server's certificate; the system store is used if it is absent.
    ca_path: str = f"{SERVICE_ACCOUNT_DIR}/ca.crt"
    #: Seconds allowed for each list/get request.
    request_timeout_s: float = 10.0
    #: Server-side timeout of one watch request in seconds (``timeoutSeconds``); it is then renewed.
    watch_timeout_s: int = 300

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        require_text("namespace", self.namespace)
        require_text("service", self.service)
        if self.statefulset is not None:
            require_text("statefulset", self.statefulset)
        if self.label_selector is not None:
            require_text("label_selector", self.label_selector)
        if not isinstance(self.default_port, int) or not 0 < self.default_port < 65536:
            raise ValueError(f"default_port must be a port in 1..65535, got {self.default_port!r}")
        if self.api_server is not None:
            require_http_url("api_server", self.api_server)
        require_positive("request_timeout_s", self.request_timeout_s)
        if not isinstance(self.watch_timeout_s, int) or self.watch_timeout_s <= 0:
            raise ValueError("watch_timeout_s must be a positive integer")

    @classmethod
    def in_cluster(cls, **overrides: Any) -> KubernetesDiscoveryConfig:
        """Config for a pod: namespace from the service-account mount unless given."""
        if "namespace" not in overrides:
            from rustyray.discovery.kubernetes import in_cluster_namespace  # the adapter reads the mount

            namespace = in_cluster_namespace()
            if namespace is not None:
                overrides["namespace"] = namespace
        return replace(cls(), **overrides)

    def resolved_api_server(self) -> str:
        """``api_server`` or the in-cluster URL; ValueError when neither is available."""
        if self.api_server:
            return self.api_server.rstrip("/")
        from rustyray.discovery.kubernetes import in_cluster_api_server  # the adapter reads the environment

        return in_cluster_api_server()


@dataclass(frozen=True)
class AwsDiscoveryConfig:
    """``[discovery.aws]``: which EC2 instances are cluster members."""

    #: AWS region queried, echoed as ``region`` in the result.
    region: str = "us-east-1"
    #: Tag pairs an instance must carry, e.g. ``{ "rustyray-cluster" = "prod" }`` in TOML.
    tag_filters: tuple[tuple[str, str], ...] = ()
    #: If set, members are the InService instances of this Auto Scaling group (tags still filter).
    auto_scaling_group: str | None = None
    #: Port the nodes listen on for SWIM (EC2 knows nothing about it).
    port: int = 7000
    #: Only instances in state "running".
    running_only: bool = True
    #: Override of the EC2/Auto Scaling endpoint (e.g. a local moto server); None uses AWS.
    endpoint_url: str | None = None
    #: Static credentials; None uses boto3's default chain (env, profile, instance role).
    access_key_id: str | None = None
    #: Secret paired with ``access_key_id``.
    secret_access_key: str | None = None
    #: Seconds for connect and for read of each API call.
    request_timeout_s: float = 10.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        require_text("region", self.region)
        if not isinstance(self.tag_filters, tuple) or not all(
            isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in self.tag_filters
        ):
            raise ValueError("tag_filters must be a table of tag = value strings")
        if not self.tag_filters and not self.auto_scaling_group:
            raise ValueError("tag_filters or auto_scaling_group must be set (refusing to list every instance)")
        if self.auto_scaling_group is not None:
            require_text("auto_scaling_group", self.auto_scaling_group)
        require_port("port", self.port)
        if self.endpoint_url is not None:
            require_http_url("endpoint_url", self.endpoint_url)
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("access_key_id and secret_access_key must be set together")
        require_positive("request_timeout_s", self.request_timeout_s)


@dataclass(frozen=True)
class _RestCloudConfig:
    """What the Azure and GCP tables share: a REST API reached with a bearer token, the port the nodes listen
    on and the request timeout. ``REQUIRED`` names the table's own keys that must be set (no default)."""

    REQUIRED: ClassVar[tuple[str, ...]] = ()
    #: Bearer token sent with every request.
    access_token: str = ""
    #: API root; override for a local test double (or, on Azure, a sovereign cloud).
    base_url: str = ""
    #: Port the nodes listen on for SWIM.
    port: int = 7000
    #: Seconds allowed for each request.
    request_timeout_s: float = 10.0

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        for name in (*self.REQUIRED, "access_token"):
            require_text(name, getattr(self, name))
        require_http_url("base_url", self.base_url)
        require_port("port", self.port)
        require_positive("request_timeout_s", self.request_timeout_s)


@dataclass(frozen=True)
class AzureDiscoveryConfig(_RestCloudConfig):
    """``[discovery.azure]``: the VM scale set whose members are cluster nodes (``access_token``: an ARM bearer
    token, e.g. from the instance metadata service or ``az account get-access-token``)."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("subscription_id", "resource_group", "scale_set")
    base_url: str = "https://management.azure.com"
    subscription_id: str = ""
    resource_group: str = ""
    #: Name of the virtual machine scale set.
    scale_set: str = ""
    #: api-version for scale-set network interfaces (a Microsoft.Network API).
    network_api_version: str = "2018-10-01"
    #: api-version for scale-set VMs (Microsoft.Compute).
    compute_api_version: str = "2024-03-01"
    #: Region echoed as ``region``; empty takes the VMs' ``location``.
    location: str = ""


@dataclass(frozen=True)
class GcpDiscoveryConfig(_RestCloudConfig):
    """``[discovery.gcp]``: the zonal instance group whose members are cluster nodes (``access_token``: an
    OAuth2 bearer token with compute.readonly scope, e.g. from the metadata server)."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("project", "zone", "instance_group")
    base_url: str = "https://compute.googleapis.com/compute/v1"
    project: str = ""
    #: Zone of the instance group, e.g. "us-central1-a"; the region is derived from it.
    zone: str = ""
    instance_group: str = ""
    #: Only members whose status is RUNNING.
    running_only: bool = True
    #: Concurrent instances.get calls.
    max_concurrency: int = 8

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        super().validate()
        if not isinstance(self.max_concurrency, int) or self.max_concurrency < 1:
            raise ValueError("max_concurrency must be an integer >= 1")


@dataclass(frozen=True)
class DiscoveryServiceConfig:
    """The ``[discovery]`` table: the service keys at its top and one optional sub-table per backend."""

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
    #: ``[discovery.dns]``; None: not configured.
    dns: DnsDiscoveryConfig | None = None
    #: ``[discovery.etcd]``; None: not configured.
    etcd: EtcdDiscoveryConfig | None = None
    #: ``[discovery.consul]``; None: not configured.
    consul: ConsulDiscoveryConfig | None = None
    #: ``[discovery.kubernetes]``; None: not configured.
    kubernetes: KubernetesDiscoveryConfig | None = None
    #: ``[discovery.aws]``; None: not configured.
    aws: AwsDiscoveryConfig | None = None
    #: ``[discovery.azure]``; None: not configured.
    azure: AzureDiscoveryConfig | None = None
    #: ``[discovery.gcp]``; None: not configured.
    gcp: GcpDiscoveryConfig | None = None

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

    def configured(self) -> list[str]:
        """Names of the backends that have a table, in registry order."""
        return [name for name in BACKENDS if getattr(self, name) is not None]

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> DiscoveryServiceConfig:
        """The service keys of a parsed ``[discovery]`` table; the backend sub-tables are skipped (left to
        ``DiscoveryRegistry``, which reports a bad one when that backend is asked for)."""
        return build(cls, {k: v for k, v in section.items() if k not in BACKENDS}, "discovery")
