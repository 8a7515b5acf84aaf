"""Replication of the security rule sets and the cluster key ring between nodes: the one swappable unit.

Everything that moves security settings between members is here, and nothing else is: the wire messages
(``SecurityRulesSync``, ``SecurityKeyRingSync``, ``SecuritySyncAck``), the push of a local change to every
live member (acknowledged), the full push to a peer that (re)connects, the receiving handlers, and the
rule-set files in the node dir. The service hands it, per rule-set kind, how to export the live set and
how to merge an incoming one, and the key ring to merge into; the versioning decisions are ``rulesets``'s.
A cluster-wide settings channel can replace this module without touching the service's admission logic.

Rule sets are replicated whole, last writer wins on ``(version, origin)``: a change is applied locally,
persisted and pushed to every live member; a peer that (re)connects is sent the current sets, so a node
that missed a change converges. Key rings are merged (keys are only ever added).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rustyray.protocol.messages import Message
from rustyray.security.encryption import KeyRing
from rustyray.security.errors import InvalidRuleError
from rustyray.security.keystore import ClusterKeyStore, merge_rings
from rustyray.security.rulesets import KINDS, RuleSetVersion

if TYPE_CHECKING:
    from rustyray.transport.api import Host, RequestContext

__all__ = ["SecurityKeyRingSync", "SecurityReplication", "SecurityRulesSync", "SecuritySyncAck"]

log = logging.getLogger(__name__)

Rules = list[dict[str, Any]]


class SecurityRulesSync(Message):
    """A whole replicated rule set ("acl" or "firewall"); receivers keep the highest (version, origin)."""

    kind: str
    version: int
    origin: str
    rules: list[dict[str, Any]]


class SecurityKeyRingSync(Message):
    """The cluster key ring after a rotation; receivers merge it (keys are only ever added)."""

    ring: dict[str, Any]


class SecuritySyncAck(Message):
    applied: bool
    version: int = 0


class _RuleSetFile:
    """Version bookkeeping (``RuleSetVersion``) and persistence of one replicated rule set."""

    def __init__(self, kind: str, path: Path) -> None:
        self.path = path
        self.state = RuleSetVersion(kind)

    def load(self) -> Rules | None:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return self.state.restore(data)

    def save(self, rules: Rules) -> None:
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        tmp.write_text(json.dumps(self.state.record(rules)))
        os.replace(tmp, self.path)


class SecurityReplication:
    """Keeps this node's rule sets and key ring in step with the live members."""

    def __init__(self, node: Host, *, sync_timeout_s: float, export: dict[str, Callable[[], Rules]],
                 apply: dict[str, Callable[[Rules], None]], key_ring: Callable[[], KeyRing],
                 keys: ClusterKeyStore) -> None:
        assert set(export) == set(apply) == set(KINDS)
        self.node = node
        self.sync_timeout_s = sync_timeout_s
        self._export = export  # kind -> the live set, to_dicts form
        self._apply = apply  # kind -> merge a whole incoming set into the live core (raises on a bad rule)
        self._key_ring = key_ring  # the ring incoming keys are merged into
        self._keys = keys
        node_dir = node.config.node_dir
        self._sets = {"acl": _RuleSetFile("acl", node_dir / "security_acl.json"),
                      "firewall": _RuleSetFile("firewall", node_dir / "security_firewall.json")}

    def load(self, kind: str) -> Rules | None:
        """The persisted set of ``kind`` (and its version), None when there is none yet."""
        return self._sets[kind].load()

    def version(self, kind: str) -> int:
        return self._sets[kind].state.version

    def install(self) -> None:
        """Start receiving pushes from the other members."""
        self.node.on(SecurityRulesSync, self._on_rules_sync)
        self.node.on(SecurityKeyRingSync, self._on_key_ring_sync)

    async def replicate(self, kind: str) -> list[str]:
        """Commit a local change: bump the version, persist, push to every live member."""
        rs, rules = self._sets[kind], self._export[kind]()
        rs.state.commit(self.node.node_id)
        rs.save(rules)
        msg = SecurityRulesSync(kind=kind, version=rs.state.version, origin=rs.state.origin, rules=rules)
        return await self._broadcast(msg)

    async def push_key_ring(self, ring: KeyRing) -> list[str]:
        """Push a rotated ring to every live member; the members that merged it (this node included)."""
        return await self._broadcast(SecurityKeyRingSync(ring=ring.to_dict()))

    async def _broadcast(self, msg: Message) -> list[str]:
        peers = [m for m in self.node.live_members() if m in self.node.peers]
        replies = await self.node.request_members(msg, timeout=self.sync_timeout_s, peers=peers)
        for peer, reply in replies.items():
            if isinstance(reply, Exception):  # a member that is down converges when it reconnects
                log.warning("%s: security sync to %s failed: %s", self.node.node_id, peer, reply)
        return sorted([self.node.node_id] + [p for p, r in replies.items() if not isinstance(r, Exception)])

    def _on_rules_sync(self, ctx: RequestContext, msg: SecurityRulesSync) -> SecuritySyncAck:
        if msg.kind not in KINDS:
            return SecuritySyncAck(applied=False)
        rs = self._sets[msg.kind]
        if not rs.state.newer(msg.version, msg.origin):
            return SecuritySyncAck(applied=False, version=rs.state.version)
        try:
            self._apply[msg.kind](msg.rules)
        except (InvalidRuleError, KeyError, ValueError) as exc:
            log.error("%s: rejecting %s sync from %s: %s", self.node.node_id, msg.kind, msg.origin, exc)
            return SecuritySyncAck(applied=False, version=rs.state.version)
        rs.state.adopt(msg.version, msg.origin)
        rs.save(self._export[msg.kind]())
        return SecuritySyncAck(applied=True, version=rs.state.version)

    def on_peer_event(self, event: str, peer_id: str) -> None:
        if event != "connected":
            return
        for kind in KINDS:
            rs, rules = self._sets[kind], self._export[kind]()
            if rs.state.version > 0:
                msg = SecurityRulesSync(kind=kind, version=rs.state.version, origin=rs.state.origin, rules=rules)
                self.node.spawn(self._push(peer_id, msg), name=f"security sync {peer_id}")

    async def _push(self, peer_id: str, msg: Message) -> None:
        with contextlib.suppress(Exception):
            await self.node.request(peer_id, msg, timeout=self.sync_timeout_s)

    def _on_key_ring_sync(self, ctx: RequestContext, msg: SecurityKeyRingSync) -> SecuritySyncAck:
        ring = self._key_ring()
        changed = merge_rings(ring, KeyRing.from_dict(msg.ring))
        self._keys.save_merged(ring)
        return SecuritySyncAck(applied=changed, version=ring.primary.key_id)
