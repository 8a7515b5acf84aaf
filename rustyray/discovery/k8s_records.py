"""Kubernetes discovery, pure half: API objects -> nodes, watch-event bookkeeping, selectors.

Theory of operation (Kubernetes API conventions; discovery.k8s.io/v1 EndpointSlice, core/v1 Endpoints
and Pod): a Service's backends are published as EndpointSlices labelled
``kubernetes.io/service-name=<service>`` (older clusters: one Endpoints object named after the
Service). An endpoint's ``conditions.ready`` is authoritative; ``null`` means unknown and, as the API
docs advise, is read as ready. Pods of a StatefulSet are found with the set's ``spec.selector``; a pod
is ready when its ``Ready`` condition is "True". Watches deliver ``{"type", "object"}`` lines
(ADDED/MODIFIED/DELETED/BOOKMARK/ERROR); an ERROR with code 410 means the resourceVersion is too old
and the client must list again. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

from rustyray.discovery.errors import BackendResponseError
from rustyray.discovery.model import Candidate, DiscoveryResult

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class WatchExpiredError(BackendResponseError):
    """The watch's resourceVersion is gone (HTTP/Status 410): list again, then watch again."""


def _pick_port(ports: Iterable[Mapping[str, Any]] | None, port_name: str | None, default_port: int) -> int:
    for port in ports or ():
        if (port_name is None or port.get("name") == port_name) and port.get("port") is not None:
            return int(port["port"])
    return default_port


def nodes_from_endpoint_slices(
    slices: Iterable[Mapping[str, Any]], port_name: str | None = None, default_port: int = 7000
) -> list[Candidate]:
    """EndpointSlice objects -> one candidate per (pod, address), sorted by pod name."""
    out: dict[tuple[str, str], Candidate] = {}
    for slice_ in slices:
        if slice_.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue  # FQDN slices carry no address we could probe
        port = _pick_port(slice_.get("ports"), port_name, default_port)
        for endpoint in slice_.get("endpoints") or ():
            ready = (endpoint.get("conditions") or {}).get("ready")
            ref = endpoint.get("targetRef") or {}
            for ip in endpoint.get("addresses") or ():
                pod = ref.get("name") or endpoint.get("hostname") or ip
                out[(pod, ip)] = Candidate(
                    node_id=pod,
                    host=ip,
                    port=port,
                    meta={
                        "ready": True if ready is None else bool(ready),
                        "zone": endpoint.get("zone"),
                        "node_name": endpoint.get("nodeName"),
                    },
                )
    return sorted(out.values(), key=lambda c: (c.node_id, c.host))


def nodes_from_endpoints(
    endpoints: Mapping[str, Any], port_name: str | None = None, default_port: int = 7000
) -> list[Candidate]:
    """A core/v1 Endpoints object -> candidates (``notReadyAddresses`` become ready=False)."""
    out: dict[tuple[str, str], Candidate] = {}
    for subset in endpoints.get("subsets") or ():
        port = _pick_port(subset.get("ports"), port_name, default_port)
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(key) or ():
                ip = address.get("ip")
                if not ip:
                    continue
                pod = (address.get("targetRef") or {}).get("name") or address.get("hostname") or ip
                out[(pod, ip)] = Candidate(
                    node_id=pod, host=ip, port=port, meta={"ready": ready, "node_name": address.get("nodeName")}
                )
    return sorted(out.values(), key=lambda c: (c.node_id, c.host))


def pod_is_ready(pod: Mapping[str, Any]) -> bool:
    """True when the pod's ``Ready`` condition is "True" and it is not being deleted."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def nodes_from_pods(
    pods: Iterable[Mapping[str, Any]], port_name: str | None = None, default_port: int = 7000
) -> list[Candidate]:
    """Pods (e.g. of a StatefulSet) -> candidates; pods without an IP yet are left out."""
    out = []
    for pod in pods:
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if not ip:
            continue
        ports = [
            {"name": p.get("name"), "port": p.get("containerPort")}
            for c in (pod.get("spec") or {}).get("containers") or ()
            for p in c.get("ports") or ()
        ]
        out.append(
            Candidate(
                node_id=pod["metadata"]["name"],
                host=ip,
                port=_pick_port(ports, port_name, default_port) if port_name else default_port,
                meta={"ready": pod_is_ready(pod), "node_name": (pod.get("spec") or {}).get("nodeName")},
            )
        )
    return sorted(out, key=lambda c: (c.node_id, c.host))


def build_k8s_result(namespace: str, service: str, nodes: Iterable[Candidate]) -> DiscoveryResult:
    """The NETWORKING-021 body lists every node with its readiness; only ready ones become candidates."""
    nodes = list(nodes)
    body = {
        "namespace": namespace,
        "service": service,
        "nodes": [{"pod": c.node_id, "ip": c.host, "ready": bool(c.meta.get("ready"))} for c in nodes],
    }
    # A dual-stack pod appears once per address; SWIM needs one address per node, IPv4 first.
    chosen: dict[str, Candidate] = {}
    for c in sorted((c for c in nodes if c.meta.get("ready")), key=lambda c: (c.node_id, ":" in c.host, c.host)):
        chosen.setdefault(c.node_id, c)
    ready = tuple(chosen.values())
    return DiscoveryResult(backend="kubernetes", candidates=ready, body=body)


def selector_to_string(selector: Mapping[str, Any]) -> str:
    """A LabelSelector object (matchLabels + matchExpressions) -> the ``labelSelector`` query string."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr["key"], expr["operator"], list(expr.get("values") or ())
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            raise BackendResponseError(f"unknown label selector operator {op!r}")
    if not terms:
        raise BackendResponseError("empty label selector would match every pod in the namespace")
    return ",".join(terms)


def list_resource_version(body: Mapping[str, Any]) -> str:
    """``metadata.resourceVersion`` of a List, the point a watch starts from."""
    return str((body.get("metadata") or {}).get("resourceVersion") or "")


def apply_watch_event(state: MutableMapping[str, Mapping[str, Any]], event: Mapping[str, Any]) -> str | None:
    """Fold one watch event into ``state`` (objects by name); returns the new resourceVersion.

    Raises WatchExpiredError on a 410 ERROR and BackendResponseError on any other ERROR.
    """
    kind = event.get("type")
    obj = event.get("object") or {}
    if kind == "ERROR":
        code = obj.get("code")
        if code == 410:
            raise WatchExpiredError(f"watch expired: {obj.get('message')}", 410)
        raise BackendResponseError(f"watch error: {obj.get('message') or obj!r}", code)
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if kind in ("ADDED", "MODIFIED") and name:
        state[name] = obj
    elif kind == "DELETED" and name:
        state.pop(name, None)
    elif kind != "BOOKMARK":
        raise BackendResponseError(f"unknown watch event type {kind!r}")
    return metadata.get("resourceVersion")
