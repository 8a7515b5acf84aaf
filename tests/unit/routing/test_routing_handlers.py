import pytest

from rustyray.routing import (
    HandlerError,
    HandlerRegistry,
    InvalidPayloadError,
    NodeContext,
    ShardAnswer,
    ShardQueryError,
    UnknownMessageTypeError,
    default_registry,
)


class FakeShard:
    """A shard that answers a fixed ``ShardAnswer`` (or raises) and records what it was asked."""

    def __init__(self, answer=None, error=None):
        self.answer = answer or ShardAnswer(rows=3, columns=("id",), truncated=False, elapsed_ms=0.5)
        self.error = error
        self.asked = []

    async def query(self, sql, params=()):
        self.asked.append((sql, tuple(params)))
        if self.error is not None:
            raise ShardQueryError(self.error)
        return self.answer


async def test_query_request_and_shard_query_answer_what_the_shard_returned():
    reg = default_registry()
    shard = FakeShard(ShardAnswer(rows=7, columns=("id", "name"), truncated=True, elapsed_ms=1.25))
    ctx = NodeContext("node2", shards=shard)
    a = await reg.dispatch(ctx, "QueryRequest", {"query": "SELECT 1"})
    b = await reg.dispatch(ctx, "ShardQuery", {"query": "SELECT ?", "params": [1]})
    assert a == {"node": "node2", "rows": 7, "status": "success", "columns": ["id", "name"], "truncated": True,
                 "elapsed_ms": 1.25, "queries_processed": 1}
    assert b["rows"] == 7 and b["queries_processed"] == 2
    assert shard.asked == [("SELECT 1", ()), ("SELECT ?", (1,))]
    assert ctx.counters["queries_processed"] == 2
    with pytest.raises(HandlerError, match="async"):  # the query runs off the event loop: dispatch() only
        reg.dispatch_sync(ctx, "QueryRequest", {"query": "SELECT 1"})


async def test_a_failing_query_raises_with_the_shards_message_and_counts_as_failed():
    ctx = NodeContext("node2", shards=FakeShard(error="no such table: nope"))
    with pytest.raises(ShardQueryError, match=r"^ShardQuery: no such table: nope$"):
        await default_registry().dispatch(ctx, "ShardQuery", {"query": "SELECT * FROM nope"})
    assert ctx.counters == {"queries_failed": 1}
    with pytest.raises(HandlerError, match="needs a shard store"):
        await default_registry().dispatch(NodeContext("n"), "QueryRequest", {"query": "SELECT 1"})


@pytest.mark.parametrize(
    ("data", "field", "problem"),
    [
        ({}, "query", "is required"),
        ({"query": 5}, "query", "must be a string"),
        ({"query": "  "}, "query", "must not be empty"),
        ({"query": "SELECT ?", "params": {"a": 1}}, "params", "must be a list"),
        ({"query": "SELECT ?", "params": [[1]]}, "params", "must be a list"),
    ],
)
async def test_query_payloads_are_checked_before_the_shard_is_asked(data, field, problem):
    shard = FakeShard()
    with pytest.raises(InvalidPayloadError, match=problem) as info:
        await default_registry().dispatch(NodeContext("n", shards=shard), "QueryRequest", data)
    assert info.value.field == field
    assert shard.asked == []


@pytest.mark.parametrize(
    ("last", "data", "vote", "new_last"),
    [
        (None, {}, "ACCEPT", None),  # seed request carries no term
        (None, {"term": 3}, "ACCEPT", 3),
        (5, {"term": 5}, "ACCEPT", 5),
        (5, {"term": 7}, "ACCEPT", 7),
        (5, {"term": 4}, "REJECT", 5),
        (5, {"version": 2}, "REJECT", 5),
        (5, {"version": 9, "value": "x"}, "ACCEPT", 9),
    ],
)
def test_consensus_vote_rule(last, data, vote, new_last):
    ctx = NodeContext("n1")
    if last is not None:
        ctx.counters["last_accepted_term"] = last
    out = default_registry().dispatch_sync(ctx, "ConsensusProposal", data)
    assert out["vote"] == vote
    assert ctx.counters.get("last_accepted_term") == new_last


def test_consensus_rejects_non_integer_term():
    with pytest.raises(InvalidPayloadError, match="term"):
        default_registry().dispatch_sync(NodeContext("n"), "ConsensusProposal", {"term": "3"})


@pytest.mark.parametrize(
    "data",
    [{"setting": "max_connections", "value": "200"}, {"key": "max_connections", "value": "200"}],
)
def test_config_update_applies_both_seed_shapes(data):
    ctx = NodeContext("n1", config={"max_connections": "100"})
    out = default_registry().dispatch_sync(ctx, "ConfigUpdate", data)
    assert ctx.config["max_connections"] == "200"
    assert out == {"node": "n1", "applied": True, "key": "max_connections", "value": "200", "previous": "100"}


@pytest.mark.parametrize(
    ("data", "field"),
    [({"value": 1}, "key"), ({"setting": "x"}, "value"), ({"setting": "", "value": 1}, "setting")],
)
def test_config_update_rejects_bad_payloads(data, field):
    ctx = NodeContext("n1")
    with pytest.raises(InvalidPayloadError) as info:
        default_registry().dispatch_sync(ctx, "ConfigUpdate", data)
    assert info.value.field == field
    assert ctx.config == {}


def test_heartbeat_echoes():
    out = default_registry().dispatch_sync(NodeContext("n2"), "Heartbeat", {"node_id": "n1", "timestamp": 7})
    assert out == {"node": "n2", "echo": {"node_id": "n1", "timestamp": 7}}


async def test_unknown_type_and_async_handlers():
    reg = default_registry()
    ctx = NodeContext("n1")
    with pytest.raises(UnknownMessageTypeError) as info:
        await reg.dispatch(ctx, "Nope", {})
    assert info.value.message_type == "Nope"

    async def slow_echo(ctx, data):
        return {"node": ctx.node_id, **data}

    reg.register("Echo", slow_echo)
    assert await reg.dispatch(ctx, "Echo", {"a": 1}) == {"node": "n1", "a": 1}
    assert await reg.dispatch(ctx, "Heartbeat", {}) == {"node": "n1", "echo": {}}
    with pytest.raises(HandlerError, match="async"):
        reg.dispatch_sync(ctx, "Echo", {})


def test_registry_guards():
    reg = HandlerRegistry()
    reg.register("A", lambda ctx, data: {"ok": True})
    with pytest.raises(ValueError, match="already"):
        reg.register("A", lambda ctx, data: {})
    reg.register("A", lambda ctx, data: ["not a dict"], replace=True)
    with pytest.raises(HandlerError, match="not dict"):
        reg.dispatch_sync(NodeContext("n"), "A", {})
    assert "A" in reg and reg.message_types() == ["A"]
    reg.unregister("A")
    assert "A" not in reg
    assert default_registry().message_types() == [
        "ChaosRecord",
        "ConfigUpdate",
        "ConsensusProposal",
        "Heartbeat",
        "QueryRequest",
        "ShardQuery",
    ]
