"""UDP broadcast discovery and beacons on a node (NETWORKING-027, 028).

Builds the ``BroadcastCore`` from the loaded ``[autodiscovery.broadcast]`` settings and the
cluster secret (the configured one, else the secret file, else ``broadcast_core.derive_secret``
of the cluster CA), runs it on ``BroadcastDiscovery``'s two sockets (``broadcast.py``) with a
``BeaconRunner`` over them when beacons are on, and hands every verified candidate to a
``PeerLearner``. A failure to start is recorded in the service's ``errors``, not raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rustyray.autodiscovery.beacon import BeaconConfig, BeaconCore
from rustyray.autodiscovery.broadcast_core import (
    Address,
    BroadcastConfig,
    BroadcastCore,
    CandidateSeen,
    NodeIdentity,
    derive_secret,
)
from rustyray.autodiscovery.errors import AutodiscoveryError
from rustyray.autodiscovery.peer_learning import PeerLearner

if TYPE_CHECKING:
    from rustyray.autodiscovery.beacon_runner import BeaconRunner
    from rustyray.autodiscovery.broadcast import BroadcastDiscovery
    from rustyray.transport.api import Host

log = logging.getLogger(__name__)

__all__ = ["BroadcastAdapter"]


class BroadcastAdapter:
    """``discovery`` and ``beacon`` are the running adapters (None until started, or if start failed)."""

    def __init__(self, node: Host, *, enabled: bool, settings: dict[str, Any], secret: str | None,
                 secret_file: str | None, beacon: BeaconConfig, errors: dict[str, str]) -> None:
        self.node = node
        self.enabled = enabled
        self.settings = settings
        """``BroadcastConfig`` keyword arguments from the TOML table (all but the cluster name and secret)."""
        self._secret_cfg = secret
        self._secret_file = secret_file
        self.beacon_config = beacon
        self.errors = errors
        self.discovery: BroadcastDiscovery | None = None
        self.beacon: BeaconRunner | None = None
        self.learner = PeerLearner(node.node_id)
        self.expired = 0
        """Candidates the beacon TTL dropped."""

    def _secret(self) -> bytes:
        if self._secret_cfg:
            return self._secret_cfg.encode()
        if self._secret_file:
            return Path(self._secret_file).read_bytes().strip()
        ca = self.node.config.certs_dir / "ca.pem"
        try:
            return derive_secret(ca.read_bytes())
        except OSError as exc:
            raise AutodiscoveryError(
                f"no broadcast secret: set [autodiscovery.broadcast] secret or secret_file, or run with TLS "
                f"so the cluster CA ({ca}) can derive it ({exc})") from exc

    async def start(self) -> None:
        from rustyray.autodiscovery.beacon_runner import BeaconRunner
        from rustyray.autodiscovery.broadcast import BroadcastDiscovery

        if not self.enabled:
            return
        node = self.node
        try:
            cfg = BroadcastConfig(cluster_name=node.config.cluster_name, secret=self._secret(), **self.settings)
            identity = NodeIdentity(node.node_id, node.tcp_address, node.quic_address or None)
            core = BroadcastCore(cfg, identity, random.SystemRandom())
            bd = BroadcastDiscovery(core, on_candidate=self._on_candidate)
            await bd.start()
        except (AutodiscoveryError, OSError) as exc:
            self.errors["broadcast"] = str(exc)
            log.warning("broadcast discovery did not start on %s: %s", node.node_id, exc)
            return
        self.discovery = bd
        if self.beacon_config.enabled:
            self.beacon = BeaconRunner(BeaconCore(self.beacon_config, core), bd, on_expired=self._on_expired)
            self.beacon.start()

    async def stop(self) -> None:
        if self.beacon is not None:
            self.beacon.stop()
        if self.discovery is not None:
            await self.discovery.close()

    def _on_candidate(self, seen: CandidateSeen) -> None:
        c = seen.candidate
        learn = self.learner.offer(c.node_id, c.tcp_addr, c.quic_addr, known=self.node.peers)
        if learn is not None:
            log.info("%s learned %s at %s via %s", self.node.node_id, learn.node_id, learn.tcp_address, c.via)
            self.node.learn_peer(learn.node_id, learn.tcp_address, learn.quic_address)

    def _on_expired(self, ids: list[str]) -> None:
        self.expired += len(ids)

    async def announce(self, destination: Address, wait_s: float) -> tuple[dict[str, object], int]:
        """One announce to ``destination``; after ``wait_s`` the core's result and the peers it taught us."""
        bd = self.discovery
        assert bd is not None, "broadcast discovery is not running"
        learned_before = self.learner.learned
        nonce, dgram = bd.core.announce(bd.clock(), destination)
        bd.send(dgram)
        await asyncio.sleep(wait_s)
        return bd.core.announce_result(nonce), self.learner.learned - learned_before
