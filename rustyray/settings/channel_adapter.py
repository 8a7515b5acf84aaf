"""The settings channel on one node: publish, receive, persist, and call the subscribers.

A subsystem subscribes to a key prefix with one ``apply(key, value)`` function that validates
the value and installs it (raising ``ValueError``/``DomainError`` to refuse it). ``publish`` applies
a change here first (so bad input fails before anything is sent), stores it under a new
version, persists it, and pushes it to every live member, reporting member by member who
applied it. A member that was away gets every entry when it connects again, so it converges
without an operator. Refused entries are not stored: a member never holds a value its own
validation rejects.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.protocol.messages import Message
from rustyray.settings.registry import Entry, SettingsRegistry

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext

log = logging.getLogger(__name__)

SETTINGS_FILE = "settings.json"
Apply = Callable[[str, Any], None]


class SettingsUpdate(Message):
    """One or more registry entries (``Entry.to_dict()``); receivers keep those that win."""

    entries: list[dict[str, Any]]


class SettingsAck(Message):
    node_id: str
    applied: bool
    error: str = ""


class SettingsChannel:
    """The node's end of the replicated registry (see the module docstring)."""

    def __init__(self, node: Host, *, sync_timeout_s: float = 2.0) -> None:
        self.node = node
        self.sync_timeout_s = sync_timeout_s
        self.registry = SettingsRegistry(node.node_id)
        self._subscribers: list[tuple[str, Apply]] = []
        self._path = node.config.node_dir / SETTINGS_FILE
        node.on(SettingsUpdate, self._on_update)

    # ------------------------------------------------------------------ subscribing
    def subscribe(self, prefix: str, apply: Apply) -> None:
        """Call ``apply`` for every entry under ``prefix``: those persisted here now, later ones as they win."""
        self._subscribers.append((prefix, apply))
        for entry in self.registry.entries(prefix):
            try:
                apply(entry.key, entry.value)
            except Exception as exc:  # a persisted value the current code refuses: keep the default
                log.error("%s: ignoring stored setting %s: %s", self.node.node_id, entry.key, exc)

    def _apply(self, entry: Entry) -> None:
        for prefix, apply in self._subscribers:
            if entry.key.startswith(prefix):
                apply(entry.key, entry.value)

    # ------------------------------------------------------------------ persistence
    def load(self) -> None:
        """Read persisted entries (before the subsystems subscribe)."""
        try:
            data = json.loads(self._path.read_text())
        except (OSError, ValueError):
            return
        self.registry.load(data if isinstance(data, list) else [])

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.registry.export()))
        os.replace(tmp, self._path)

    # ------------------------------------------------------------------ publishing
    def set_local(self, key: str, value: Any) -> Entry:
        """Apply and store a change on this node only (raises what the subscriber raises)."""
        entry = self.registry.propose(key, value)
        self._apply(entry)
        self.registry.store(entry)
        self._save()
        return entry

    async def publish(self, key: str, value: Any, *, peers: list[str] | None = None
                      ) -> tuple[Entry, dict[str, Message | Exception]]:
        """Apply here, then push to ``peers`` (default: every live member); each member's ack or error."""
        entry = self.set_local(key, value)
        replies = await self.node.request_members(SettingsUpdate(entries=[entry.to_dict()]),
                                                  timeout=self.sync_timeout_s, peers=peers)
        return entry, replies

    async def publish_report(self, key: str, value: Any, *, peers: list[str] | None = None
                             ) -> tuple[Entry, list[str], dict[str, str]]:
        """``publish``, summarised for an API answer: the entry, who applied it (this node first), who not and why."""
        entry, replies = await self.publish(key, value, peers=peers)
        applied, failed = [self.node.node_id], {}
        for peer, reply in replies.items():
            why = self.outcome(reply)
            if why is None:
                applied.append(peer)
            else:
                failed[peer] = why
        return entry, applied, failed

    def version(self, key: str) -> int:
        entry = self.registry.get(key)
        return entry.version if entry is not None else 0

    @staticmethod
    def outcome(reply: Message | Exception) -> str | None:
        """None when a member applied the entry, else why not."""
        if isinstance(reply, SettingsAck) and reply.applied:
            return None
        if isinstance(reply, Exception):
            return f"{type(reply).__name__}: {reply}"
        return getattr(reply, "error", "") or "unexpected reply"

    # ------------------------------------------------------------------ receiving
    def _on_update(self, ctx: RequestContext, msg: SettingsUpdate) -> SettingsAck:
        errors, changed = [], False
        for raw in msg.entries:
            try:
                entry = Entry.from_dict(raw)
            except (KeyError, TypeError, ValueError) as exc:
                errors.append(f"malformed entry: {exc}")
                continue
            if not self.registry.wins(entry):
                continue  # already have it (or something newer): nothing to do, not an error
            try:
                self._apply(entry)
            except Exception as exc:  # the subscriber's validation refused it: do not hold it here
                log.error("%s: refusing setting %s from %s: %r", self.node.node_id, entry.key, entry.origin, exc)
                errors.append(f"{entry.key}: {exc}")
                continue
            changed = self.registry.store(entry) or changed
        if changed:
            self._save()
        return SettingsAck(node_id=self.node.node_id, applied=not errors, error="; ".join(errors))

    def on_peer_event(self, event: str, peer_id: str) -> None:
        """A member that (re)connects gets every entry: it keeps those that win."""
        if event != "connected":
            return
        entries = self.registry.export()
        if entries:
            self.node.spawn(self._push(peer_id, SettingsUpdate(entries=entries)), name=f"settings sync {peer_id}")

    async def _push(self, peer_id: str, msg: SettingsUpdate) -> None:
        with contextlib.suppress(Exception):
            await self.node.request(peer_id, msg, timeout=self.sync_timeout_s)
