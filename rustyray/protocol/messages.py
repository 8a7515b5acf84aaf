"""Wire messages: one tagged union of frozen msgspec Structs.

Why a registry instead of one big Union literal: every subsystem (SWIM, Raft,
routing, ...) owns its own message structs next to its core, and the codec must
still decode any of them from one frame. Each message subclasses ``Message``;
its tag on the wire is its class name (field ``type``). The decoder is built from
every subclass imported so far and rebuilt when a new one appears.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

_registry_version = 0


class Message(msgspec.Struct, tag=True, tag_field="type", frozen=True, kw_only=True):
    """Base of every message that crosses the wire.

    Subclass it in the module of the subsystem that owns the message; the class
    name is the wire tag, so names must be unique across the package.
    """

    def __init_subclass__(cls, **kwargs: object) -> None:
        global _registry_version
        super().__init_subclass__(**kwargs)
        _registry_version += 1  # the cached decoder is rebuilt on next use


def all_message_types() -> list[type[Message]]:
    """Every concrete ``Message`` subclass imported so far, in a stable order."""
    seen: dict[str, type[Message]] = {}
    stack = list(Message.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        name = cls.__name__
        if name in seen and seen[name] is not cls:
            raise TypeError(f"two wire messages share the tag {name!r}")
        seen[name] = cls
    return [seen[k] for k in sorted(seen)]


_decoder_cache: tuple[int, msgspec.msgpack.Decoder[Any]] | None = None
_encoder = msgspec.msgpack.Encoder()


def encode_message(msg: Message) -> bytes:
    """Serialise one message to msgpack bytes (the frame payload before compression)."""
    return _encoder.encode(msg)


def message_decoder() -> msgspec.msgpack.Decoder[Any]:
    """A decoder for the union of all registered messages (cached until a new type appears)."""
    global _decoder_cache
    if _decoder_cache is None or _decoder_cache[0] != _registry_version:
        types = all_message_types()
        if not types:
            raise TypeError("no wire message types are registered")
        union = Union[tuple(types)] if len(types) > 1 else types[0]  # noqa: UP007
        _decoder_cache = (_registry_version, msgspec.msgpack.Decoder(union))
    return _decoder_cache[1]


def decode_message(data: bytes) -> Message:
    """Decode msgpack bytes into the registered message they carry.

    Raises ``msgspec.DecodeError`` / ``msgspec.ValidationError``; the frame codec
    turns those into ``RemoteProtocolError``.
    """
    return message_decoder().decode(data)
