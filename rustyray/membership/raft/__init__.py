"""Raft consensus for the cluster configuration (sans-I/O core + file storage).

Drive a ``RaftNode`` like etcd-io/raft's RawNode::

    node = RaftNode.bootstrap(RaftConfig(id="node1"), ["node1", "node2", "node3"], random.Random())
    storage = FileStorage(path)
    # every tick_interval: node.tick(); on a frame: node.step(msg)
    while node.has_ready():
        rd = node.ready()
        storage.save(rd)                # 1. persist entries, then hard state
        for m in rd.messages: send(m)   # 2. send
        for e in rd.committed_entries: apply(e)   # 3. apply
        node.advance(rd)                # 4. advance
"""

from rustyray.membership.raft.config import RaftConfig
from rustyray.membership.raft.core import RaftNode
from rustyray.membership.raft.errors import (
    ConfChangeRejected,
    NotLeader,
    ProposalDropped,
    RaftError,
    RaftUsageError,
    StorageCorrupt,
    TransferRejected,
)
from rustyray.membership.raft.messages import (
    EntryKind,
    RaftAppendEntries,
    RaftAppendResponse,
    RaftConfChange,
    RaftEntry,
    RaftHeartbeat,
    RaftHeartbeatResponse,
    RaftMessage,
    RaftTimeoutNow,
    RaftVoteRequest,
    RaftVoteResponse,
    decode_conf_change,
    encode_conf_change,
)
from rustyray.membership.raft.state import HardState, RaftStatus, Ready, Role, SoftState, StorageState
from rustyray.membership.raft.storage import FileStorage, MemoryStorage, Storage

__all__ = [
    "ConfChangeRejected",
    "EntryKind",
    "FileStorage",
    "HardState",
    "MemoryStorage",
    "NotLeader",
    "ProposalDropped",
    "RaftAppendEntries",
    "RaftAppendResponse",
    "RaftConfChange",
    "RaftConfig",
    "RaftEntry",
    "RaftError",
    "RaftHeartbeat",
    "RaftHeartbeatResponse",
    "RaftMessage",
    "RaftNode",
    "RaftStatus",
    "RaftTimeoutNow",
    "RaftUsageError",
    "RaftVoteRequest",
    "RaftVoteResponse",
    "Ready",
    "Role",
    "SoftState",
    "Storage",
    "StorageCorrupt",
    "StorageState",
    "TransferRejected",
    "decode_conf_change",
    "encode_conf_change",
]
