"""How security state reaches the other members: rule sets on the settings channel, key rings merged.

Rule sets (ACL, firewall) are cluster-wide settings like the pool's and the balancer's: each is
one register of the node's settings channel (``rustyray.settings``, keys ``security.acl`` and
``security.firewall``), replicated whole, last writer wins on ``(version, origin)``, persisted in
the node's ``settings.json`` and resent to a member that reconnects. A change is applied here
first, then pushed to every live member this node knows.

The key ring is not a setting but key material: a grow-only set of keys merged under the
cluster key store's file lock (two nodes sharing a state dir must not lose a key), so it keeps
its own message, ``SecurityKeyRingSync``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rustyray.protocol.messages import Message
from rustyray.security.encryption import KeyRing
from rustyray.security.keystore import ClusterKeyStore, merge_rings
from rustyray.security.rulesets import KINDS

if TYPE_CHECKING:
    from rustyray.settings.channel_adapter import SettingsChannel
    from rustyray.transport.api import Host, RequestContext

__all__ = ["KeyRingReplication", "RuleSetReplication", "SecurityKeyRingSync", "SecuritySyncAck"]

log = logging.getLogger(__name__)

Rules = list[dict[str, Any]]


class SecurityKeyRingSync(Message):
    """The cluster key ring after a rotation; receivers merge it (keys are only ever added)."""

    ring: dict[str, Any]


class SecuritySyncAck(Message):
    applied: bool
    version: int = 0


def _key(kind: str) -> str:
    return f"security.{kind}"


class RuleSetReplication:
    """The ACL and firewall rule sets as two registers of the settings channel."""

    def __init__(self, node: Host, settings: SettingsChannel, *, export: dict[str, Callable[[], Rules]]) -> None:
        assert set(export) == set(KINDS)
        self.node = node
        self.settings = settings
        self._export = export

    def changed(self, kind: str) -> bool:
        """Whether the cluster ever changed this set (else the configured defaults hold)."""
        return self.settings.registry.get(_key(kind)) is not None

    def subscribe(self, apply: dict[str, Callable[[Rules], None]]) -> None:
        """Install the held sets now and every set that wins later (``apply`` merges a whole set)."""
        for kind in KINDS:
            self.settings.subscribe(_key(kind), lambda _key, rules, fn=apply[kind]: fn(list(rules)))

    def version(self, kind: str) -> int:
        return self.settings.version(_key(kind))

    async def replicate(self, kind: str) -> list[str]:
        """Commit a local change to every live member; the members that took it, this node included."""
        peers = [m for m in self.node.live_members() if m in self.node.peers and m != self.node.node_id]
        _, applied, failed = await self.settings.publish_report(_key(kind), self._export[kind](), peers=peers)
        for peer, why in failed.items():  # a member that is down converges when it reconnects
            log.warning("%s: %s sync to %s failed: %s", self.node.node_id, kind, peer, why)
        return sorted(applied)


class KeyRingReplication:
    """Pushes a rotated key ring to the live members and merges theirs here."""

    def __init__(self, node: Host, *, sync_timeout_s: float, key_ring: Callable[[], KeyRing],
                 keys: ClusterKeyStore) -> None:
        self.node = node
        self.sync_timeout_s = sync_timeout_s
        self._key_ring = key_ring  # the ring incoming keys are merged into
        self._keys = keys

    def install(self) -> None:
        """Start receiving pushes from the other members."""
        self.node.on(SecurityKeyRingSync, self._on_key_ring_sync)

    async def push_key_ring(self, ring: KeyRing) -> list[str]:
        """Push a rotated ring to every live member; the members that merged it (this node included)."""
        peers = [m for m in self.node.live_members() if m in self.node.peers]
        replies = await self.node.request_members(SecurityKeyRingSync(ring=ring.to_dict()),
                                                  timeout=self.sync_timeout_s, peers=peers)
        for peer, reply in replies.items():
            if isinstance(reply, Exception):
                log.warning("%s: key ring sync to %s failed: %s", self.node.node_id, peer, reply)
        return sorted([self.node.node_id] + [p for p, r in replies.items() if not isinstance(r, Exception)])

    def _on_key_ring_sync(self, ctx: RequestContext, msg: SecurityKeyRingSync) -> SecuritySyncAck:
        ring = self._key_ring()
        changed = merge_rings(ring, KeyRing.from_dict(msg.ring))
        self._keys.save_merged(ring)
        return SecuritySyncAck(applied=changed, version=ring.primary.key_id)
