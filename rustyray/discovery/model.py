"""Value objects shared by every discovery backend.

Every backend reduces what it learns to :class:`Candidate` peers that the node then joins through SWIM,
and keeps the backend-specific REST body (the NETWORKING-02x shapes) beside them in
:class:`DiscoveryResult` so the management API can return it unchanged. Pure: no I/O here.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Candidate:
    """A peer worth contacting: SWIM joins ``host:port`` and expects ``node_id`` to answer."""

    node_id: str
    host: str
    port: int
    #: Backend-specific extras (tags, lease id, zone, readiness...). Not part of the hash.
    meta: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def address(self) -> str:
        """``host:port`` with IPv6 hosts bracketed, the form SWIM and etcd values use."""
        return join_host_port(self.host, self.port)


@dataclass(frozen=True)
class DiscoveryResult:
    """One discovery round: the candidates plus the REST body for this backend."""

    #: Registry name of the backend that produced it ("dns", "etcd", "consul", ...).
    backend: str
    candidates: tuple[Candidate, ...]
    #: JSON-ready body in the seed's shape (NETWORKING-020..024); see ``as_response``.
    body: Mapping[str, Any]

    def as_response(self) -> dict[str, Any]:
        """A deep copy of ``body`` the caller may serialise or mutate freely."""
        return copy.deepcopy(dict(self.body))


class DiscoveryEventKind(enum.Enum):
    """What a watch saw happen to a peer."""

    JOIN = "join"
    LEAVE = "leave"


@dataclass(frozen=True)
class DiscoveryEvent:
    """Emitted by ``watch()``: a peer appeared in, or vanished from, the backend."""

    kind: DiscoveryEventKind
    candidate: Candidate


def diff_candidates(old: Iterable[Candidate], new: Iterable[Candidate]) -> list[DiscoveryEvent]:
    """Events turning ``old`` into ``new``, keyed by node id.

    A node whose address changed yields LEAVE(old) then JOIN(new) so SWIM re-probes the new address.
    Output order is deterministic (sorted by node id, leaves first) so tests and logs are stable.
    """
    before = {c.node_id: c for c in old}
    after = {c.node_id: c for c in new}
    events: list[DiscoveryEvent] = []
    for node_id in sorted(before):
        prev = before[node_id]
        cur = after.get(node_id)
        if cur is None or (cur.host, cur.port) != (prev.host, prev.port):
            events.append(DiscoveryEvent(DiscoveryEventKind.LEAVE, prev))
    for node_id in sorted(after):
        cur = after[node_id]
        prev = before.get(node_id)
        if prev is None or (cur.host, cur.port) != (prev.host, prev.port):
            events.append(DiscoveryEvent(DiscoveryEventKind.JOIN, cur))
    return events


def join_host_port(host: str, port: int) -> str:
    """``host:port``, bracketing IPv6 literals."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(address: str, default_port: int | None = None) -> tuple[str, int]:
    """Inverse of :func:`join_host_port`; accepts ``h:p``, ``[v6]:p``, and bare hosts with a default.

    Raises ValueError when no port can be determined or it is out of range.
    """
    address = address.strip()
    host: str
    port_text: str | None
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise ValueError(f"unbalanced '[' in address {address!r}")
        host = address[1:end]
        rest = address[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"junk after ']' in address {address!r}")
        port_text = rest[1:] if rest else None
    elif address.count(":") == 1:
        host, port_text = address.split(":")
    else:  # a bare IPv4/hostname, or a bare IPv6 literal
        host, port_text = address, None
    if not host:
        raise ValueError(f"empty host in address {address!r}")
    if port_text is None or port_text == "":
        if default_port is None:
            raise ValueError(f"address {address!r} has no port")
        port = default_port
    else:
        if not port_text.isdigit():
            raise ValueError(f"port {port_text!r} in address {address!r} is not a number")
        port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} in address {address!r} is out of range")
    return host, port
