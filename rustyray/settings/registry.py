"""The versioned settings registry: the one replicated-settings channel of a cluster.

Why a versioned registry and not the Raft log. Pool eviction, retry policy, rate limits and
the security rule sets are operator settings that must stay changeable when the cluster is
degraded: an operator rate-limits a misbehaving node or blocks an address *during* an incident,
when Raft may have no quorum on the operator's side. So each setting is a register with a
version: a local change takes ``max(version seen) + 1`` for its key (Lamport style), and every
member keeps, per key, the entry with the highest ``(version, origin)`` (then value). The order is total and
the same everywhere, so members that saw the same entries agree, whatever order they saw them
in; pushes on change and a full exchange when two members connect make them see the same
entries. (Raft keeps what needs a quorum: the membership configuration.)

This module is the sans-I/O core: it holds entries, decides which one wins, and exports and
imports its state as plain data. The adapter (``channel_adapter``) sends, receives, persists
and calls the subscribers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rustyray.records import record


@dataclass(frozen=True, slots=True)
class Entry:
    """One setting's value, with the version and node that wrote it."""

    key: str
    value: Any
    version: int
    origin: str

    @property
    def rank(self) -> tuple[int, str, str]:
        """The total order: version, then origin, then the value's canonical JSON (two entries with one
        version and origin only exist when a node lost its state; they still order the same everywhere)."""
        return (self.version, self.origin, json.dumps(self.value, sort_keys=True, default=str))

    def to_dict(self) -> dict[str, Any]:
        return record(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(str(data["key"]), data["value"], int(data["version"]), str(data["origin"]))


class SettingsRegistry:
    """Per key, the winning entry (highest ``(version, origin)``)."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self._entries: dict[str, Entry] = {}

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def entries(self, prefix: str = "") -> list[Entry]:
        return [e for k, e in sorted(self._entries.items()) if k.startswith(prefix)]

    def propose(self, key: str, value: Any) -> Entry:
        """The entry a local change would write (not yet stored: the subscriber validates first)."""
        cur = self._entries.get(key)
        return Entry(key, value, (cur.version if cur else 0) + 1, self.node_id)

    def wins(self, entry: Entry) -> bool:
        """Whether ``entry`` beats what this registry holds for its key."""
        cur = self._entries.get(entry.key)
        return cur is None or entry.rank > cur.rank

    def store(self, entry: Entry) -> bool:
        """Keep ``entry`` if it wins; True when it replaced what was held."""
        if not self.wins(entry):
            return False
        self._entries[entry.key] = entry
        return True

    def export(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.entries()]

    def load(self, data: list[dict[str, Any]]) -> list[Entry]:
        """Import persisted entries; returns those stored (malformed ones are skipped)."""
        out = []
        for raw in data:
            try:
                entry = Entry.from_dict(raw)
            except (KeyError, TypeError, ValueError):
                continue
            if self.store(entry):
                out.append(entry)
        return out
