"""The node's SQLite shard (``node_dir/shard.sqlite3`` by default): what ``QueryRequest`` / ``ShardQuery`` query.

The file I/O under the query handlers in ``handlers``: they hand a statement to
``ShardStore.query`` and answer with the ``ShardAnswer`` it returns, so every number
in a query's answer is one SQLite produced or one measured here.

Read-only, by four independent locks, each enough on its own for writes:

* the file is opened through a URI with ``mode=ro`` (SQLite refuses to write it);
* ``PRAGMA query_only = ON`` on that connection;
* an authorizer (``Connection.set_authorizer``) that allows only the SELECT, READ and
  FUNCTION actions, so ``DELETE``, ``PRAGMA``, ``ATTACH``, DDL, transactions and
  recursive CTEs are refused while the statement is compiled, before it runs;
* Python's ``sqlite3`` runs exactly one statement per ``execute``.

And bounded: at most ``query_max_rows`` rows are read (the answer then says
``truncated``), a progress handler interrupts a statement that runs past
``query_time_budget_s``, and ``SQLITE_LIMIT_LENGTH`` caps any one value. Each query
opens its own connection in a worker thread (``asyncio.to_thread``), so the event loop
never waits on SQLite and concurrent queries do not share a connection. Changes made to
the file by another program are seen by the next query.

Demo data: when the file does not exist and ``demo_rows > 0``, it is created (atomically:
written aside, then renamed) with ``users(id INTEGER PRIMARY KEY, name TEXT, shard_key
INTEGER)`` holding users ``1..demo_rows`` named ``<node>-user-<i>`` with ``shard_key = 1 +
crc32("<node>/<i>") % demo_shard_keys`` (see :func:`demo_users`), so the seed's
``SELECT * FROM users WHERE shard_key IN (1,2,3)`` has real rows to count on every node. An
existing file is never written.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rustyray.routing.config import RoutingConfig
from rustyray.routing.handlers import ShardAnswer, ShardQueryError

SHARD_FILE = "shard.sqlite3"
MAX_VALUE_BYTES = 1_000_000
"""``SQLITE_LIMIT_LENGTH`` of a query connection: no string or blob a query builds may exceed it."""
PROGRESS_STEPS = 1000
"""SQLite virtual-machine instructions between two checks of the time budget."""
FETCH_BATCH = 512

ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION})
REFUSED_FUNCTIONS = frozenset({"load_extension"})
_ACTION_NAMES = {
    getattr(sqlite3, name): name.removeprefix("SQLITE_").replace("_", " ")
    for name in (
        "SQLITE_CREATE_INDEX", "SQLITE_CREATE_TABLE", "SQLITE_CREATE_TEMP_INDEX", "SQLITE_CREATE_TEMP_TABLE",
        "SQLITE_CREATE_TEMP_TRIGGER", "SQLITE_CREATE_TEMP_VIEW", "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VIEW",
        "SQLITE_DELETE", "SQLITE_DROP_INDEX", "SQLITE_DROP_TABLE", "SQLITE_DROP_TEMP_INDEX",
        "SQLITE_DROP_TEMP_TABLE", "SQLITE_DROP_TEMP_TRIGGER", "SQLITE_DROP_TEMP_VIEW", "SQLITE_DROP_TRIGGER",
        "SQLITE_DROP_VIEW", "SQLITE_INSERT", "SQLITE_PRAGMA", "SQLITE_READ", "SQLITE_SELECT",
        "SQLITE_TRANSACTION", "SQLITE_UPDATE", "SQLITE_ATTACH", "SQLITE_DETACH", "SQLITE_ALTER_TABLE",
        "SQLITE_REINDEX", "SQLITE_ANALYZE", "SQLITE_CREATE_VTABLE", "SQLITE_DROP_VTABLE", "SQLITE_FUNCTION",
        "SQLITE_SAVEPOINT", "SQLITE_RECURSIVE",
    )
    if hasattr(sqlite3, name)
}


def demo_users(node_id: str, rows: int, shard_keys: int) -> Iterator[tuple[int, str, int]]:
    """The demo ``users`` rows of ``node_id``: ``(i, "<node>-user-<i>", 1 + crc32("<node>/<i>") % shard_keys)``."""
    for i in range(1, rows + 1):
        yield i, f"{node_id}-user-{i}", 1 + zlib.crc32(f"{node_id}/{i}".encode()) % shard_keys


def shard_file(node_dir: Path, node_id: str, shard_path: str) -> Path:
    """Where a node's shard lives: ``[routing] shard_path`` with ``{node_id}`` filled in, from ``node_dir``."""
    if not shard_path:
        return node_dir / SHARD_FILE
    path = Path(shard_path.replace("{node_id}", node_id)).expanduser()
    return path if path.is_absolute() else node_dir / path


