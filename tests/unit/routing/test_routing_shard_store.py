"""The query handlers against a real SQLite shard (``ShardStore``): the answer is what SQLite returned."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
import threading
import tomllib
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rustyray.config import ClusterConfig, ConfigError
from rustyray.routing import HandlerError, InvalidPayloadError, NodeContext, RoutingConfig, ShardQueryError
from rustyray.routing.handlers import default_registry
from rustyray.routing.shard_store_adapter import SHARD_FILE, ShardStore, demo_users, shard_file

SEED_QUERY = "SELECT * FROM users WHERE shard_key IN (1,2,3)"


def count(path: Path, sql: str = "SELECT count(*) FROM users", params: tuple = ()) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchone()[0]


def write(path: Path, sql: str, rows: list[tuple] = ()) -> None:
    """Change the shard from outside, as another SQLite client would."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        if rows:
            conn.executemany(sql, rows)
        else:
            conn.execute(sql)


def user_shard(path: Path, keys: list[int] = ()) -> Path:
    """A shard file as a user would load it: the demo schema, the given shard keys, nothing else."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, shard_key INTEGER)")
    if keys:
        write(path, "INSERT INTO users (name, shard_key) VALUES (?, ?)", [(f"u{k}", k) for k in keys])
    return path


async def ask(store: ShardStore, query: str, message_type: str = "ShardQuery", **extra) -> dict:
    ctx = NodeContext(store.node_id, shards=store)
    return await default_registry().dispatch(ctx, message_type, {"query": query, **extra})


# ------------------------------------------------------------------ the demo data


async def test_the_seed_query_counts_the_demo_rows_of_this_node(tmp_path):
    store = ShardStore(tmp_path / "node1" / SHARD_FILE, "node1")
    assert not store.path.exists()
    out = await ask(store, SEED_QUERY)
    assert store.path.exists() and count(store.path) == 1000  # written on first use, demo_rows by default
    expected = sum(1 for _, _, key in demo_users("node1", 1000, 16) if key in (1, 2, 3))
    assert expected == count(store.path, "SELECT count(*) FROM users WHERE shard_key IN (1,2,3)")
    assert out["node"] == "node1" and out["status"] == "success"
    assert out["rows"] == expected and out["columns"] == ["id", "name", "shard_key"] and out["truncated"] is False
    assert out["elapsed_ms"] >= 0 and out["queries_processed"] == 1


def test_the_demo_rule_is_documented_and_deterministic():
    rows = list(demo_users("node2", 5, 4))
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5] and rows[0][1] == "node2-user-1"
    assert rows == list(demo_users("node2", 5, 4))
    assert all(1 <= key <= 4 for _, _, key in rows)
    assert rows[2][2] == 1 + zlib.crc32(b"node2/3") % 4


async def test_inserting_rows_changes_the_reported_count(tmp_path):
    store = ShardStore(tmp_path / SHARD_FILE, "n1")
    before = (await ask(store, SEED_QUERY))["rows"]
    write(store.path, "INSERT INTO users (name, shard_key) VALUES (?, ?)", [("new", 2)] * 5 + [("other", 9)])
    after = await ask(store, SEED_QUERY)
    assert after["rows"] == before + 5
    assert after["queries_processed"] == 1  # a fresh context: the count is of this context's queries
    write(store.path, "DELETE FROM users WHERE shard_key IN (1,2,3)")
    assert (await ask(store, SEED_QUERY))["rows"] == 0


async def test_an_empty_table_gives_zero_rows(tmp_path):
    store = ShardStore(user_shard(tmp_path / "mine.sqlite3"), "n1", demo_rows=0)
    out = await ask(store, "SELECT * FROM users")
    assert out["rows"] == 0 and out["status"] == "success" and out["columns"] == ["id", "name", "shard_key"]


async def test_an_existing_file_is_never_overwritten_with_demo_data(tmp_path):
    path = user_shard(tmp_path / SHARD_FILE, [7, 7])
    store = ShardStore(path, "n1", demo_rows=50)
    assert store.prepare() is False
    assert (await ask(store, "SELECT * FROM users WHERE shard_key = 7"))["rows"] == 2
    assert count(path) == 2


async def test_without_demo_data_a_missing_shard_is_an_error_and_no_file_appears(tmp_path):
    store = ShardStore(tmp_path / SHARD_FILE, "n1", demo_rows=0)
    with pytest.raises(ShardQueryError, match=r"ShardQuery: no shard file at .*demo_rows = 0"):
        await ask(store, SEED_QUERY)
    assert not store.path.exists()


@settings(max_examples=25, deadline=None)
@given(keys=st.lists(st.integers(1, 8), max_size=40), wanted=st.sets(st.integers(1, 8), min_size=1))
def test_rows_is_what_sqlite_counts_for_any_data(keys, wanted):
    with tempfile.TemporaryDirectory() as tmp:
        store = ShardStore(user_shard(Path(tmp) / SHARD_FILE, keys), "n1", demo_rows=0)
        marks = ",".join("?" * len(wanted))
        answer = store.run(f"SELECT name FROM users WHERE shard_key IN ({marks})", sorted(wanted))
        assert answer.rows == sum(1 for k in keys if k in wanted)
        assert answer.columns == ("name",) and answer.truncated is False


# ------------------------------------------------------------------ read-only and bounded


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM users", r"not authorized: the shard is read-only, refused DELETE \(users\)"),
        ("UPDATE users SET name = 'x'", r"refused UPDATE \(users\)"),
        ("INSERT INTO users (name, shard_key) VALUES ('x', 1)", r"refused INSERT \(users\)"),
        ("DROP TABLE users", "not authorized"),
        ("PRAGMA journal_mode = DELETE", r"refused PRAGMA \(journal_mode\)"),
        ("ATTACH DATABASE ':memory:' AS other", "refused ATTACH"),
        ("BEGIN", "refused TRANSACTION"),
        ("SELECT 1; DELETE FROM users", "one statement at a time"),
    ],
)
async def test_anything_but_a_read_is_refused_and_the_table_is_unchanged(tmp_path, sql, message):
    store = ShardStore(tmp_path / SHARD_FILE, "n1", demo_rows=20)
    store.prepare()
    ctx = NodeContext("n1", shards=store)
    with pytest.raises(ShardQueryError, match=message):
        await default_registry().dispatch(ctx, "QueryRequest", {"query": sql})
    assert count(store.path) == 20
    assert ctx.counters == {"queries_failed": 1}


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELEC * FROM users", r'^ShardQuery: near "SELEC": syntax error$'),
        ("SELECT * FROM nope", r"^ShardQuery: no such table: nope$"),
        ("SELECT nope FROM users", r"^ShardQuery: no such column: nope$"),
        ("SELECT ?", "Incorrect number of bindings"),
        ("-- only a comment", "returns no rows"),
    ],
)
async def test_a_failing_query_is_an_error_with_sqlites_message(tmp_path, sql, message):
    with pytest.raises(ShardQueryError, match=message):
        await ask(ShardStore(tmp_path / SHARD_FILE, "n1", demo_rows=3), sql)


async def test_params_bind_and_out_of_range_ones_are_errors(tmp_path):
    store = ShardStore(tmp_path / SHARD_FILE, "n1", demo_rows=30, demo_shard_keys=3)
    out = await ask(store, "SELECT id FROM users WHERE shard_key = ?", params=[2])
    assert out["rows"] == count(store.path, "SELECT count(*) FROM users WHERE shard_key = ?", (2,))
    with pytest.raises(ShardQueryError, match="too large"):
        await ask(store, "SELECT id FROM users WHERE id = ?", params=[2**70])
    with pytest.raises(InvalidPayloadError) as info:
        await ask(store, "SELECT 1", params="2")
    assert info.value.field == "params"


async def test_the_row_cap_truncates_and_says_so(tmp_path):
    store = ShardStore(tmp_path / SHARD_FILE, "n1", demo_rows=100, max_rows=40)
    out = await ask(store, "SELECT * FROM users")
    assert out["rows"] == 40 and out["truncated"] is True
    out = await ask(store, "SELECT * FROM users LIMIT 40")
    assert out["rows"] == 40 and out["truncated"] is False


async def test_a_query_over_its_time_budget_is_interrupted(tmp_path):
    store = ShardStore(tmp_path / SHARD_FILE, "n1", demo_rows=1000, time_budget_s=0.05)
    with pytest.raises(ShardQueryError, match=r"interrupted: over the time budget of 50 ms"):
        await ask(store, "SELECT count(*) FROM users a, users b, users c")


async def test_queries_run_in_a_worker_thread(tmp_path):
    threads = []

    class Recording(ShardStore):
        def run(self, sql, params=()):
            threads.append(threading.get_ident())
            return super().run(sql, params)

    await ask(Recording(tmp_path / SHARD_FILE, "n1", demo_rows=1), "SELECT 1")
    assert threads and threads[0] != threading.get_ident()


def test_a_shard_the_store_cannot_create_is_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ShardQueryError, match="cannot create the demo shard"):
        ShardStore(blocker / SHARD_FILE, "n1").run("SELECT 1")
    assert issubclass(ShardQueryError, HandlerError)  # acknowledged as that node's error, no traceback logged


# ------------------------------------------------------------------ the [routing] keys


def test_shard_path_resolution(tmp_path):
    node_dir = tmp_path / "nodes" / "node3"
    assert shard_file(node_dir, "node3", "") == node_dir / SHARD_FILE
    assert shard_file(node_dir, "node3", "data/{node_id}.db") == node_dir / "data" / "node3.db"
    assert shard_file(node_dir, "node3", "/srv/shards/{node_id}.db") == Path("/srv/shards/node3.db")


def test_the_routing_table_sets_the_shard_keys_from_toml(tmp_path):
    doc = tomllib.loads(
        '[routing]\nshard_path = "/srv/{node_id}.sqlite3"\ndemo_rows = 0\ndemo_shard_keys = 4\n'
        "query_max_rows = 50\nquery_time_budget_s = 0.5\n"
    )
    cfg = ClusterConfig.from_toml(doc).routing
    assert (cfg.shard_path, cfg.demo_rows, cfg.demo_shard_keys, cfg.query_max_rows, cfg.query_time_budget_s) == (
        "/srv/{node_id}.sqlite3", 0, 4, 50, 0.5)
    store = ShardStore.for_node(tmp_path, "node7", cfg)
    assert store.path == Path("/srv/node7.sqlite3")
    assert (store.demo_rows, store.demo_shard_keys, store.max_rows, store.time_budget_s) == (0, 4, 50, 0.5)
    defaults = RoutingConfig()
    assert (defaults.shard_path, defaults.demo_rows, defaults.query_max_rows) == ("", 1000, 10_000)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"demo_rows": -1}, r"\[routing\] demo_rows must be >= 0"),
        ({"demo_rows": "many"}, r"\[routing\] demo_rows must be int, got str"),
        ({"query_max_rows": 0}, r"\[routing\] query_max_rows must be >= 1"),
        ({"query_time_budget_s": 0}, r"\[routing\] query_time_budget_s must be > 0"),
        ({"shard_path": 3}, r"\[routing\] shard_path must be str, got int"),
    ],
)
def test_bad_shard_keys_are_refused_naming_the_key(table, message):
    with pytest.raises(ConfigError, match=message):
        ClusterConfig.from_toml({"routing": table})
