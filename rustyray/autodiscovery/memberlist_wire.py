"""HashiCorp memberlist's wire format (what ``serf agent`` speaks), as a sans-I/O codec.

Why: NETWORKING-029 asks for Serf compatibility, and Serf is memberlist on the wire. This module turns
memberlist packets and stream messages into ``(MessageType, body)`` pairs and back, so a SWIM adapter
can speak to real Serf and Consul agents. No sockets here: bytes in, messages out.

Theory of operation
-------------------
Read from memberlist's ``net.go`` / ``util.go`` (Debian's golang-github-hashicorp-memberlist-dev) and
checked against the real ``serf`` 0.8.2 binary (``tests/integration/test_serf_interop.py``):

* A message is one type byte (``MessageType``) then a msgpack body: a map from the Go struct's field
  names (``SeqNo``, ``Node``, ...) to values. memberlist's msgpack (go-codec, ``MsgpackHandle{}``)
  writes ``[]byte`` as the old "raw" string family, so bytes are packed with ``use_bin_type=False``
  and read back with ``raw=True`` (a ``str`` field then arrives as ``bytes``; ``text()`` decodes it).
* Wrappers, outermost first, each a type byte then its payload:

  - ``HAS_LABEL`` (244): one length byte, the label, then the rest (memberlist 0.3+ cluster labels);
  - ``HAS_CRC``: a big-endian CRC-32 (IEEE) of the rest, then the rest;
  - ``COMPRESS``: msgpack ``{"Algo": 0, "Buf": <LZW, LSB, 8-bit literals>}`` holding a message;
  - ``COMPOUND``: a count byte, ``count`` big-endian u16 lengths, then the messages back to back.

  With gossip encryption (``serf agent -encrypt KEY``) a whole UDP packet is ``Keyring.seal_packet``'s
  output: version byte 1, a 12-byte nonce, AES-GCM ciphertext and tag (no associated data); a stream
  message is ``ENCRYPT``, a big-endian u32 length, then the same layout with the first five bytes as
  associated data. The plaintext is compressed first, as memberlist does. Any key of the ring opens;
  the primary (first) seals.
* A TCP push-pull is ``PUSH_PULL``, the msgpack header ``{"Nodes", "UserStateLen", "Join"}``, one
  msgpack ``pushNodeState`` per node, then ``UserStateLen`` bytes of delegate (Serf) state.
* Serf puts a member's tags in ``Meta`` as byte 255 then a msgpack map (``encode_tags``).

* On send, ``memberlist_framing.frame_packet`` / ``frame_stream`` apply the wrappers in memberlist's order: compound,
  compress (``lzw_compress``, Go's ``compress/lzw`` writer; a packet only when that makes it smaller, a
  push-pull always, as ``rawSendMsgPacket`` / ``sendLocalState`` do), CRC, encryption (the cluster label
  as associated data), then the label header (a stream carries it only from the dialer, at its start).
  ``open_packet`` / ``strip_stream_label`` undo them and refuse a label other than ours (memberlist's
  ``ingestPacket``: "discarding packet with unacceptable label").
* Addresses are 4 bytes (IPv4) or 16 (IPv6), as memberlist's ``To4()`` leaves them; ``ip_text`` reads both.

Anything malformed raises ``WireError`` and nothing else, so an adapter drops that packet or closes
that stream and carries on.
"""

from __future__ import annotations

import base64
import enum
import ipaddress
import secrets
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "DEFAULT_VSN",
    "Keyring",
    "MessageType",
    "NodeState",
    "PushNodeState",
    "PushPull",
    "WireError",
    "answer_key_query",
    "decode_packet",
    "decode_push_pull",
    "decode_query_filters",
    "decode_relay",
    "decode_serf_message",
    "decode_tags",
    "encode_compound",
    "encode_message",
    "encode_push_pull",
    "encode_query_filters",
    "encode_tags",
    "encode_user",
    "ip_text",
    "lzw_decompress",
    "serf_leave_intent",
    "serf_push_pull_state",
    "serf_query",
    "serf_query_response",
    "serf_relay",
    "serf_user_event",
    "text",
    "with_crc",
]


