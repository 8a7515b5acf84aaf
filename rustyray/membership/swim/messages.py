"""SWIM wire messages (msgspec Structs tagged by class name, see ``rustyray.protocol.messages``).

Addressing is by node id: ``from_id`` of a received message is supplied by the
transport adapter, so messages carry no source field. Every probe message can
piggyback membership updates (``updates``), as in SWIM's infection-style
dissemination; ``SwimGossip`` carries updates alone and ``SwimPushPull`` is the
state exchange: full state to join, digest first for anti-entropy.
"""

from __future__ import annotations

import msgspec

from rustyray.protocol.messages import Message

__all__ = [
    "SwimAck",
    "SwimAlive",
    "SwimDead",
    "SwimGossip",
    "SwimLeft",
    "SwimMemberState",
    "SwimNack",
    "SwimPing",
    "SwimPingReq",
    "SwimPushPull",
    "SwimSuspect",
    "SwimUpdate",
]


# -- membership updates (piggybacked) -------------------------------------------------------------


class SwimAlive(Message):
    """``node_id`` is alive at ``incarnation``; carries its addresses and metadata."""

    node_id: str
    incarnation: int
    tcp_address: str = ""
    quic_address: str = ""
    meta: dict[str, str] = msgspec.field(default_factory=dict)


class SwimSuspect(Message):
    """``from_id`` suspects ``node_id`` at ``incarnation`` (failed direct and indirect probes)."""

    node_id: str
    incarnation: int
    from_id: str


class SwimDead(Message):
    """``from_id`` declares ``node_id`` dead at ``incarnation`` (its suspicion timed out)."""

    node_id: str
    incarnation: int
    from_id: str


class SwimLeft(Message):
    """``node_id`` left the cluster gracefully at ``incarnation``."""

    node_id: str
    incarnation: int


SwimUpdate = SwimAlive | SwimSuspect | SwimDead | SwimLeft


# -- failure detection ----------------------------------------------------------------------------


class SwimPing(Message):
    """Direct probe. ``target`` is the node id the sender means, so a reused address is detected."""

    seq: int
    target: str
    updates: tuple[SwimUpdate, ...] = ()


class SwimAck(Message):
    """Answer to ``SwimPing`` (or relayed answer to ``SwimPingReq``) with the probe's ``seq``."""

    seq: int
    updates: tuple[SwimUpdate, ...] = ()


class SwimPingReq(Message):
    """Ask the receiver to probe ``target`` and relay the ack; ``nack`` asks for a ``SwimNack``
    if the target stays silent (Lifeguard)."""

    seq: int
    target: str
    nack: bool = True
    updates: tuple[SwimUpdate, ...] = ()


class SwimNack(Message):
    """Lifeguard: the relay got no ack from the target in time (proves the relay path works)."""

    seq: int
    updates: tuple[SwimUpdate, ...] = ()


class SwimGossip(Message):
    """Updates pushed to random members each gossip interval."""

    updates: tuple[SwimUpdate, ...] = ()


# -- state sync -----------------------------------------------------------------------------------


class SwimMemberState(msgspec.Struct, frozen=True, kw_only=True):
    """One member's full state inside a push-pull (``state`` is a ``MemberState`` value)."""

    node_id: str
    incarnation: int
    state: str
    tcp_address: str = ""
    quic_address: str = ""
    meta: dict[str, str] = msgspec.field(default_factory=dict)


class SwimPushPull(Message):
    """Membership of the sender; ``join`` marks a join request, ``reply`` the answer (a reply is
    never answered, which ends the exchange).

    Anti-entropy by digest (``SwimConfig.digest_bucket_size``), four shapes of this one message:

    1. ``digest``: 8 bytes (little-endian uint64) per bucket, ``len(digest) // 8`` buckets, a power
       of two; member ``m`` is in bucket ``crc32(m) % buckets``; a bucket's hash is the XOR of the
       64-bit hashes of (id, incarnation, state) of its Alive/Suspect members. No states.
    2. answer to a digest, only when some bucket differs: ``request`` = those buckets, with
       ``num_buckets``. No states.
    3. the asker's ``states`` of the requested ``buckets`` (of ``num_buckets``), a partial push;
    4. the reply (``reply=True``): the receiver's states of those buckets after merging 3.

    ``num_buckets == 0`` (and no digest): ``states`` is the full membership.
    """

    states: tuple[SwimMemberState, ...] = ()
    join: bool = False
    reply: bool = False
    digest: bytes = b""
    num_buckets: int = 0
    buckets: tuple[int, ...] = ()
    request: tuple[int, ...] = ()
