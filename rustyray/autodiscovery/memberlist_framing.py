"""memberlist's framing of what a member sends: compounds, LZW compression, CRC, encryption, cluster labels.

Why: memberlist (and so ``serf agent``, whose default config enables compression) wraps packets and
streams in layers; ``memberlist_wire`` reads every layer, this module writes them, in memberlist's
order (``net.go`` ``rawSendMsgPacket`` / ``sendLocalState``, ``compress.go``, ``label.go``):

* packet: the messages for one member as a compound if more than one (``group_messages`` keeps each
  under ``UDPBufferSize``), LZW-compressed when that is smaller, a CRC if asked, sealed with the
  cluster label as associated data, then the label header;
* stream (push-pull): always compressed when compression is on, sealed with the stream header and
  label as associated data; only the dialer writes the label header, at the start of the connection;
* received: ``open_packet`` and ``strip_stream_label`` refuse any label other than ours, no label
  when we have one included (memberlist's "discarding packet with unacceptable label").

Sans-I/O: bytes in, bytes out; anything malformed is ``WireError``.
"""

from __future__ import annotations

from typing import Any

from rustyray.autodiscovery.memberlist_wire import (
    MAX_COMPOUND,
    Keyring,
    MessageType,
    WireError,
    _pack,
    decode_packet,
    encode_compound,
    with_crc,
)

__all__ = ["LABEL_MAX", "UDP_BUFFER", "add_label", "compress_message", "frame_packet", "frame_stream",
           "group_messages", "lzw_compress", "open_packet", "strip_label", "strip_stream_label"]

UDP_BUFFER = 1400  # memberlist's UDPBufferSize: the largest packet it sends
LABEL_MAX = 255  # memberlist's LabelMaxSize


def compress_message(message: bytes) -> bytes:
    """``message`` inside memberlist's ``compress`` wrapper (``compressPayload``: LZW, ``Algo`` 0)."""
    return bytes([MessageType.COMPRESS]) + _pack({"Algo": 0, "Buf": lzw_compress(message)})


def group_messages(messages: list[bytes], limit: int = UDP_BUFFER) -> list[list[bytes]]:
    """Messages to one member, in order, packed greedily into groups that fit one packet as a compound
    (memberlist piggybacks gossip the same way, under ``UDPBufferSize``); a message too big for any
    compound travels alone."""
    groups: list[list[bytes]] = []
    size = 0
    for m in messages:
        cost = 2 + len(m)  # its length field and itself
        if groups and len(groups[-1]) < MAX_COMPOUND and size + cost <= limit and len(m) <= 0xFFFF:
            groups[-1].append(m)
            size += cost
        else:
            groups.append([m])
            size = 2 + cost
    return groups


def frame_packet(messages: list[bytes], *, compress: bool = False, crc: bool = False,
                 keyring: Keyring | None = None, label: str = "") -> bytes:
    """One UDP packet from ``messages``, wrapped as memberlist's ``rawSendMsgPacket`` does: a compound if
    more than one, compressed if ``compress`` and that is smaller, a CRC if ``crc`` (peers of protocol 5),
    sealed if ``keyring`` (the label as associated data), then the label header if ``label``."""
    packet = messages[0] if len(messages) == 1 else encode_compound(messages)
    if compress:
        packed = compress_message(packet)
        if len(packed) < len(packet):
            packet = packed
    if crc:
        packet = with_crc(packet)
    if keyring is not None:
        packet = keyring.seal_packet(packet, label.encode())
    return add_label(packet, label)


def open_packet(data: bytes, *, keyring: Keyring | None = None,
                label: str = "") -> list[tuple[MessageType, dict[str, Any]]]:
    """Every message of a received packet: the label must be ours (``WireError`` otherwise, as memberlist
    drops it), then decryption, then ``decode_packet``."""
    got, rest = strip_label(data)
    if got != label:
        raise WireError(f"discarding packet with unacceptable label {got!r}")
    if keyring is not None:
        rest = keyring.open_packet(rest, label.encode())
    return decode_packet(rest)