class MessageType(enum.IntEnum):
    PING = 0
    INDIRECT_PING = 1
    ACK = 2
    SUSPECT = 3
    ALIVE = 4
    DEAD = 5
    PUSH_PULL = 6
    COMPOUND = 7
    USER = 8
    COMPRESS = 9
    ENCRYPT = 10
    NACK = 11
    HAS_CRC = 12
    ERR = 13
    HAS_LABEL = 244


class NodeState(enum.IntEnum):
    ALIVE = 0
    SUSPECT = 1
    DEAD = 2
    LEFT = 3


DEFAULT_VSN = (1, 5, 2, 2, 5, 4)
"""Protocol versions we announce: memberlist min/max/current 1/5/2, Serf delegate 2/5/4 (serf 0.8's)."""

TAG_MAGIC = 0xFF
SERF_LEAVE = 0  # Serf's messageLeaveType
SERF_JOIN = 1  # messageJoinType
SERF_PUSH_PULL = 2  # messagePushPullType: the delegate state in a push-pull
SERF_USER_EVENT = 3  # messageUserEventType
SERF_QUERY = 4  # messageQueryType
SERF_QUERY_RESPONSE = 5  # messageQueryResponseType
SERF_RELAY = 9  # messageRelayType: {DestAddr: net.UDPAddr} then a Serf message to forward there
QUERY_FLAG_ACK = 1
FILTER_NODE, FILTER_TAG = 0, 1  # Serf's filterNodeType, filterTagType
MAX_COMPOUND = 255
MAX_DECOMPRESSED = 20 * 1024 * 1024  # memberlist's maxPushStateBytes: a bound on what a packet may expand to


class WireError(ValueError):
    """A packet or stream message that is not valid memberlist."""


def ip_text(addr: bytes) -> str | None:
    """A member address field (4 or 16 raw bytes) as text (an IPv4-mapped IPv6 address as IPv4, as Go's
    ``net.IP.String`` writes it); None for anything else."""
    if len(addr) == 4:
        return str(ipaddress.IPv4Address(addr))
    if len(addr) == 16:
        ip = ipaddress.IPv6Address(addr)
        return str(ip.ipv4_mapped or ip)
    return None


def text(value: Any) -> str:
    """A msgpack string field (read as bytes, see the module docstring) as text."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WireError(f"not UTF-8 text: {exc}") from None
    if isinstance(value, str):
        return value
    raise WireError(f"expected a string, got {type(value).__name__}")


# ------------------------------------------------------------------------------------------- messages
def _pack(body: Any) -> bytes:
    return msgpack.packb(body, use_bin_type=False)


def _unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=True, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, TypeError) as exc:
        raise WireError(f"bad msgpack body: {exc}") from None


def _keys_to_text(body: Any) -> Any:
    if isinstance(body, dict):
        return {(k.decode("utf-8", "replace") if isinstance(k, bytes) else k): v for k, v in body.items()}
    return body


def encode_message(msg_type: MessageType, body: dict[str, Any]) -> bytes:
    """One message: the type byte and the msgpack body (Go field names as keys)."""
    return bytes([msg_type]) + _pack(body)


def encode_user(payload: bytes) -> bytes:
    """A user message: memberlist hands ``payload`` (a Serf message) to its delegate as it is."""
    return bytes([MessageType.USER]) + payload


def serf_leave_intent(node: str, ltime: int) -> bytes:
    """Serf's ``messageLeave`` (type 0): agents that see it before the member's ``dead`` show it as left."""
    return bytes([SERF_LEAVE]) + _pack({"LTime": ltime, "Node": node, "Prune": False})


def serf_join_intent(node: str, ltime: int) -> bytes:
    """Serf's ``messageJoin`` (type 1): a join stamped later than the member's last leave intent, so agents
    that still hold that leave do not put a member that came back into ``leaving`` again."""
    return bytes([SERF_JOIN]) + _pack({"LTime": ltime, "Node": node})


def serf_user_event(ltime: int, name: str, payload: bytes, coalesce: bool) -> bytes:
    """Serf's ``messageUserEvent`` (type 3)."""
    return bytes([SERF_USER_EVENT]) + _pack({"LTime": ltime, "Name": name, "Payload": payload, "CC": coalesce})


