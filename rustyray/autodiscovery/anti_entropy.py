"""Anti-entropy for membership state with a Merkle tree (NETWORKING-030), sans-I/O.

Theory of operation
-------------------
Gossip alone can leave replicas divergent (a lost update, a partition that healed). Demers et
al., "Epidemic Algorithms for Replicated Database Maintenance" (PODC 1987) repair this with
periodic anti-entropy between pairs of nodes; Merkle trees (Merkle 1987; used this way by
Dynamo, SOSP 2007, and Cassandra) make the comparison cost grow with the *difference* rather
than with the state.

State: ``node_id -> (incarnation, status)``. Each id goes to the leaf bucket named by the first
``depth`` hex digits of SHA-256(node_id), so the tree has a fixed fan-out of 16 and 16**depth
leaves. A leaf's digest hashes its sorted entries; an inner node's digest hashes its 16
children; an empty subtree has the all-zero digest. Digests are truncated to
``digest_bytes`` (8 by default: 2**-64 collision odds per comparison, fine for a repair loop
that runs again anyway).

Protocol (initiator I, responder R; each arrow is one encoded ``Message``):

    I -> R  AERoot(root)                       R compares with its root
    R -> I  AERootResponse(match, children)    children of R's root when they differ
    I -> R  AEBranchRequest(prefixes)          only the prefixes whose digests differ ...
    R -> I  AEBranchResponse(children)         ... down to the leaf level
    I -> R  AELeavesRequest(buckets, entries)  I's entries of the differing leaves; R merges
    R -> I  AELeavesResponse(entries)          R's entries that beat I's (or I lacks); I merges
    I -> R  AERoot(root)                       verification; repeats until equal or max_rounds

Merge (a join-semilattice, so any order of exchanges converges): a Left entry beats any
non-Left one; otherwise the higher incarnation wins and, at equal incarnation,
Dead > Suspect > Alive (SWIM, Das et al. 2002 §4.2, with Left as the terminal state).

Bytes on the wire are therefore O(differences x (depth x 16 x digest_bytes + bucket size)),
independent of the number of entries, except that a leaf exchange carries its whole bucket.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

import msgspec

from rustyray.autodiscovery.errors import AEProtocolError, AutodiscoveryConfigError
from rustyray.protocol.messages import Message
from rustyray.records import record

__all__ = [
    "AEBranchRequest",
    "AEBranchResponse",
    "AEEntry",
    "AELeavesRequest",
    "AELeavesResponse",
    "AERoot",
    "AERootResponse",
    "AntiEntropyConfig",
    "AntiEntropySession",
    "EntryStatus",
    "MerkleTree",
    "SyncReport",
    "full_state_bytes",
    "precedence",
    "sync_in_memory",
]

FANOUT = 16
_HEX = "0123456789abcdef"


class EntryStatus(Enum):
    ALIVE = "Alive"
    SUSPECT = "Suspect"
    DEAD = "Dead"
    LEFT = "Left"


_RANK = {EntryStatus.ALIVE: 0, EntryStatus.SUSPECT: 1, EntryStatus.DEAD: 2, EntryStatus.LEFT: 3}


def precedence(incarnation: int, status: EntryStatus) -> tuple[bool, int, int]:
    """Total order of versions of one entry; the larger one wins a merge."""
    return (status is EntryStatus.LEFT, incarnation, _RANK[status])


@dataclass(frozen=True, kw_only=True)
class AntiEntropyConfig:
    """Merkle tree shape and session bounds."""

    depth: int = 3
    """Levels below the root (fan-out 16 each): 16**depth leaf buckets. 3 suits ~1k-50k members
    (a few entries per bucket); 2 suits a few hundred."""
    digest_bytes: int = 8
    """Bytes kept of each SHA-256 digest; more bytes cost more per branch exchanged."""
    max_rounds: int = 8
    """Root comparisons per session before giving up with ``sync_status="in_progress"`` (the state
    kept changing under the sync)."""

    def validate(self) -> None:
        if not 1 <= self.depth <= 4:
            raise AutodiscoveryConfigError("depth must be in 1..4")
        if not 4 <= self.digest_bytes <= 32:
            raise AutodiscoveryConfigError("digest_bytes must be in 4..32")
        if self.max_rounds < 1:
            raise AutodiscoveryConfigError("max_rounds must be >= 1")


# ---------------------------------------------------------------- wire


class AEEntry(msgspec.Struct, frozen=True, array_like=True):
    """One membership entry as exchanged (a compact array on the wire)."""

    node_id: str
    incarnation: int
    status: str


class AERoot(Message):
    session: int
    root: bytes


class AERootResponse(Message):
    session: int
    match: bool
    children: bytes = b""
    """The responder's 16 root-children digests, concatenated (empty when ``match``)."""


