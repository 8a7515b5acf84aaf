"""Configuration of the routing subsystem (outboxes, retries, deduplication, the query shard): ``[routing]``."""

from __future__ import annotations

from dataclasses import dataclass

from rustyray.validation import at_least, positive


@dataclass(frozen=True)
class RoutingConfig:
    """Knobs for ``PriorityOutbox``, ``DeliveryTracker``, ``DedupWindow``, the ``RoutingService`` adapter and
    the node's SQLite shard (``ShardStore``).

    Defaults suit a LAN cluster; ``local()`` shrinks the timings for tests and
    single-host clusters.
    """

    outbox_max_size: int = 1024
    """Messages queued per peer before ``push`` raises ``OutboxFullError``; bounds memory per slow peer."""

    retry_initial_s: float = 0.2
    """Seconds before the first retransmission of an unacknowledged message."""

    retry_max_s: float = 5.0
    """Upper bound (seconds) on the gap between two retransmissions, before jitter."""

    retry_multiplier: float = 2.0
    """Growth factor of the retry gap per attempt (exponential backoff); 1.0 means fixed gaps."""

    retry_jitter: float = 0.1
    """Fraction (0..1) of each gap randomised up or down, so senders that lost one peer de-synchronise."""

    default_deadline_s: float = 30.0
    """Seconds a message may stay unacknowledged before it is reported failed, when the caller gives none."""

    dedup_max_entries: int = 100_000
    """Keys remembered by a receiver's ``DedupWindow``; the oldest are evicted beyond this (bounds memory)."""

    dedup_max_age_s: float = 600.0
    """Seconds a key is remembered; must exceed senders' delivery deadlines or late retries slip through."""

    # -- the service adapter (RoutingService) --
    dedup_persist_interval_s: float = 1.0
    """Seconds between saves of the dedup window to ``node_dir/dedup.bin`` (only when it changed)."""

    receive_log_size: int = 256
    """Message ids kept in the receive log (the newest ones)."""

    record_log_size: int = 100_000
    """Records kept by the durable record log ``node_dir/records.jsonl`` (ChaosRecord); the file holds at most
    twice as many lines before it is compacted to the newest ``record_log_size``."""

    # -- the node's SQLite shard (shard_store_adapter.ShardStore; QueryRequest / ShardQuery run against it) --
    shard_path: str = ""
    """The SQLite file this node's ``QueryRequest`` / ``ShardQuery`` run against. Empty (the default):
    ``node_dir/shard.sqlite3``. ``{node_id}`` in the text is replaced by the node's id, so one setting can
    give every node its own file (``/data/shards/{node_id}.sqlite3``); a relative path is taken from the
    node directory. Queries only ever read it; load your data with any SQLite client."""

    demo_rows: int = 1000
    """Rows of the demo ``users(id, name, shard_key)`` table written when the shard file does not exist
    (user ``i`` of node ``n`` has ``shard_key = 1 + crc32("n/i") % demo_shard_keys``); 0 writes nothing, and
    a query then fails until a shard file is there. An existing file is never touched."""

    demo_shard_keys: int = 16
    """Shard keys (``1..demo_shard_keys``) the demo rows are spread over."""

    query_max_rows: int = 10_000
    """Rows a query reads before it stops; past it the answer says ``truncated`` and ``rows`` is this cap."""

    query_time_budget_s: float = 2.0
    """Seconds a query may run (SQLite progress handler); a longer one is interrupted and answered an error."""

    @classmethod
    def lan(cls) -> RoutingConfig:
        """Defaults for a data-centre LAN."""
        return cls()

    @classmethod
    def local(cls) -> RoutingConfig:
        """Fast timings for one host and tests: retries after 10 ms, deadline 2 s."""
        return cls(
            outbox_max_size=256,
            retry_initial_s=0.01,
            retry_max_s=0.2,
            default_deadline_s=2.0,
            dedup_max_entries=10_000,
            dedup_max_age_s=60.0,
        )

    def validate(self) -> RoutingConfig:
        """Raise ValueError naming the first bad field; return self for chaining."""
        at_least(self, 1, "outbox_max_size", "dedup_max_entries", "receive_log_size", "record_log_size",
                 "demo_shard_keys", "query_max_rows")
        at_least(self, 0, "demo_rows")
        positive(self, "retry_initial_s", "default_deadline_s", "dedup_max_age_s", "dedup_persist_interval_s",
                 "query_time_budget_s")
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be >= retry_initial_s")
        at_least(self, 1.0, "retry_multiplier")
        if not 0.0 <= self.retry_jitter < 1.0:
            raise ValueError("retry_jitter must be in [0, 1)")
        return self