def serf_query(ltime: int, qid: int, addr: bytes, port: int, source: str, timeout_s: float, name: str,
               payload: bytes, *, ack: bool = False, filters: list[bytes] | None = None,
               relay_factor: int = 0) -> bytes:
    """Serf's ``messageQuery`` (type 4); answers come as user messages to ``addr:port`` over UDP, and with
    ``relay_factor`` k also through k other members each (``messageRelay``)."""
    if not 0 <= relay_factor <= 255:
        raise WireError("RelayFactor is a uint8")
    return bytes([SERF_QUERY]) + _pack({
        "LTime": ltime, "ID": qid, "Addr": addr, "Port": port, "SourceNode": source, "Filters": list(filters or []),
        "Flags": QUERY_FLAG_ACK if ack else 0, "RelayFactor": relay_factor, "Timeout": int(timeout_s * 1e9),
        "Name": name, "Payload": payload})


def encode_query_filters(nodes: list[str] | None, tags: dict[str, str] | None) -> list[bytes]:
    """Serf's query filters (``encodeFilter``): one node filter (type 0, a msgpack list of names) if
    ``nodes``, and one tag filter (type 1, ``{Tag, Expr}``) per tag; ``decode_query_filters`` reads them."""
    out = [bytes([FILTER_NODE]) + _pack(list(nodes))] if nodes else []
    out += [bytes([FILTER_TAG]) + _pack({"Tag": tag, "Expr": expr}) for tag, expr in (tags or {}).items()]
    return out


def serf_relay(dest: bytes, port: int, message: bytes) -> bytes:
    """Serf's ``messageRelay`` (``encodeRelayMessage``): ask a member to send ``message`` (a Serf message)
    on to ``dest:port`` as a user message; the header is a msgpack ``net.UDPAddr``."""
    return bytes([SERF_RELAY]) + _pack({"DestAddr": {"IP": dest, "Port": port, "Zone": ""}}) + message


def decode_relay(body: bytes) -> tuple[str, int, bytes]:
    """A ``messageRelay`` without its type byte: where to send the inner message, and the message."""
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    unpacker.feed(body)
    try:
        header = _keys_to_text(unpacker.unpack())
        dest = _keys_to_text(header["DestAddr"]) if isinstance(header, dict) else None
        host = ip_text(bytes(dest["IP"])) if isinstance(dest, dict) else None
        port = int(dest["Port"]) if isinstance(dest, dict) else 0
    except (msgpack.OutOfData, ValueError, TypeError, KeyError) as exc:
        raise WireError(f"bad relay header: {exc}") from None
    if host is None or not 0 < port < 65536:
        raise WireError("relay header has no usable DestAddr")
    inner = body[unpacker.tell():]
    if not inner:
        raise WireError("relay carries no message")
    return host, port, inner


def serf_query_response(ltime: int, qid: int, node: str, payload: bytes, *, ack: bool = False) -> bytes:
    """Serf's ``messageQueryResponse`` (type 5)."""
    return bytes([SERF_QUERY_RESPONSE]) + _pack({"LTime": ltime, "ID": qid, "From": node,
                                                 "Flags": QUERY_FLAG_ACK if ack else 0, "Payload": payload})


def decode_query_filters(filters: Any) -> tuple[list[str], dict[str, str]]:
    """Serf's query filters: node names (type 0, a msgpack list) and tag regexps (type 1, {Tag, Expr})."""
    nodes: list[str] = []
    tags: dict[str, str] = {}
    for f in filters or []:
        if not isinstance(f, bytes) or not f:
            raise WireError("a query filter is not bytes")
        body = _unpack(f[1:])
        if f[0] == FILTER_NODE and isinstance(body, list):
            nodes += [text(n) for n in body]
        elif f[0] == FILTER_TAG and isinstance(body, dict):
            body = _keys_to_text(body)
            tags[text(body["Tag"])] = text(body["Expr"])
        else:
            raise WireError(f"unknown query filter type {f[0]}")
    return nodes, tags