class AEBranchRequest(Message):
    session: int
    prefixes: list[str]


class AEBranchResponse(Message):
    session: int
    prefixes: list[str]
    children: list[bytes]
    """Per prefix, its 16 child digests concatenated."""


class AELeavesRequest(Message):
    session: int
    buckets: list[str]
    entries: list[AEEntry]


class AELeavesResponse(Message):
    session: int
    entries: list[AEEntry]
    """Responder entries that beat the initiator's (or that the initiator lacks)."""
    divergent: int
    """Entries that differed between the two sides in the exchanged buckets."""
    repaired: int
    """Entries the responder changed."""


AEMessage = AERoot | AERootResponse | AEBranchRequest | AEBranchResponse | AELeavesRequest | AELeavesResponse
_decoder = msgspec.msgpack.Decoder(AEMessage)
_encoder = msgspec.msgpack.Encoder()


# ---------------------------------------------------------------- tree


class MerkleTree:
    """Membership entries plus lazily cached digests of every tree node."""

    def __init__(self, config: AntiEntropyConfig | None = None) -> None:
        self.config = config or AntiEntropyConfig()
        self.config.validate()
        self._empty = bytes(self.config.digest_bytes)
        self._buckets: dict[str, dict[str, tuple[int, EntryStatus]]] = {}
        self._cache: dict[str, bytes] = {}

    def bucket_of(self, node_id: str) -> str:
        return hashlib.sha256(node_id.encode()).hexdigest()[: self.config.depth]

    def get(self, node_id: str) -> tuple[int, EntryStatus] | None:
        return self._buckets.get(self.bucket_of(node_id), {}).get(node_id)

    def set(self, node_id: str, incarnation: int, status: EntryStatus) -> None:
        """Store unconditionally (local authority, e.g. loading from SWIM)."""
        b = self.bucket_of(node_id)
        self._buckets.setdefault(b, {})[node_id] = (incarnation, status)
        for i in range(len(b) + 1):
            self._cache.pop(b[:i], None)

    def merge(self, node_id: str, incarnation: int, status: EntryStatus) -> bool:
        """Apply a remote version if it wins; returns True when the entry changed."""
        cur = self.get(node_id)
        if cur is not None and precedence(*cur) >= precedence(incarnation, status):
            return False
        self.set(node_id, incarnation, status)
        return True

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def items(self) -> Iterator[tuple[str, tuple[int, EntryStatus]]]:
        for b in sorted(self._buckets):
            yield from sorted(self._buckets[b].items())

    def entries(self, buckets: Iterable[str]) -> list[AEEntry]:
        out = []
        for b in buckets:
            for nid, (inc, st) in sorted(self._buckets.get(b, {}).items()):
                out.append(AEEntry(nid, inc, st.value))
        return out

    def all_entries(self) -> list[AEEntry]:
        return [AEEntry(nid, inc, st.value) for nid, (inc, st) in self.items()]

    def digest(self, prefix: str = "") -> bytes:
        """Digest of the subtree at ``prefix`` (hex digits; "" is the root)."""
        assert len(prefix) <= self.config.depth
        cached = self._cache.get(prefix)
        if cached is not None:
            return cached
        if len(prefix) == self.config.depth:
            bucket = self._buckets.get(prefix)
            if not bucket:
                d = self._empty
            else:
                h = hashlib.sha256()
                for nid, (inc, st) in sorted(bucket.items()):
                    h.update(f"{nid}\x00{inc}\x00{st.value}\n".encode())
                d = h.digest()[: self.config.digest_bytes]
        else:
            kids = self.children(prefix)
            d = (
                self._empty
                if kids == self._empty * FANOUT
                else hashlib.sha256(kids).digest()[: self.config.digest_bytes]
            )
        self._cache[prefix] = d
        return d

    def children(self, prefix: str) -> bytes:
        """The 16 child digests of an inner node, concatenated."""
        assert len(prefix) < self.config.depth
        return b"".join(self.digest(prefix + c) for c in _HEX)

    @property
    def root(self) -> bytes:
        return self.digest("")