def frame_stream(message: bytes, *, compress: bool = False, keyring: Keyring | None = None,
                 label: str = "", dialer: bool = False) -> bytes:
    """A push-pull stream message as ``sendLocalState`` writes it: compressed if ``compress`` (always, not
    only when smaller), sealed with the label in the associated data; the dialer puts the label header first."""
    if compress:
        message = compress_message(message)
    if keyring is not None:
        message = keyring.seal_stream(message, label.encode())
    return add_label(message, label) if dialer else message


def add_label(data: bytes, label: str) -> bytes:
    """memberlist's ``AddLabelHeaderToPacket``: ``HAS_LABEL``, a length byte, the label; nothing if no label."""
    raw = label.encode()
    if not raw:
        return data
    if len(raw) > LABEL_MAX:
        raise WireError(f"label {label!r} is longer than {LABEL_MAX} bytes")
    return bytes([MessageType.HAS_LABEL, len(raw)]) + raw + data


def strip_label(data: bytes) -> tuple[str, bytes]:
    """memberlist's ``RemoveLabelHeaderFromPacket``: the label ("" if none) and the rest."""
    if not data or data[0] != MessageType.HAS_LABEL:
        return "", data
    if len(data) < 3:
        raise WireError("cannot decode label; packet has been truncated")
    size = data[1]
    if size < 1:
        raise WireError("label header cannot be empty when present")
    if len(data) < 2 + size:
        raise WireError("cannot decode label; packet has been truncated")
    return data[2:2 + size].decode("utf-8", "replace"), data[2 + size:]


def strip_stream_label(buf: bytes, label: str) -> bytes | None:
    """The start of an inbound stream without its label header; None while the header is incomplete;
    ``WireError`` if the label is not ours (memberlist: "discarding stream with unacceptable label")."""
    if not buf:
        return None
    if buf[0] == MessageType.HAS_LABEL and (len(buf) < 2 or len(buf) < 2 + buf[1]):
        return None
    got, rest = strip_label(buf)
    if got != label:
        raise WireError(f"discarding stream with unacceptable label {got!r}")
    return rest


def lzw_compress(data: bytes, lit_width: int = 8) -> bytes:
    """Go's ``compress/lzw`` writer, LSB first, ``litWidth`` 8 (memberlist's ``compressPayload``): a clear
    code, the codes, EOF; codes widen from 9 to 12 bits and the table is reset (a clear code) at 4095,
    exactly when Go's ``incHi`` does, so Go's reader (and ``lzw_decompress``) follow it."""
    clear, eof, max_code = 1 << lit_width, (1 << lit_width) + 1, (1 << 12) - 1
    width, hi, overflow = lit_width + 1, eof, 1 << (lit_width + 1)
    out = bytearray()
    bits = nbits = 0

    def emit(code: int) -> None:
        nonlocal bits, nbits
        bits |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(bits & 0xFF)
            bits >>= 8
            nbits -= 8

    def inc_hi() -> bool:
        """Go's ``incHi``; True when the table ran out and was reset."""
        nonlocal width, hi, overflow
        hi += 1
        if hi == overflow:
            width, overflow = width + 1, overflow << 1
        if hi == max_code:
            emit(clear)
            width, hi, overflow = lit_width + 1, clear + 1, clear << 1
            table.clear()
            return True
        return False

    table: dict[int, int] = {}
    emit(clear)
    if data:
        code = data[0]
        for literal in data[1:]:
            key = code << 8 | literal
            hit = table.get(key)
            if hit is not None:
                code = hit
                continue
            emit(code)
            code = literal
            if not inc_hi():
                table[key] = hi
        emit(code)
        inc_hi()
    emit(eof)
    if nbits > 0:
        out.append(bits & 0xFF)
    return bytes(out)
