"""Where a TCP, HTTP or gRPC health check dials (NETWORKING-016), sans-I/O.

Theory of operation. A check's endpoint may name a node by id instead of an address
(``http://node2:8080/health``, ``node3:50051``): the host is then replaced by that node's
advertised host (its TCP address without the port), so a check reads the same on every node.
The host finally dialled is what the node's dial policy must allow (the API refuses with 403
otherwise). Custom checks dial nothing, and a malformed endpoint or an unknown type is left as
it is for the checker to refuse (422 naming the field): ``resolve_endpoint`` returns None then.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["DIALLED_TYPES", "ResolvedEndpoint", "host_table", "resolve_endpoint"]

DIALLED_TYPES = ("TCP", "HTTP", "GRPC")
"""Check types that dial their endpoint (upper case)."""


@dataclass(frozen=True)
class ResolvedEndpoint:
    host: str
    """The host the check dials (for the dial policy)."""
    endpoint: str
    """The endpoint with a node-id host replaced by the node's host (unchanged otherwise)."""


def host_table(own_id: str, own_host: str, peers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """node id -> host, from this node's advertised host and each peer's ``(node_id, tcp_address)``."""
    hosts = {own_id: own_host}
    for node_id, tcp_address in peers:
        hosts[node_id] = tcp_address.rsplit(":", 1)[0].strip("[]")
    return hosts


def resolve_endpoint(check_type: object, endpoint: object, hosts: Mapping[str, str]) -> ResolvedEndpoint | None:
    """The dialled host and endpoint of a well-formed TCP/HTTP/gRPC check, else None (see the module doc)."""
    kind = check_type.strip().upper() if isinstance(check_type, str) else ""
    if kind not in DIALLED_TYPES or not isinstance(endpoint, str):
        return None
    url = urllib.parse.urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    try:
        port = url.port
    except ValueError:
        port = None
    host = url.hostname
    well_formed = url.scheme in ("http", "https") if kind == "HTTP" else (port is not None and not url.scheme)
    if not host or not well_formed:
        return None
    target = hosts.get(host, host)
    if target == host:
        return ResolvedEndpoint(target, endpoint)
    netloc = url.netloc.replace(host, f"[{target}]" if ":" in target else target, 1)
    return ResolvedEndpoint(target, urllib.parse.urlunsplit(url._replace(netloc=netloc)).removeprefix("//"))
