"""Message handlers: what a node does with a routed message of each type.

Theory of operation. Routing delivers ``(message_type, data)``; a
``HandlerRegistry`` maps the type to a function ``handler(ctx, data) -> dict``
that computes the answer from the node's own state, reached through ``ctx`` (a
``HandlerContext``: node id, live config dict, counters). Handlers may be plain
functions or coroutines; ``HandlerRegistry.dispatch`` awaits the latter, so the
registry stays free of any event-loop import. The built-ins cover the seed's
message types:

* ``QueryRequest`` / ``ShardQuery``: run ``data["query"]`` (one read-only SQL
  statement, ``data["params"]`` its optional ``?`` parameters) against this node's
  SQLite shard, ``ctx.shards`` (a ``ShardStore``, see ``shard_store_adapter``), and
  answer what SQLite returned: ``rows`` is the number of rows the statement produced
  (at most the store's row cap; ``truncated`` says when it stopped there),
  ``columns`` their names, ``elapsed_ms`` the measured run time, and
  ``queries_processed`` this node's count of queries answered. A statement SQLite
  rejects (syntax, unknown table, anything but a read, over the time budget) raises
  ``ShardQueryError`` with SQLite's message, so a fan-out reports that node's
  ``status`` as ``"error"``; it bumps ``counters["queries_failed"]`` instead.
* ``ConsensusProposal``: votes with the Paxos/Raft promise rule: REJECT when the
  proposal's ``term`` (or ``version``) is lower than the highest term this node
  has accepted (``counters["last_accepted_term"]``); otherwise ACCEPT and record
  the term. A proposal without a term makes no ordering claim and is accepted
  without changing the record.
* ``ConfigUpdate``: sets ``config[key] = value`` for ``{"setting": k, "value": v}``
  or ``{"key": k, "value": v}`` and answers with the previous and applied value.
* ``Heartbeat``: echoes the payload with the node id.
* ``ChaosRecord``: appends ``{"seq", "source"}`` from the payload to the node's
  durable record log (``ctx.records``, a ``RecordLog`` in the node directory)
  before answering, so "every acknowledged message was processed" can be checked
  even across actor restarts (the chaos soak does).

Unknown types raise ``UnknownMessageTypeError``; malformed payloads raise
``InvalidPayloadError`` naming the field. ``docs/handlers.md`` describes the
interface for an application's own handlers.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from rustyray.routing.errors import HandlerError, InvalidPayloadError, UnknownMessageTypeError


class HandlerContext(Protocol):
    """The node state a handler may read and change."""

    node_id: str
    config: dict[str, Any]
    """Live configuration; ConfigUpdate writes into it."""
    counters: dict[str, int]
    """Mutable counters, e.g. ``queries_processed``, ``last_accepted_term``."""


@dataclass
class NodeContext:
    """A plain ``HandlerContext`` (the node actor can pass its own object instead)."""

    node_id: str
    config: dict[str, Any] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    records: Any = None
    """A durable ``RecordLog`` (``append(dict) -> index``) for ``ChaosRecord``; None where there is none."""
    shards: ShardQueries | None = None
    """The node's SQLite shard for ``QueryRequest`` / ``ShardQuery``; None where there is none."""


@dataclass(frozen=True)
class ShardAnswer:
    """What one read-only query on a shard returned (facts measured by the store, nothing derived)."""

    rows: int
    """Rows SQLite produced, counted up to the store's cap."""
    columns: tuple[str, ...]
    """The result's column names, in order."""
    truncated: bool
    """True when SQLite had more rows than the cap; ``rows`` is then the cap."""
    elapsed_ms: float
    """Wall time of the run (open, execute, fetch), in milliseconds."""


class ShardQueryError(HandlerError):
    """The shard refused or failed a query; the message is SQLite's (plus what was refused, when it was)."""


class ShardQueries(Protocol):
    """A shard queries run against (``ShardStore`` in ``shard_store_adapter``; tests may pass a fake)."""

    async def query(self, sql: str, params: Sequence[Any] = ()) -> ShardAnswer:
        """Run one read-only statement; ``ShardQueryError`` when SQLite refuses or fails it."""
        ...


HandlerResult = Union[dict[str, Any], Awaitable[dict[str, Any]]]  # noqa: UP007
Handler = Callable[[HandlerContext, dict[str, Any]], HandlerResult]