SERF_KEY_REQUEST, SERF_KEY_RESPONSE = 7, 8  # messageKeyRequestType, messageKeyResponseType
KEY_QUERIES = ("_serf_install-key", "_serf_use-key", "_serf_remove-key", "_serf_list-keys")


def answer_key_query(keyring: Keyring | None, name: str, payload: bytes) -> tuple[bytes, bool]:
    """Serf's internal key queries (``serf keys``) against ``keyring``: the response payload
    (``messageKeyResponse``) and whether the ring changed."""
    result: dict[str, Any] = {"Result": False, "Message": "", "Keys": [], "PrimaryKey": ""}
    changed = False
    if keyring is None:
        result["Message"] = "No keyring to modify (encryption not enabled)"
    elif name == "_serf_list-keys":
        result.update(Result=True, Keys=keyring.to_base64(), PrimaryKey=keyring.to_base64()[0])
    else:
        try:
            if payload[:1] != bytes([SERF_KEY_REQUEST]):
                raise ValueError("not a key request")
            body = _keys_to_text(_unpack(payload[1:]))
            key = bytes(body["Key"]) if isinstance(body, dict) else b""
            {"_serf_install-key": keyring.install, "_serf_use-key": keyring.use,
             "_serf_remove-key": keyring.remove}[name](key)
            result["Result"], changed = True, True
        except (ValueError, KeyError, TypeError, WireError) as exc:
            result["Message"] = str(exc)
    return bytes([SERF_KEY_RESPONSE]) + _pack(result), changed


def serf_push_pull_state(ltime: int, event_ltime: int, query_ltime: int = 0) -> bytes:
    """Serf's delegate state in a push-pull (``messagePushPull``): our clocks, so agents witness them."""
    return bytes([SERF_PUSH_PULL]) + _pack({"LTime": ltime, "StatusLTimes": {}, "LeftMembers": [],
                                            "EventLTime": event_ltime, "Events": [], "QueryLTime": query_ltime})


def decode_serf_message(payload: bytes) -> tuple[int, dict[str, Any]]:
    """A Serf message carried in a memberlist user message: its Serf type and msgpack body."""
    if not payload:
        raise WireError("empty Serf message")
    body = _keys_to_text(_unpack(payload[1:]))
    if not isinstance(body, dict):
        raise WireError("Serf message body is not a map")
    return payload[0], body


def encode_compound(messages: list[bytes]) -> bytes:
    """Several messages in one packet (memberlist's ``makeCompoundMessage``)."""
    if not 1 <= len(messages) <= MAX_COMPOUND:
        raise WireError(f"a compound message holds 1..{MAX_COMPOUND} messages, not {len(messages)}")
    if any(len(m) > 0xFFFF for m in messages):
        raise WireError("a message in a compound is at most 65535 bytes")
    return (bytes([MessageType.COMPOUND, len(messages)]) + b"".join(struct.pack(">H", len(m)) for m in messages)
            + b"".join(messages))


def with_crc(packet: bytes) -> bytes:
    """``packet`` behind memberlist's CRC header (sent to peers that speak protocol 5)."""
    return bytes([MessageType.HAS_CRC]) + struct.pack(">I", zlib.crc32(packet)) + packet


