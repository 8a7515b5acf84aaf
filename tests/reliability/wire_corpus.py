"""Hostile inputs for the node wire protocol, shared by tests/reliability and bench/fuzz_wire.py.

Two generators of the same input families, so that the CI test and the long run exercise the same
things:

* ``hypothesis`` strategies (``fuzz_frame()``, ``session()``) for the bounded CI run, where
  shrinking turns a failure into a minimal byte string;
* ``Mutator`` (plain ``random.Random``) for the long run, which needs hundreds of thousands of inputs
  per second that hypothesis cannot produce.

Families (``KINDS``): random bytes; a valid frame truncated anywhere; an oversize length field; a
wrong checksum (CRC field or a body byte flipped); wrong flag bits (bits 8-15, compression code 3, a
compression code over an uncompressed body, ENCRYPTED without a key ring); a wrong payload type (not
msgpack, not a map, an unknown ``type`` tag, a known tag with wrong-typed or missing fields, deep
nesting); valid frames (Echo requests, one-way messages); and frames valid on their own but wrong for
the connection's state (a second Hello, a HelloAck, responses to requests never made).

``predict(stage, data)`` is the oracle: from the sans-I/O decoder and the handshake rules it says
whether a node must close the connection ("closed") or keep it ("open") after receiving ``data``.
"""

from __future__ import annotations

import itertools
import random
import struct
import zlib
from dataclasses import dataclass

import msgspec
from hypothesis import strategies as st

from rustyray.protocol.compression import Compression
from rustyray.protocol.control import Echo, EchoReply, ErrorReply, Heartbeat, Oneway
from rustyray.protocol.errors import ProtocolError
from rustyray.protocol.frame import HEADER, MAX_FRAME_SIZE, Flags, FrameDecoder, encode_frame
from rustyray.protocol.handshake import Hello, HelloAck
from rustyray.protocol.messages import Message

KINDS = ("random", "truncated", "oversize", "bad_checksum", "bad_flags", "bad_type", "valid", "context")
FUZZ_ID = "fuzzer"
"""Node id of the fuzzing client: it holds a cluster certificate with this CN, so its hello is accepted."""
CLUSTER = "rustyray"  # NodeConfig.cluster_name default: the hello of another cluster is refused
_enc = msgspec.msgpack.Encoder()
_U64 = 2**64 - 1


def frame_of(payload: bytes, msg_id: int = 1, flags: int = 0) -> bytes:
    """A frame with a correct length and checksum around arbitrary payload bytes and flags."""
    head = HEADER.pack(len(payload) + 4, flags & 0xFFFF, msg_id & _U64)
    return head + payload + struct.pack("!I", zlib.crc32(payload, zlib.crc32(head[4:])))


def hello(node_id: str = FUZZ_ID, **kw: object) -> Hello:
    return Hello(node_id=node_id, versions=[1], capabilities=["lz4", "zstd", "tls13"], cluster=CLUSTER, **kw)


def hello_frame(msg_id: int = 1, **kw: object) -> bytes:
    return encode_frame(hello(**kw), msg_id)


def safe_messages(rng: random.Random | None = None) -> list[Message]:
    """Messages an authenticated peer may send at any time without changing cluster state."""
    r = rng or random.Random(0)
    data = bytes(r.getrandbits(8) for _ in range(r.choice((0, 1, 16, 300))))
    return [Echo(data=data), Oneway(data=data), EchoReply(data=data), ErrorReply(code="x", message="y"),
            Heartbeat(node_id=FUZZ_ID, timestamp=1.0, seq=1)]


def context_messages() -> list[Message]:
    """Valid messages that are wrong for an established connection (no handler, or a stale answer)."""
    return [hello(), HelloAck(accepted=True, node_id="node9"), HelloAck(accepted=False, node_id="", reason="x")]


# ---------------------------------------------------------------------------------------------- payloads
def deep_payload_frame(depth: int) -> bytes:
    return frame_of(_deep(depth), 7, Flags.ACK_REQUESTED)


def _deep(depth: int) -> bytes:
    """An AppMessage whose data nests ``depth`` arrays: small on the wire, deep for the decoder."""
    return (b"\x83\xa4type\xaaAppMessage\xacmessage_type\xa1x\xa4data\x81\xa1k" + b"\x91" * depth + b"\xc0")


