"""Consul discovery, pure half: agent registration bodies and health-endpoint answers.

Theory of operation (Consul HTTP API: /v1/agent/service/register, /v1/health/service, "Blocking
Queries"): each node registers itself with its local agent as service ``<name>-<node_id>`` carrying a
TTL check that it must mark passing more often than the TTL; a node that stops doing so turns critical
and drops out of ``/v1/health/service/<name>?passing``. That endpoint is watched with blocking queries:
the client sends the last ``X-Consul-Index`` and the server holds the request until the index moves or
``wait`` elapses. Indexes must be handled as Consul's docs say: reset to 0 when they go backwards, never
block on an index below 1. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rustyray.discovery.errors import BackendResponseError
from rustyray.discovery.model import Candidate, DiscoveryResult


def service_id(service_name: str, node_id: str) -> str:
    """Service ID of a node's registration: ``"<service>-<node_id>"`` (e.g. ``rustydb-node1``)."""
    return f"{service_name}-{node_id}"


def check_id(sid: str) -> str:
    """ID the agent gives the single check declared inside a service registration."""
    return f"service:{sid}"


def go_duration(seconds: float) -> str:
    """Seconds -> a Go duration string Consul parses ("10s", "1.5s")."""
    return f"{seconds:g}s"


def registration_body(
    service_name: str,
    node_id: str,
    host: str,
    port: int,
    *,
    tags: Iterable[str] = (),
    meta: Mapping[str, str] | None = None,
    check_ttl_s: float,
    deregister_critical_after_s: float | None,
) -> dict[str, Any]:
    """Body of PUT /v1/agent/service/register; ``Meta.node_id`` lets readers recover the node id."""
    check: dict[str, Any] = {"TTL": go_duration(check_ttl_s)}
    if deregister_critical_after_s:
        check["DeregisterCriticalServiceAfter"] = go_duration(deregister_critical_after_s)
    return {
        "ID": service_id(service_name, node_id),
        "Name": service_name,
        "Address": host,
        "Port": port,
        "Tags": list(tags),
        "Meta": {**{str(k): str(v) for k, v in (meta or {}).items()}, "node_id": node_id},
        "Check": check,
    }


def next_index(previous: int, received: int) -> int:
    """The index to block on next, per Consul's blocking-query rules."""
    if received < previous:
        return 0  # the index went backwards (e.g. a snapshot restore): start over
    return max(received, 1)


def parse_index(header: str | None) -> int:
    """``X-Consul-Index`` header -> int; BackendResponseError when missing or not a number."""
    if header is None or not header.strip().isdigit():
        raise BackendResponseError(f"Consul answered without a usable X-Consul-Index ({header!r})")
    return int(header)


def candidate_from_health_entry(entry: Mapping[str, Any], service_name: str) -> Candidate:
    """One ``/v1/health/service`` entry -> Candidate; the service address falls back to the node's."""
    try:
        service = entry["Service"]
        node = entry.get("Node") or {}
        sid = str(service["ID"])
        host = service.get("Address") or node.get("Address")
        port = int(service["Port"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BackendResponseError(f"Consul health entry is malformed: {exc!r}") from exc
    if not host:
        raise BackendResponseError(f"Consul health entry {sid!r} has no address")
    meta_in = service.get("Meta") or {}
    prefix = f"{service_name}-"
    node_id = meta_in.get("node_id") or (sid[len(prefix) :] if sid.startswith(prefix) else sid)
    checks = entry.get("Checks") or []
    return Candidate(
        node_id=node_id,
        host=str(host),
        port=port,
        meta={
            "service_id": sid,
            "tags": list(service.get("Tags") or []),
            "consul_node": node.get("Node"),
            "datacenter": node.get("Datacenter"),
            "checks": {str(c.get("CheckID")): str(c.get("Status")) for c in checks},
        },
    )


def build_consul_result(
    entries: Sequence[Mapping[str, Any]], service_name: str, datacenter: str | None, index: int
) -> DiscoveryResult:
    """Health entries -> ``{"service", "datacenter", "consul_index", "nodes": [{id, address, port, tags}]}``."""
    if not isinstance(entries, Sequence):
        raise BackendResponseError("Consul /v1/health/service did not return a list")
    candidates = sorted((candidate_from_health_entry(e, service_name) for e in entries), key=lambda c: c.node_id)
    dc = datacenter or next((c.meta["datacenter"] for c in candidates if c.meta.get("datacenter")), None)
    body = {
        "service": service_name,
        "datacenter": dc,
        "consul_index": index,
        "nodes": [{"id": c.node_id, "address": c.host, "port": c.port, "tags": c.meta["tags"]} for c in candidates],
    }
    return DiscoveryResult(backend="consul", candidates=tuple(candidates), body=body)