def decode_packet(packet: bytes, *, depth: int = 0) -> list[tuple[MessageType, dict[str, Any]]]:
    """Every message in one UDP packet, unwrapping label, CRC, compression and compounds."""
    if depth > 4:
        raise WireError("wrappers nested too deep")
    if not packet:
        raise WireError("empty packet")
    try:
        kind = MessageType(packet[0])
    except ValueError:
        raise WireError(f"unknown message type {packet[0]}") from None
    rest = packet[1:]
    if kind is MessageType.HAS_LABEL:
        if not rest or len(rest) < 1 + rest[0]:
            raise WireError("truncated label header")
        return decode_packet(rest[1 + rest[0]:], depth=depth + 1)
    if kind is MessageType.HAS_CRC:
        if len(rest) < 4:
            raise WireError("truncated CRC header")
        (crc,) = struct.unpack(">I", rest[:4])
        if zlib.crc32(rest[4:]) != crc:
            raise WireError("CRC mismatch")
        return decode_packet(rest[4:], depth=depth + 1)
    if kind is MessageType.COMPRESS:
        return decode_packet(_decompress(rest), depth=depth + 1)
    if kind is MessageType.COMPOUND:
        out = []
        for part in _split_compound(rest):
            out.extend(decode_packet(part, depth=depth + 1))
        return out
    if kind is MessageType.ENCRYPT:
        raise WireError("encrypted gossip is not supported yet (no keyring configured)")
    if kind is MessageType.USER:
        return [(kind, {"payload": rest})]  # a Serf message, opaque to memberlist
    body = _keys_to_text(_unpack(rest))
    if not isinstance(body, dict):
        raise WireError(f"{kind.name} body is not a map")
    return [(kind, body)]


def _split_compound(rest: bytes) -> list[bytes]:
    if not rest:
        raise WireError("truncated compound header")
    count = rest[0]
    header = 1 + 2 * count
    if len(rest) < header:
        raise WireError("truncated compound lengths")
    lengths = struct.unpack(f">{count}H", rest[1:header])
    parts, at = [], header
    for n in lengths:
        if at + n > len(rest):
            raise WireError("compound part runs past the packet")
        parts.append(rest[at:at + n])
        at += n
    return parts


def _decompress(body: bytes) -> bytes:
    c = _keys_to_text(_unpack(body))
    if not isinstance(c, dict) or c.get("Algo") != 0 or not isinstance(c.get("Buf"), bytes):
        raise WireError("compress message is not {Algo: 0 (LZW), Buf: bytes}")
    return lzw_decompress(c["Buf"])


