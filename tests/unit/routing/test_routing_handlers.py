import pytest

from rustyray.routing import (
    HandlerError,
    HandlerRegistry,
    InvalidPayloadError,
    NodeContext,
    UnknownMessageTypeError,
    default_registry,
    query_rows,
)


def test_query_rows_deterministic_per_node_and_history():
    q = "SELECT * FROM users"
    assert query_rows("node1", q, 0) == query_rows("node1", q, 0)
    assert query_rows("node1", q, 0) != query_rows("node2", q, 0)
    assert query_rows("node1", q, 3) == query_rows("node1", q, 0) + 3
    assert 100 <= query_rows("nodeX", "x", 0) < 2000


def test_query_request_and_shard_query_use_node_state():
    reg = default_registry()
    ctx = NodeContext("node2")
    a = reg.dispatch_sync(ctx, "QueryRequest", {"query": "SELECT 1"})
    b = reg.dispatch_sync(ctx, "ShardQuery", {"query": "SELECT 1"})
    assert a["node"] == "node2" and a["status"] == "success"
    assert a["rows"] == query_rows("node2", "SELECT 1", 0)
    assert b["rows"] == query_rows("node2", "SELECT 1", 1)
    assert ctx.counters["queries_processed"] == 2
    with pytest.raises(InvalidPayloadError, match=r"data\.query") as info:
        reg.dispatch_sync(ctx, "QueryRequest", {})
    assert info.value.field == "query"
    with pytest.raises(InvalidPayloadError, match="string"):
        reg.dispatch_sync(ctx, "ShardQuery", {"query": 5})


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