class _Refusals:
    """The authorizer of one query connection; remembers what it refused, for the error message."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def __call__(self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None) -> int:
        if action in ALLOWED_ACTIONS and not (action == sqlite3.SQLITE_FUNCTION and arg2 in REFUSED_FUNCTIONS):
            return sqlite3.SQLITE_OK
        what = _ACTION_NAMES.get(action, f"action {action}")
        target = arg2 if action == sqlite3.SQLITE_FUNCTION else arg1
        self.refused.append(f"{what} ({target})" if target else what)
        return sqlite3.SQLITE_DENY


class ShardStore:
    """One node's SQLite shard: read-only, bounded queries, and the demo data when the file is missing."""

    def __init__(self, path: Path, node_id: str, *, demo_rows: int = 1000, demo_shard_keys: int = 16,
                 max_rows: int = 10_000, time_budget_s: float = 2.0) -> None:
        if demo_rows < 0 or demo_shard_keys < 1 or max_rows < 1 or not time_budget_s > 0:
            raise ValueError("demo_rows >= 0, demo_shard_keys >= 1, max_rows >= 1 and time_budget_s > 0")
        self.path = path
        self.node_id = node_id
        self.demo_rows = demo_rows
        self.demo_shard_keys = demo_shard_keys
        self.max_rows = max_rows
        self.time_budget_s = time_budget_s
        self._create_lock = threading.Lock()

    @classmethod
    def for_node(cls, node_dir: Path, node_id: str, config: RoutingConfig) -> ShardStore:
        """The store ``[routing]`` describes for this node."""
        return cls(shard_file(node_dir, node_id, config.shard_path), node_id, demo_rows=config.demo_rows,
                   demo_shard_keys=config.demo_shard_keys, max_rows=config.query_max_rows,
                   time_budget_s=config.query_time_budget_s)

    # ------------------------------------------------------------------ the demo file
    def prepare(self) -> bool:
        """Write the demo shard if the file is missing and demo data is on; True when it wrote it."""
        with self._create_lock:
            if self.path.exists() or self.demo_rows == 0:
                return False
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            try:
                with contextlib.closing(sqlite3.connect(tmp)) as conn, conn:
                    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, shard_key INTEGER)")
                    conn.execute("CREATE INDEX users_shard_key ON users (shard_key)")
                    conn.executemany("INSERT INTO users (id, name, shard_key) VALUES (?, ?, ?)",
                                     demo_users(self.node_id, self.demo_rows, self.demo_shard_keys))
                if self.path.exists():  # another node sharing the path was first: keep its file
                    return False
                os.replace(tmp, self.path)
                return True
            finally:
                tmp.unlink(missing_ok=True)

    # ------------------------------------------------------------------ queries
    async def query(self, sql: str, params: Sequence[Any] = ()) -> ShardAnswer:
        """``run`` in a worker thread: the event loop is free while SQLite works."""
        return await asyncio.to_thread(self.run, sql, params)

    def run(self, sql: str, params: Sequence[Any] = ()) -> ShardAnswer:
        """Run one read-only statement and count its rows; ShardQueryError with SQLite's message if it fails."""
        try:
            self.prepare()
        except (OSError, sqlite3.Error) as exc:
            raise ShardQueryError(f"cannot create the demo shard {self.path}: {exc}") from exc
        if not self.path.exists():
            raise ShardQueryError(f"no shard file at {self.path} (and [routing] demo_rows = 0)")
        started = time.perf_counter()
        deadline = started + self.time_budget_s
        refusals = _Refusals()
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=self.time_budget_s)
        except sqlite3.Error as exc:
            raise ShardQueryError(f"cannot open {self.path}: {exc}") from exc
        try:
            conn.execute("PRAGMA query_only = ON")
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
            conn.set_authorizer(refusals)
            conn.set_progress_handler(lambda: int(time.perf_counter() > deadline), PROGRESS_STEPS)
            cursor = conn.execute(sql, tuple(params))
            if cursor.description is None:
                raise ShardQueryError("the statement returns no rows (only a SELECT may run)")
            columns = tuple(d[0] for d in cursor.description)
            seen = 0
            while seen <= self.max_rows:
                batch = cursor.fetchmany(min(FETCH_BATCH, self.max_rows + 1 - seen))
                if not batch:
                    break
                seen += len(batch)
        except (sqlite3.Error, OverflowError) as exc:  # OverflowError: an integer parameter beyond 64 bits
            raise ShardQueryError(self._explain(exc, refusals)) from exc
        finally:
            conn.close()
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        return ShardAnswer(rows=min(seen, self.max_rows), columns=columns, truncated=seen > self.max_rows,
                           elapsed_ms=elapsed_ms)

    def _explain(self, exc: sqlite3.Error, refusals: _Refusals) -> str:
        """SQLite's message, plus what the authorizer refused or that the time budget ran out."""
        message = str(exc)
        if refusals.refused:
            return f"{message}: the shard is read-only, refused {', '.join(dict.fromkeys(refusals.refused))}"
        if message == "interrupted":
            return f"{message}: over the time budget of {self.time_budget_s * 1000:g} ms"
        return message