# ---------------------------------------------------------------- session


@dataclass(frozen=True)
class SyncReport:
    merkle_root_match: bool
    """Whether the roots matched at the first comparison (nothing to repair)."""
    divergent_entries: int
    repaired: int
    """Entries changed on either side."""
    bytes_exchanged: int
    """Encoded message bytes in both directions."""
    rounds: int
    """Request/response round trips."""
    sync_status: str
    """"completed" (roots verified equal) or "in_progress"."""

    def as_dict(self) -> dict[str, object]:
        return {"sync_initiated": True, **record(self)}


@dataclass
class _Counters:
    bytes_sent: int = 0
    bytes_received: int = 0
    rounds: int = 0
    divergent: int = 0
    repaired: int = 0
    root_checks: int = 0
    first_match: bool | None = None
    done: bool = False
    verified: bool = False
    applied: list[AEEntry] = field(default_factory=list)


class AntiEntropySession:
    """One side of a sync. Bytes in, bytes out: ``start()`` (initiator) then ``receive(data)``
    until it returns None. ``applied`` lists the entries this side changed, for membership."""

    def __init__(
        self, tree: MerkleTree, *, initiator: bool, session_id: int | None = None, rng: random.Random | None = None
    ) -> None:
        self.tree = tree
        self.initiator = initiator
        if session_id is None:
            session_id = (rng or random.Random(0)).getrandbits(32)
        self.session_id = session_id
        self._c = _Counters()
        self._expect: type[Message] | None = None
        self._level = 0

    @property
    def applied(self) -> list[AEEntry]:
        return self._c.applied

    @property
    def done(self) -> bool:
        return self._c.done

    def _send(self, msg: Message) -> bytes:
        data = _encoder.encode(msg)
        self._c.bytes_sent += len(data)
        return data

    def start(self) -> bytes:
        assert self.initiator, "only the initiator starts"
        assert self._expect is None, "already started"
        return self._send_root()

    def _send_root(self) -> bytes:
        self._c.rounds += 1
        self._c.root_checks += 1
        self._expect = AERootResponse
        return self._send(AERoot(session=self.session_id, root=self.tree.root))

    def receive(self, data: bytes) -> bytes | None:
        """Handle one message from the peer; returns the reply, or None when the exchange is over."""
        self._c.bytes_received += len(data)
        try:
            msg = _decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise AEProtocolError(f"undecodable anti-entropy message: {exc}") from exc
        if msg.session != self.session_id:
            if self.initiator or not isinstance(msg, AERoot):
                raise AEProtocolError("message for another session")
            self.session_id = msg.session  # a responder adopts the initiator's session id
        if not self.initiator:
            return self._respond(msg)
        if self._c.done or not isinstance(msg, self._expect or ()):
            raise AEProtocolError(f"unexpected {type(msg).__name__}")
        return self._drive(msg)

    # -- responder: answers from the current tree, keeps no per-session state

    def _respond(self, msg: Message) -> bytes:
        t = self.tree
        sid = self.session_id
        if isinstance(msg, AERoot):
            match = msg.root == t.root
            return self._send(AERootResponse(session=sid, match=match, children=b"" if match else t.children("")))
        if isinstance(msg, AEBranchRequest):
            self._check_prefixes(msg.prefixes, leaf=False)
            return self._send(
                AEBranchResponse(session=sid, prefixes=msg.prefixes, children=[t.children(p) for p in msg.prefixes])
            )
        if isinstance(msg, AELeavesRequest):
            self._check_prefixes(msg.buckets, leaf=True)
            theirs: dict[str, tuple[int, EntryStatus]] = {}
            for e in msg.entries:
                theirs[e.node_id] = (e.incarnation, _status(e.status))
            mine = {e.node_id: (e.incarnation, _status(e.status)) for e in t.entries(msg.buckets)}
            divergent = sum(1 for k in theirs.keys() | mine.keys() if theirs.get(k) != mine.get(k))
            back = [
                AEEntry(k, v[0], v[1].value)
                for k, v in sorted(mine.items())
                if k not in theirs or precedence(*v) > precedence(*theirs[k])
            ]
            repaired = 0
            for k, (inc, st) in theirs.items():
                if t.merge(k, inc, st):
                    repaired += 1
                    self._c.applied.append(AEEntry(k, inc, st.value))
            self._c.repaired += repaired
            return self._send(AELeavesResponse(session=sid, entries=back, divergent=divergent, repaired=repaired))
        raise AEProtocolError(f"a responder does not accept {type(msg).__name__}")

    def _check_prefixes(self, prefixes: list[str], *, leaf: bool) -> None:
        depth = self.tree.config.depth
        for p in prefixes:
            if (len(p) == depth) != leaf or len(p) > depth or any(ch not in _HEX for ch in p):
                raise AEProtocolError(f"bad prefix {p!r}")

    # -- initiator

    def _diff(self, prefixes: list[str], children: list[bytes]) -> list[str]:
        n = self.tree.config.digest_bytes
        out = []
        for p, theirs in zip(prefixes, children, strict=True):
            if len(theirs) != n * FANOUT:
                raise AEProtocolError("wrong children length")
            mine = self.tree.children(p)
            out.extend(p + _HEX[i] for i in range(FANOUT) if mine[i * n : (i + 1) * n] != theirs[i * n : (i + 1) * n])
        return out

    def _descend(self, differing: list[str]) -> bytes | None:
        sid = self.session_id
        if not differing:  # roots differed only by a race: re-verify
            return self._verify()
        self._c.rounds += 1
        if len(differing[0]) == self.tree.config.depth:
            self._expect = AELeavesResponse
            return self._send(AELeavesRequest(session=sid, buckets=differing, entries=self.tree.entries(differing)))
        self._expect = AEBranchResponse
        return self._send(AEBranchRequest(session=sid, prefixes=differing))

    def _verify(self) -> bytes | None:
        if self._c.root_checks >= self.tree.config.max_rounds:
            self._c.done = True
            self._expect = None
            return None
        return self._send_root()

    def _drive(self, msg: Message) -> bytes | None:
        if isinstance(msg, AERootResponse):
            if self._c.first_match is None:
                self._c.first_match = msg.match
            if msg.match:
                self._c.done = True
                self._expect = None
                self._c.verified = True
                return None
            return self._descend(self._diff([""], [msg.children]))
        if isinstance(msg, AEBranchResponse):
            return self._descend(self._diff(msg.prefixes, msg.children))
        assert isinstance(msg, AELeavesResponse)
        self._c.divergent += msg.divergent
        self._c.repaired += msg.repaired
        for e in msg.entries:
            if self.tree.merge(e.node_id, e.incarnation, _status(e.status)):
                self._c.repaired += 1
                self._c.applied.append(e)
        return self._verify()

    def report(self) -> SyncReport:
        c = self._c
        return SyncReport(
            merkle_root_match=bool(c.first_match),
            divergent_entries=c.divergent,
            repaired=c.repaired,
            bytes_exchanged=c.bytes_sent + c.bytes_received,
            rounds=c.rounds,
            sync_status="completed" if c.verified else "in_progress",
        )


def _status(s: str) -> EntryStatus:
    try:
        return EntryStatus(s)
    except ValueError as exc:
        raise AEProtocolError(f"unknown status {s!r}") from exc


def sync_in_memory(initiator: AntiEntropySession, responder: AntiEntropySession) -> SyncReport:
    """Run a whole exchange between two local sessions (tests, simulator)."""
    data: bytes | None = initiator.start()
    while data is not None:
        data = initiator.receive(responder.receive(data))
    return initiator.report()


def full_state_bytes(tree: MerkleTree) -> int:
    """Size of shipping the whole state in one message: the baseline anti-entropy is measured against."""
    msg = AELeavesResponse(session=0, entries=tree.all_entries(), divergent=0, repaired=0)
    return len(_encoder.encode(msg))