_WRONG_TYPES: list[object] = [
    [], 0, "Echo", None, {"type": "NoSuchMessage"}, {"type": 7}, {"data": b"x"},
    {"type": "Echo", "data": 5}, {"type": "Echo", "data": "text"}, {"type": "Hello"},
    {"type": "Hello", "node_id": 3}, {"type": "Hello", "node_id": FUZZ_ID, "versions": "1"},
    {"type": "Hello", "node_id": FUZZ_ID, "versions": [2**70 % _U64, -1]},
    {"type": "Heartbeat", "node_id": FUZZ_ID, "timestamp": "now"},
    {"type": "HelloAck", "accepted": "yes", "node_id": "x"},
]


def wrong_type_payload(r: random.Random) -> bytes:
    choice = r.randrange(4)
    if choice == 0:
        return _enc.encode(r.choice(_WRONG_TYPES))
    if choice == 1:
        return _deep(r.choice((10, 1000, 100_000)))
    if choice == 2:  # truncated msgpack of a valid message
        raw = _enc.encode(Echo(data=b"abcdefgh"))
        return raw[: r.randrange(len(raw))]
    return bytes([r.choice((0xC1, 0xD4, 0xC7, 0xDF, 0xDD))]) + bytes(r.getrandbits(8) for _ in range(r.randrange(9)))


# ---------------------------------------------------------------------------------------------- oracle
def hello_accepted(msg: Message) -> bool:
    """Whether a node of cluster ``CLUSTER`` accepts this first frame from the ``fuzzer`` certificate."""
    if not isinstance(msg, Hello):
        return False
    versions = list(msg.versions) or [msg.protocol_version]
    return (msg.node_id == FUZZ_ID and 1 in versions and msg.cluster in ("", CLUSTER)
            and valid_address(msg.tcp_address) and valid_address(msg.quic_address))


def valid_address(address: str) -> bool:
    from rustyray.transport.tcp import parse_address

    if not address:
        return True
    try:
        parse_address(address)
    except ValueError:
        return False
    return True


def predict(stage: str, data: bytes) -> str:
    """"closed" when the node must drop the connection after ``data``, else "open".

    ``stage`` is "pre_hello" (``data`` is the first thing sent) or "post_hello" (sent after an
    accepted handshake).
    """
    dec = FrameDecoder()
    try:
        dec.feed(data)
        frames = dec.frames()
    except ProtocolError:
        return "closed"
    if stage == "pre_hello" and frames and not hello_accepted(frames[0].message):
        return "closed"
    return "open"


