"""Zero-config peer discovery (NETWORKING-026..030).

Sans-I/O cores (no sockets, no clock reads; ``now`` passed in):

* ``mdns_core``      - DNS-SD TXT format and discovered-peer table for mDNS.
* ``broadcast_core`` - HMAC-signed UDP announce/reply/beacon packets and the candidate table.
* ``beacon``         - periodic beacons and TTL expiry of silent candidates.
* ``peer_learning``  - which discovered nodes (mDNS, broadcast) become candidate peers.
* ``serf``           - Serf-compatible user events, queries and member tags (Lamport clocks).
* ``serf_node``      - Serf on a node: gossip fan-out, peer events, query answers, API views.
* ``anti_entropy``   - Merkle-tree anti-entropy for membership state.
* ``anti_entropy_node`` - anti-entropy on a node: step messages, responder table, rounds, stats.
* ``api``            - ``AutodiscoveryApi``, the management operations (validation, responses).

Asyncio adapters (import them explicitly; they pull in sockets / zeroconf):

* ``mdns.MdnsDiscovery``            - python-zeroconf ``AsyncZeroconf`` registration + browsing.
* ``broadcast.BroadcastDiscovery``  - the two datagram sockets of broadcast discovery.
* ``beacon_runner.BeaconRunner``    - beacons over a ``BroadcastDiscovery``.
* ``mdns_adapter``, ``broadcast_adapter``, ``serf_adapter``, ``anti_entropy_adapter`` - each
  protocol wired to the node (its peer table, frames and clock); ``service`` composes them.

Errors: ``errors.AutodiscoveryError`` and its subclasses.
"""

from rustyray.autodiscovery.anti_entropy import (
    AntiEntropyConfig,
    AntiEntropySession,
    EntryStatus,
    MerkleTree,
    SyncReport,
    sync_in_memory,
)
from rustyray.autodiscovery.beacon import BeaconConfig, BeaconCore
from rustyray.autodiscovery.broadcast_core import BroadcastConfig, BroadcastCore, NodeIdentity
from rustyray.autodiscovery.errors import AutodiscoveryError
from rustyray.autodiscovery.mdns_core import MdnsConfig
from rustyray.autodiscovery.serf import QueryState, SerfConfig, SerfCore

__all__ = [
    "AntiEntropyConfig",
    "AntiEntropySession",
    "AutodiscoveryError",
    "BeaconConfig",
    "BeaconCore",
    "BroadcastConfig",
    "BroadcastCore",
    "EntryStatus",
    "MdnsConfig",
    "MerkleTree",
    "NodeIdentity",
    "QueryState",
    "SerfConfig",
    "SerfCore",
    "SyncReport",
    "sync_in_memory",
]
