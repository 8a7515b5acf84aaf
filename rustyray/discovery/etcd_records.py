"""etcd discovery, pure half: v3 JSON-gateway bodies <-> candidates.

Theory of operation (etcd v3 API, "etcd3 API reference" and the gRPC-gateway JSON mapping): each node
registers the key ``<prefix><node_id>`` with a JSON value ``{"id", "address", ...}`` attached to a lease;
when the node stops renewing, the lease expires and etcd deletes the key, which every watcher sees as a
DELETE. Listing the prefix is a Range over ``[prefix, prefix_range_end(prefix))``. In the JSON gateway,
keys and values are base64 strings and int64 fields (revisions, lease ids) are decimal strings; fields
that equal their default (e.g. event type PUT = 0, lease 0) are omitted. No I/O here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rustyray.discovery.errors import BackendResponseError
from rustyray.discovery.model import Candidate, DiscoveryResult, join_host_port, split_host_port


def b64encode(data: bytes | str) -> str:
    """Base64 as the gateway expects for ``bytes`` fields."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def b64decode(text: str) -> bytes:
    """Inverse of :func:`b64encode`; BackendResponseError on garbage."""
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise BackendResponseError(f"etcd returned invalid base64 {text!r}") from exc


def prefix_range_end(prefix: bytes) -> bytes:
    """The exclusive end of the key range holding every key that starts with ``prefix``.

    Same rule as clientv3.GetPrefixRangeEnd: increment the last byte that is not 0xff and drop what
    follows; a prefix of only 0xff bytes (or empty) ranges to the end of the keyspace, spelled b"\\x00".
    """
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\x00"


def as_int(value: Any, field: str) -> int:
    """Gateway int64 (a decimal string, or absent meaning 0) -> int."""
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise BackendResponseError(f"etcd field {field} is not an integer: {value!r}") from exc


def node_key(prefix: str, node_id: str) -> str:
    """The key a node registers under."""
    return f"{prefix}{node_id}"


def encode_node_value(node_id: str, host: str, port: int, meta: Mapping[str, Any] | None = None) -> bytes:
    """The registration value: ``{"id", "address": "host:port", **meta}`` as compact JSON."""
    value: dict[str, Any] = dict(meta or {})
    value["id"] = node_id
    value["address"] = join_host_port(host, port)
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def candidate_from_kv(kv: Mapping[str, Any], prefix: str) -> Candidate | None:
    """A range/watch ``kv`` -> Candidate, or None when the value is not a node registration.

    Foreign or malformed values under the prefix are skipped rather than failing the whole listing:
    one bad writer must not blind every node.
    """
    key = b64decode(kv.get("key", "")).decode("utf-8", "replace")
    if not key.startswith(prefix):
        return None
    try:
        value = json.loads(b64decode(kv.get("value", "")))
        host, port = split_host_port(str(value["address"]))
        node_id = str(value.get("id") or key[len(prefix) :])
    except (ValueError, KeyError, TypeError, BackendResponseError):
        return None
    meta = {k: v for k, v in value.items() if k not in ("id", "address")}
    meta["lease_id"] = as_int(kv.get("lease"), "lease")
    meta["key"] = key
    meta["mod_revision"] = as_int(kv.get("mod_revision"), "mod_revision")
    return Candidate(node_id=node_id, host=host, port=port, meta=meta)


def header_revision(body: Mapping[str, Any]) -> int:
    """``header.revision`` of a gateway response."""
    return as_int(body.get("header", {}).get("revision"), "header.revision")


def check_gateway_error(body: Any, what: str) -> None:
    """Raise BackendResponseError when a 200 body is a gateway error object."""
    if not isinstance(body, Mapping):
        raise BackendResponseError(f"etcd {what}: expected a JSON object, got {type(body).__name__}")
    if "error" in body and "header" not in body and "result" not in body:
        raise BackendResponseError(f"etcd {what}: {body.get('message') or body['error']}")


def build_etcd_result(range_body: Mapping[str, Any], prefix: str) -> DiscoveryResult:
    """A ``/v3/kv/range`` body -> the NETWORKING-023 body ``{"nodes": [...], "revision": int}``."""
    check_gateway_error(range_body, "range")
    candidates = []
    for kv in range_body.get("kvs", ()):
        candidate = candidate_from_kv(kv, prefix)
        if candidate is not None:
            candidates.append(candidate)
    candidates.sort(key=lambda c: c.node_id)
    body = {
        "nodes": [{"id": c.node_id, "address": c.address, "lease_id": c.meta["lease_id"]} for c in candidates],
        "revision": header_revision(range_body),
    }
    return DiscoveryResult(backend="etcd", candidates=tuple(candidates), body=body)


@dataclass(frozen=True)
class EtcdChange:
    """One watch event under the prefix: ``candidate`` is None for deletes (the value is gone)."""

    kind: str  # "put" or "delete"
    key: str
    node_id: str
    candidate: Candidate | None
    mod_revision: int


@dataclass(frozen=True)
class EtcdWatchMessage:
    """One line of the ``/v3/watch`` stream."""

    watch_id: int
    created: bool
    canceled: bool
    #: Non-zero when start_revision was compacted away: the watcher must re-list.
    compact_revision: int
    revision: int
    changes: tuple[EtcdChange, ...]


def parse_watch_message(message: Mapping[str, Any], prefix: str) -> EtcdWatchMessage:
    """One streamed JSON object -> EtcdWatchMessage; BackendResponseError for stream errors."""
    check_gateway_error(message, "watch")
    result = message.get("result")
    if not isinstance(result, Mapping):
        raise BackendResponseError(f"etcd watch: message without result: {message!r}")
    changes = []
    for event in result.get("events", ()):
        kv = event.get("kv", {})
        key = b64decode(kv.get("key", "")).decode("utf-8", "replace")
        if not key.startswith(prefix):
            continue
        revision = as_int(kv.get("mod_revision"), "mod_revision")
        if event.get("type", "PUT") == "DELETE":
            changes.append(EtcdChange("delete", key, key[len(prefix) :], None, revision))
        else:
            candidate = candidate_from_kv(kv, prefix)
            if candidate is not None:
                changes.append(EtcdChange("put", key, candidate.node_id, candidate, revision))
    return EtcdWatchMessage(
        watch_id=as_int(result.get("watch_id"), "watch_id"),
        created=bool(result.get("created", False)),
        canceled=bool(result.get("canceled", False)),
        compact_revision=as_int(result.get("compact_revision"), "compact_revision"),
        revision=header_revision(result),
        changes=tuple(changes),
    )