# ---------------------------------------------------------------------------------------------- random
class Mutator:
    """Fast hostile-frame generator (one ``random.Random``); ``frame(kind)`` returns wire bytes."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng

    def bytes_(self, n: int) -> bytes:
        return self.r.randbytes(n)

    def valid(self) -> bytes:
        r = self.r
        msg = r.choice(safe_messages(r)[:2])  # Echo or Oneway
        flags = Flags.ACK_REQUESTED if isinstance(msg, Echo) and r.random() < 0.7 else 0
        comp = r.choice((Compression.NONE, Compression.LZ4, Compression.ZSTD))
        return encode_frame(msg, r.randrange(1, 2**63), flags=flags | (r.randrange(4) << 6), compression=comp)

    def frame(self, kind: str) -> bytes:
        r = self.r
        if kind == "random":
            return self.bytes_(r.choice((1, 13, 14, 15, 40, 200, 1500)))
        if kind == "truncated":
            f = self.valid() if r.random() < 0.5 else hello_frame()
            return f[: r.randrange(len(f))]
        if kind == "oversize":
            length = r.choice((MAX_FRAME_SIZE + 5, MAX_FRAME_SIZE + 4 + r.randrange(1, 2**20), 2**32 - 1))
            return HEADER.pack(length, 0, r.randrange(2**64)) + self.bytes_(r.randrange(64))
        if kind == "bad_checksum":
            f = bytearray(self.valid() if r.random() < 0.6 else hello_frame())
            pos = r.randrange(4, len(f))  # any byte after the length: flags, id, payload or CRC
            f[pos] ^= 1 << r.randrange(8)
            return bytes(f)
        if kind == "bad_flags":
            payload = _enc.encode(Echo(data=b"x"))
            choice = r.randrange(4)
            if choice == 0:
                flags = (1 << r.randrange(8, 16)) | r.randrange(256)
            elif choice == 1:
                flags = 3
            elif choice == 2:
                flags = r.choice((1, 2))  # says compressed, is not
            else:
                flags = Flags.ENCRYPTED
            return frame_of(payload, r.randrange(2**64), flags)
        if kind == "bad_type":
            return frame_of(wrong_type_payload(r), r.randrange(2**64), r.choice((0, Flags.ACK_REQUESTED)))
        if kind == "valid":
            return self.valid()
        if kind == "context":
            msg = r.choice(context_messages() + safe_messages(r)[2:])
            flags = r.choice((0, Flags.ACK_REQUESTED, Flags.RESPONSE))
            return encode_frame(msg, r.randrange(2**64), flags=flags)
        raise ValueError(kind)

    def hostile(self) -> tuple[str, bytes]:
        kind = self.r.choice(KINDS)
        return kind, self.frame(kind)


# ---------------------------------------------------------------------------------------------- hypothesis
@st.composite
def fuzz_frame(draw: st.DrawFn) -> tuple[str, bytes]:
    """One (kind, bytes) input: hypothesis picks the family, the seed and, for raw bytes, the bytes."""
    kind = draw(st.sampled_from(KINDS))
    if kind == "random":
        return kind, draw(st.binary(min_size=1, max_size=300))
    if kind == "bad_type" and draw(st.booleans()):
        # msgpack-shaped values hypothesis builds itself, tagged or not
        value = draw(st.recursive(
            st.none() | st.booleans() | st.integers(-(2**63), _U64) | st.floats() | st.text(max_size=8)
            | st.binary(max_size=8),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
            max_leaves=8))
        if isinstance(value, dict) and draw(st.booleans()):
            value["type"] = draw(st.sampled_from(["Echo", "Hello", "HelloAck", "Heartbeat", "Oneway", "Nope"]))
        return kind, frame_of(_enc.encode(value), draw(st.integers(0, _U64)))
    if kind == "context" and draw(st.booleans()):
        tcp = draw(st.sampled_from(["", "garbage", "127.0.0.1:notaport", "127.0.0.1:99999", ":1", "[::1]"]))
        msg = Hello(node_id=draw(st.sampled_from([FUZZ_ID, FUZZ_ID, FUZZ_ID, "node2", "", "x" * 300])),
                    versions=draw(st.lists(st.integers(-1, 3), max_size=3)),
                    protocol_version=draw(st.just(1) | st.integers(-(2**63), 2**63 - 1)),
                    capabilities=draw(st.lists(st.text(max_size=10), max_size=4)),
                    cluster=draw(st.sampled_from([CLUSTER, CLUSTER, "", "other"])), tcp_address=tcp,
                    incarnation=draw(st.integers(0, 2**63 - 1)))
        return kind, encode_frame(msg, draw(st.integers(0, _U64)))
    seed = draw(st.integers(0, 2**32 - 1))
    return kind, Mutator(random.Random(seed)).frame(kind)


@dataclass(frozen=True)
class Session:
    """What one fuzz connection sends: at ``stage``, ``frames`` cut into ``chunks`` writes."""

    stage: str  # "pre_hello" | "post_hello"
    frames: tuple[tuple[str, bytes], ...]
    cuts: tuple[int, ...]

    @property
    def data(self) -> bytes:
        return b"".join(f for _, f in self.frames)

    def chunks(self) -> list[bytes]:
        data = self.data
        points = sorted({c % (len(data) + 1) for c in self.cuts} | {0, len(data)})
        return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


@st.composite
def session(draw: st.DrawFn) -> Session:
    stage = draw(st.sampled_from(["pre_hello", "post_hello"]))
    frames = draw(st.lists(fuzz_frame(), min_size=1, max_size=4))
    if stage == "post_hello" and draw(st.booleans()):  # valid traffic first, then the hostile input
        rng = random.Random(draw(st.integers(0, 1000)))
        frames = [("valid", Mutator(rng).valid()) for _ in range(draw(st.integers(1, 3)))] + frames
    cuts = draw(st.lists(st.integers(0, 10_000), max_size=3))
    return Session(stage, tuple(frames), tuple(cuts))