class HandlerRegistry:
    """``message_type -> handler``."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, message_type: str, handler: Handler, replace: bool = False) -> None:
        if not message_type:
            raise ValueError("message_type must be a non-empty string")
        if message_type in self._handlers and not replace:
            raise ValueError(f"message_type {message_type!r} already has a handler")
        self._handlers[message_type] = handler

    def unregister(self, message_type: str) -> None:
        self._handlers.pop(message_type, None)

    def get(self, message_type: str) -> Handler:
        try:
            return self._handlers[message_type]
        except KeyError:
            raise UnknownMessageTypeError(message_type) from None

    def __contains__(self, message_type: object) -> bool:
        return message_type in self._handlers

    def message_types(self) -> list[str]:
        return sorted(self._handlers)

    async def dispatch(self, ctx: HandlerContext, message_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """Run the handler for ``message_type``, awaiting it when it is a coroutine function."""
        result = self.get(message_type)(ctx, data)
        if inspect.isawaitable(result):
            result = await result
        return _check_result(message_type, result)

    def dispatch_sync(self, ctx: HandlerContext, message_type: str, data: dict[str, Any]) -> dict[str, Any]:
        """Run a synchronous handler; HandlerError if it turns out to be a coroutine."""
        result = self.get(message_type)(ctx, data)
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise HandlerError(f"handler for {message_type!r} is async; use dispatch()")
        return _check_result(message_type, result)


def _check_result(message_type: str, result: object) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise HandlerError(f"handler for {message_type!r} returned {type(result).__name__}, not dict")
    return result


def _require(message_type: str, data: dict[str, Any], name: str) -> Any:
    if not isinstance(data, dict):
        raise InvalidPayloadError(message_type, "", "must be an object")
    if name not in data:
        raise InvalidPayloadError(message_type, name, "is required")
    return data[name]


# -- built-in handlers ----------------------------------------------------------------------------


_SQL_SCALARS = (str, int, float, type(None))


def _query_payload(message_type: str, data: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    query = _require(message_type, data, "query")
    if not isinstance(query, str):
        raise InvalidPayloadError(message_type, "query", "must be a string")
    if not query.strip():
        raise InvalidPayloadError(message_type, "query", "must not be empty")
    params = data.get("params", [])
    if not isinstance(params, list) or not all(isinstance(p, _SQL_SCALARS) for p in params):
        raise InvalidPayloadError(message_type, "params", "must be a list of strings, numbers, booleans or nulls")
    return query, tuple(params)


async def _query(message_type: str, ctx: HandlerContext, data: dict[str, Any]) -> dict[str, Any]:
    query, params = _query_payload(message_type, data)
    shards: ShardQueries | None = getattr(ctx, "shards", None)
    if shards is None:
        raise HandlerError(f"{message_type} needs a shard store on this node")
    try:
        answer = await shards.query(query, params)
    except ShardQueryError as exc:
        ctx.counters["queries_failed"] = ctx.counters.get("queries_failed", 0) + 1
        raise ShardQueryError(f"{message_type}: {exc}") from exc
    processed = ctx.counters.get("queries_processed", 0) + 1
    ctx.counters["queries_processed"] = processed
    return {
        "node": ctx.node_id,
        "rows": answer.rows,
        "status": "success",
        "columns": list(answer.columns),
        "truncated": answer.truncated,
        "elapsed_ms": answer.elapsed_ms,
        "queries_processed": processed,
    }


async def handle_query_request(ctx: HandlerContext, data: dict[str, Any]) -> dict[str, Any]:
    return await _query("QueryRequest", ctx, data)


async def handle_shard_query(ctx: HandlerContext, data: dict[str, Any]) -> dict[str, Any]:
    return await _query("ShardQuery", ctx, data)


def handle_consensus_proposal(ctx: HandlerContext, data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidPayloadError("ConsensusProposal", "", "must be an object")
    name = "term" if "term" in data else "version"
    term = data.get(name)
    last = ctx.counters.get("last_accepted_term")
    out: dict[str, Any] = {"node": ctx.node_id, "term": term, "last_accepted_term": last}
    if term is None:
        out.update(vote="ACCEPT", reason="proposal carries no term")
        return out
    if not isinstance(term, int) or isinstance(term, bool):
        raise InvalidPayloadError("ConsensusProposal", name, "must be an integer")
    if last is not None and term < last:
        out.update(vote="REJECT", reason=f"{name} {term} is older than accepted {last}")
        return out
    ctx.counters["last_accepted_term"] = term
    out.update(vote="ACCEPT", last_accepted_term=term, reason="not older than accepted")
    return out


def handle_config_update(ctx: HandlerContext, data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidPayloadError("ConfigUpdate", "", "must be an object")
    name = "setting" if "setting" in data else "key"
    key = _require("ConfigUpdate", data, name)
    if not isinstance(key, str) or not key:
        raise InvalidPayloadError("ConfigUpdate", name, "must be a non-empty string")
    value = _require("ConfigUpdate", data, "value")
    previous = ctx.config.get(key)
    ctx.config[key] = value
    ctx.counters["config_updates"] = ctx.counters.get("config_updates", 0) + 1
    return {"node": ctx.node_id, "applied": True, "key": key, "value": value, "previous": previous}


def handle_heartbeat(ctx: HandlerContext, data: dict[str, Any]) -> dict[str, Any]:
    return {"node": ctx.node_id, "echo": dict(data) if isinstance(data, dict) else data}


def handle_chaos_record(ctx: HandlerContext, data: dict[str, Any]) -> dict[str, Any]:
    seq = _require("ChaosRecord", data, "seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise InvalidPayloadError("ChaosRecord", "seq", "must be an integer")
    source = data.get("source", "")
    if not isinstance(source, str):
        raise InvalidPayloadError("ChaosRecord", "source", "must be a string")
    records = getattr(ctx, "records", None)
    if records is None:
        raise HandlerError("ChaosRecord needs a durable record log on this node")
    index = records.append({"seq": seq, "source": source})
    return {"node": ctx.node_id, "seq": seq, "index": index}


BUILTIN_HANDLERS: dict[str, Handler] = {
    "QueryRequest": handle_query_request,
    "ShardQuery": handle_shard_query,
    "ConsensusProposal": handle_consensus_proposal,
    "ConfigUpdate": handle_config_update,
    "Heartbeat": handle_heartbeat,
    "ChaosRecord": handle_chaos_record,
}


def default_registry() -> HandlerRegistry:
    """A registry with the built-in handlers for the seed's message types."""
    registry = HandlerRegistry()
    for message_type, handler in BUILTIN_HANDLERS.items():
        registry.register(message_type, handler)
    return registry