def lzw_decompress(data: bytes, lit_width: int = 8, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Go's ``compress/lzw`` reader, LSB first (what memberlist's ``compressPayload`` writes)."""
    clear, eof = 1 << lit_width, (1 << lit_width) + 1
    width, hi, overflow = lit_width + 1, eof, 1 << (lit_width + 1)
    last = -1
    prefix = [0] * 4096
    suffix = [0] * 4096
    out = bytearray()
    bits = nbits = 0
    pos = 0
    while True:
        while nbits < width:
            if pos >= len(data):
                raise WireError("LZW stream ends without an EOF code")
            bits |= data[pos] << nbits
            nbits += 8
            pos += 1
        code = bits & ((1 << width) - 1)
        bits >>= width
        nbits -= width
        if code < clear:
            out.append(code)
            if last != -1:
                suffix[hi], prefix[hi] = code, last
        elif code == clear:
            width, hi, overflow, last = lit_width + 1, eof, 1 << (lit_width + 1), -1
            continue
        elif code == eof:
            return bytes(out)
        elif code <= hi:
            chunk = bytearray()
            c = code
            if code == hi:
                if last == -1:
                    raise WireError("invalid LZW code")
                c = last
                while c >= clear:
                    c = prefix[c]
                chunk.append(c)
                c = last
            while c >= clear:
                chunk.append(suffix[c])
                c = prefix[c]
            chunk.append(c)
            chunk.reverse()
            out += chunk
            if last != -1:
                suffix[hi], prefix[hi] = c, last
        else:
            raise WireError("invalid LZW code")
        if len(out) > limit:
            raise WireError(f"decompresses to more than {limit} bytes")
        last, hi = code, hi + 1
        if hi >= overflow:
            if width == 12:
                last, hi = -1, hi - 1
            else:
                width, overflow = width + 1, overflow << 1


# ------------------------------------------------------------------------------------------ encryption
ENCRYPTION_VERSION = 1  # AES-GCM without padding (memberlist protocol >= 2)
NONCE_SIZE = 12
TAG_SIZE = 16


class Keyring:
    """memberlist's keyring: AES keys of 16, 24 or 32 bytes, the first (primary) seals, any opens."""

    def __init__(self, keys: list[bytes], random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self._random = random_bytes  # nonces; injected so tests can be deterministic
        if not keys:
            raise ValueError("a keyring needs at least one key")
        for k in keys:
            if len(k) not in (16, 24, 32):
                raise ValueError(f"a gossip key is 16, 24 or 32 bytes, not {len(k)}")
        self.keys = list(dict.fromkeys(keys))

    @classmethod
    def from_base64(cls, keys: list[str]) -> Keyring:
        """Serf's spelling (``-encrypt`` and keyring files): base64 keys, the primary first."""
        try:
            return cls([base64.b64decode(k, validate=True) for k in keys])
        except (ValueError, TypeError) as exc:
            raise ValueError(f"not a base64 gossip key: {exc}") from None

    def _seal(self, plain: bytes, aad: bytes | None) -> bytes:
        nonce = self._random(NONCE_SIZE)
        return bytes([ENCRYPTION_VERSION]) + nonce + AESGCM(self.keys[0]).encrypt(nonce, plain, aad)

    def _open(self, sealed: bytes, aad: bytes | None) -> bytes:
        if len(sealed) < 1 + NONCE_SIZE + TAG_SIZE:
            raise WireError("encrypted payload too short")
        if sealed[0] != ENCRYPTION_VERSION:
            raise WireError(f"unsupported encryption version {sealed[0]}")
        nonce, ciphertext = sealed[1:1 + NONCE_SIZE], sealed[1 + NONCE_SIZE:]
        for key in self.keys:
            try:
                return AESGCM(key).decrypt(nonce, ciphertext, aad)
            except InvalidTag:
                continue
        raise WireError("no installed key opens this message")

    def install(self, key: bytes) -> None:
        """Add a key (Serf's ``keys -install``); it opens at once and seals once it is used."""
        Keyring([key])  # validates the length
        if key not in self.keys:
            self.keys.append(key)

    def use(self, key: bytes) -> None:
        """Make an installed key the primary (``keys -use``)."""
        if key not in self.keys:
            raise ValueError("Requested key is not in the keyring")
        self.keys.remove(key)
        self.keys.insert(0, key)

    def remove(self, key: bytes) -> None:
        """Drop a key that is not the primary (``keys -remove``)."""
        if key == self.keys[0]:
            raise ValueError("Removing the primary key is not allowed")
        if key in self.keys:
            self.keys.remove(key)

    def to_base64(self) -> list[str]:
        return [base64.b64encode(k).decode() for k in self.keys]

    def seal_packet(self, packet: bytes, label: bytes = b"") -> bytes:
        """A sealed packet; the cluster label (memberlist 0.3+) is its associated data."""
        return self._seal(packet, label or None)

    def open_packet(self, data: bytes, label: bytes = b"") -> bytes:
        return self._open(data, label or None)

    def seal_stream(self, message: bytes, label: bytes = b"") -> bytes:
        """A sealed stream message; its associated data is the type byte, the length and the label."""
        header = bytes([MessageType.ENCRYPT]) + struct.pack(">I", 1 + NONCE_SIZE + len(message) + TAG_SIZE)
        return header + self._seal(message, header + label)

    def open_stream(self, data: bytes, label: bytes = b"") -> bytes | None:
        """The plaintext of a whole encrypted stream message; None while more bytes are needed."""
        if data[:1] != bytes([MessageType.ENCRYPT]):
            raise WireError("stream message is not encrypted, and this member requires encryption")
        if len(data) < 5:
            return None
        (length,) = struct.unpack(">I", data[1:5])
        if length > MAX_DECOMPRESSED:
            raise WireError("encrypted stream message over 20 MiB")
        if len(data) < 5 + length:
            return None
        return self._open(data[5:5 + length], data[:5] + label)


# ------------------------------------------------------------------------------------------- push-pull
@dataclass(frozen=True)
class PushNodeState:
    """One member in a push-pull (memberlist's ``pushNodeState``)."""

    name: str
    addr: bytes  # 4 or 16 bytes of IP address
    port: int
    meta: bytes = b""
    incarnation: int = 0
    state: NodeState = NodeState.ALIVE
    vsn: tuple[int, ...] = DEFAULT_VSN

    def to_wire(self) -> dict[str, Any]:
        return {"Name": self.name, "Addr": self.addr, "Port": self.port, "Meta": self.meta,
                "Incarnation": self.incarnation, "State": int(self.state), "Vsn": bytes(self.vsn)}

    @classmethod
    def from_wire(cls, body: Any) -> PushNodeState:
        body = _keys_to_text(body)
        if not isinstance(body, dict):
            raise WireError("node state is not a map")
        try:
            vsn = body.get("Vsn") or b""
            return cls(text(body["Name"]), bytes(body.get("Addr") or b""), int(body.get("Port") or 0),
                       bytes(body.get("Meta") or b""), int(body.get("Incarnation") or 0),
                       NodeState(int(body.get("State") or 0)),
                       tuple(vsn) if isinstance(vsn, bytes | list | tuple) else ())
        except (KeyError, ValueError, TypeError) as exc:
            raise WireError(f"bad node state: {exc}") from None


@dataclass(frozen=True)
class PushPull:
    nodes: list[PushNodeState]
    user_state: bytes = b""
    join: bool = False


def encode_push_pull(pp: PushPull) -> bytes:
    """A push-pull stream message (uncompressed; memberlist reads either)."""
    header = {"Nodes": len(pp.nodes), "UserStateLen": len(pp.user_state), "Join": pp.join}
    return (bytes([MessageType.PUSH_PULL]) + _pack(header) + b"".join(_pack(n.to_wire()) for n in pp.nodes)
            + pp.user_state)


def decode_push_pull(message: bytes) -> PushPull:
    """A whole push-pull stream message, unwrapping compression; ``WireError`` if it is anything else."""
    if not message:
        raise WireError("empty stream message")
    if message[0] == MessageType.COMPRESS:
        message = _decompress(message[1:])
    if not message or message[0] != MessageType.PUSH_PULL:
        kind = message[0] if message else None
        raise WireError(f"expected a push-pull message, got type {kind}")
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False, max_buffer_size=MAX_DECOMPRESSED)
    unpacker.feed(message[1:])
    try:
        header = _keys_to_text(unpacker.unpack())
        if not isinstance(header, dict):
            raise WireError("push-pull header is not a map")
        count, user_len = int(header.get("Nodes", 0)), int(header.get("UserStateLen", 0))
        if not 0 <= count <= 100_000 or user_len < 0:
            raise WireError("push-pull header out of range")
        nodes = [PushNodeState.from_wire(unpacker.unpack()) for _ in range(count)]
        offset = 1 + unpacker.tell()
    except (msgpack.OutOfData, ValueError, TypeError) as exc:
        raise WireError(f"bad push-pull: {exc}") from None
    user = message[offset:offset + user_len]
    if len(user) != user_len:
        raise WireError("push-pull user state is truncated")
    return PushPull(nodes, user, bool(header.get("Join", False)))


# ------------------------------------------------------------------------------------------------ tags
def encode_tags(tags: dict[str, str]) -> bytes:
    """Serf's member metadata: the magic byte then a msgpack map."""
    return bytes([TAG_MAGIC]) + _pack(dict(tags))


def decode_tags(meta: bytes) -> dict[str, str]:
    """Serf's ``decodeTags``: without the magic byte the whole meta is the ``role`` (protocol < 3)."""
    if not meta or meta[0] != TAG_MAGIC:
        return {"role": meta.decode("utf-8", "replace")}
    tags = _unpack(meta[1:])
    if not isinstance(tags, dict):
        raise WireError("tags are not a map")
    return {text(k): text(v) for k, v in tags.items()}
