"""Message encryption with a rotating cluster key ring (NETWORKING-050).

Theory of operation
-------------------
Messages are sealed with an AEAD (RFC 5116): AES-256-GCM (NIST SP 800-38D) or ChaCha20-Poly1305
(RFC 8439), each with a 256-bit key and a fresh random 96-bit nonce per message. With random nonces a key
must not seal more than about 2**32 messages (SP 800-38D section 8.3); ``KeyRing.rotate`` starts a new
primary key well before that, and ``MessageCipher.sealed_with_primary`` lets the owner decide when.

Sealed layout (all integers big-endian)::

    key_id u32 | algorithm u8 | nonce 12 bytes | ciphertext || 16-byte tag

The first five bytes are authenticated too: the AEAD's associated data is ``header || associated_data``,
where the caller's ``associated_data`` is typically the frame header, so a sealed body cannot be moved under
another header. Any change to any byte, a wrong key or truncation raises ``DecryptionError``.

Rotation keeps old keys in the ring so messages sealed before a rotation still open; ``retire`` drops a key
once no peer can still be using it. The ring is pure data: persistence lives in ``keystore``. Randomness
comes from an injectable ``random_bytes`` callable (default ``os.urandom``; a seeded ``random.Random`` is
not a safe source of nonces or keys, so tests inject a deterministic callable explicitly).
"""

from __future__ import annotations

import base64
import enum
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from rustyray.security.errors import DecryptionError, KeyRingError

__all__ = [
    "HEADER_SIZE",
    "KEY_SIZE",
    "NONCE_SIZE",
    "OVERHEAD",
    "TAG_SIZE",
    "CipherAlgorithm",
    "EncryptionConfig",
    "KeyRing",
    "MessageCipher",
    "RingKey",
    "encrypt_response",
]

RandomBytes = Callable[[int], bytes]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
_HEADER = struct.Struct(">IB")
HEADER_SIZE = _HEADER.size + NONCE_SIZE
OVERHEAD = HEADER_SIZE + TAG_SIZE


class CipherAlgorithm(enum.Enum):
    """AEADs we seal with; values are the seed's spellings."""

    AES256GCM = "AES256GCM"
    CHACHA20_POLY1305 = "ChaCha20Poly1305"

    @property
    def wire_id(self) -> int:
        return _WIRE_IDS[self]

    @classmethod
    def parse(cls, value: str | CipherAlgorithm) -> CipherAlgorithm:
        """Accept the enum, its value, or a case/punctuation-insensitive spelling such as "aes-256-gcm"."""
        if isinstance(value, CipherAlgorithm):
            return value
        folded = "".join(c for c in str(value).lower() if c.isalnum())
        for alg in cls:
            if folded == alg.value.lower():
                return alg
        raise ValueError(f"algorithm: unknown algorithm {value!r}; expected one of {[a.value for a in cls]}")


_WIRE_IDS = {CipherAlgorithm.AES256GCM: 1, CipherAlgorithm.CHACHA20_POLY1305: 2}
_BY_WIRE_ID = {v: k for k, v in _WIRE_IDS.items()}
_AEADS: dict[CipherAlgorithm, Callable[[bytes], AESGCM | ChaCha20Poly1305]] = {
    CipherAlgorithm.AES256GCM: AESGCM,
    CipherAlgorithm.CHACHA20_POLY1305: ChaCha20Poly1305,
}


@dataclass(frozen=True)
class EncryptionConfig:
    """How a node seals messages."""

    # AEAD used for new messages; messages sealed with the other one still open.
    algorithm: CipherAlgorithm = CipherAlgorithm.AES256GCM
    # Messages sealed with one primary key before ``MessageCipher.needs_rotation`` turns true (count).
    # 2**32 is the random-nonce limit of SP 800-38D; the default leaves a 2**12 safety factor.
    max_messages_per_key: int = 2**20
    # File name of the persisted key ring inside the node's state dir.
    key_ring_file: str = "keyring.json"

    def validate(self) -> None:
        if not isinstance(self.algorithm, CipherAlgorithm):
            raise ValueError(f"algorithm: expected CipherAlgorithm, got {self.algorithm!r}")
        if not 1 <= self.max_messages_per_key <= 2**32:
            raise ValueError(f"max_messages_per_key: must be in [1, 2**32], got {self.max_messages_per_key}")
        if not self.key_ring_file or "/" in self.key_ring_file:
            raise ValueError(f"key_ring_file: must be a plain file name, got {self.key_ring_file!r}")


@dataclass(frozen=True)
class RingKey:
    key_id: int
    key: bytes = field(repr=False)
    created_at: float  # seconds (caller's clock) when the key was added


class KeyRing:
    """Cluster data keys by id; the primary key seals, every key in the ring opens."""

    def __init__(
        self,
        keys: Mapping[int, RingKey] | None = None,
        primary_id: int | None = None,
        next_id: int | None = None,
    ) -> None:
        self._keys: dict[int, RingKey] = dict(keys or {})
        if self._keys and primary_id not in self._keys:
            raise KeyRingError(f"primary key id {primary_id} is not in the ring")
        self._primary_id = primary_id
        self._next_id = max(next_id or 1, max(self._keys, default=0) + 1)

    @classmethod
    def generate(cls, now: float, random_bytes: RandomBytes = os.urandom) -> KeyRing:
        ring = cls()
        ring.rotate(now, random_bytes)
        return ring

    def rotate(self, now: float, random_bytes: RandomBytes = os.urandom) -> int:
        """Add a fresh random key and make it primary; returns its id. Old keys keep opening."""
        key = random_bytes(KEY_SIZE)
        assert len(key) == KEY_SIZE
        return self.add(key, now, make_primary=True)

    def add(self, key: bytes, now: float, *, make_primary: bool = False, key_id: int | None = None) -> int:
        """Add a key; pass ``key_id`` when installing a key another node created (replicated ring).

        Ids are never reused within a ring, even after ``retire``, so a stale id cannot name a new key.
        """
        if len(key) != KEY_SIZE:
            raise KeyRingError(f"key must be {KEY_SIZE} bytes, got {len(key)}")
        if key_id is None:
            key_id = self._next_id
        elif key_id in self._keys and self._keys[key_id].key != key:
            raise KeyRingError(f"key id {key_id} already names a different key")
        if not 1 <= key_id <= 0xFFFFFFFF:
            raise KeyRingError(f"key id {key_id} out of range")
        self._keys.setdefault(key_id, RingKey(key_id, bytes(key), now))
        self._next_id = max(self._next_id, key_id + 1)
        if make_primary or self._primary_id is None:
            self._primary_id = key_id
        return key_id

    def retire(self, key_id: int) -> None:
        """Forget a key: messages sealed with it can no longer be opened. The primary cannot be retired."""
        if key_id == self._primary_id:
            raise KeyRingError("cannot retire the primary key; rotate first")
        if self._keys.pop(key_id, None) is None:
            raise KeyRingError(f"unknown key id {key_id}")

    @property
    def primary(self) -> RingKey:
        if self._primary_id is None:
            raise KeyRingError("key ring is empty")
        return self._keys[self._primary_id]

    def get(self, key_id: int) -> RingKey | None:
        return self._keys.get(key_id)

    def key_ids(self) -> list[int]:
        return sorted(self._keys)

    def merge(self, other: KeyRing) -> tuple[bool, list[tuple[int, str]]]:
        """Add ``other``'s keys to this ring and adopt its primary when newer (a replicated ring only grows).

        Returns whether this ring changed (key ids or primary) and the ``(key_id, why)`` conflicts: ids
        that already name a different key here (two nodes rotated at once without a shared disk), which
        are skipped. Adopting the newer primary re-raises such a conflict as ``KeyRingError``.
        """
        before = (self.key_ids(), self.primary.key_id)
        conflicts: list[tuple[int, str]] = []
        for kid in other.key_ids():
            k = other.get(kid)
            assert k is not None
            try:
                self.add(k.key, k.created_at, key_id=kid)
            except KeyRingError as exc:
                conflicts.append((kid, str(exc)))
        if other.primary.key_id > self.primary.key_id and self.get(other.primary.key_id) is not None:
            p = other.primary
            self.add(p.key, p.created_at, key_id=p.key_id, make_primary=True)
        return (self.key_ids(), self.primary.key_id) != before, conflicts

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (keys base64); secret material, store with mode 0600."""
        return {
            "version": 1,
            "primary": self._primary_id,
            "next_id": self._next_id,
            "keys": [
                {"id": k.key_id, "key": base64.b64encode(k.key).decode(), "created_at": k.created_at}
                for k in sorted(self._keys.values(), key=lambda k: k.key_id)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> KeyRing:
        try:
            if data.get("version") != 1:
                raise KeyRingError(f"unsupported key ring version {data.get('version')!r}")
            keys = {}
            for entry in data["keys"]:  # type: ignore[attr-defined]
                key = base64.b64decode(entry["key"], validate=True)
                if len(key) != KEY_SIZE:
                    raise KeyRingError(f"key {entry['id']} has {len(key)} bytes")
                keys[int(entry["id"])] = RingKey(int(entry["id"]), key, float(entry["created_at"]))
            primary = data["primary"]
            next_id = data.get("next_id")
            return cls(
                keys,
                int(primary) if primary is not None else None,  # type: ignore[call-overload]
                int(next_id) if next_id is not None else None,  # type: ignore[call-overload]
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise KeyRingError(f"malformed key ring: {exc}") from exc


class MessageCipher:
    """Seals and opens messages with a ``KeyRing``; sans-I/O apart from the injected randomness."""

    def __init__(
        self,
        ring: KeyRing,
        config: EncryptionConfig | None = None,
        random_bytes: RandomBytes = os.urandom,
    ) -> None:
        self.config = config or EncryptionConfig()
        self.config.validate()
        self.ring = ring
        self._random_bytes = random_bytes
        self._sealed_by_key: dict[int, int] = {}
        self._aead_cache: dict[tuple[int, CipherAlgorithm], AESGCM | ChaCha20Poly1305] = {}

    def _aead(self, ring_key: RingKey, algorithm: CipherAlgorithm) -> AESGCM | ChaCha20Poly1305:
        cache_key = (ring_key.key_id, algorithm)
        aead = self._aead_cache.get(cache_key)
        if aead is None:
            aead = self._aead_cache[cache_key] = _AEADS[algorithm](ring_key.key)
        return aead

    def seal(
        self,
        plaintext: bytes,
        associated_data: bytes = b"",
        algorithm: CipherAlgorithm | str | None = None,
    ) -> bytes:
        alg = self.config.algorithm if algorithm is None else CipherAlgorithm.parse(algorithm)
        key = self.ring.primary
        nonce = self._random_bytes(NONCE_SIZE)
        assert len(nonce) == NONCE_SIZE
        header = _HEADER.pack(key.key_id, alg.wire_id)
        body = self._aead(key, alg).encrypt(nonce, plaintext, header + associated_data)
        self._sealed_by_key[key.key_id] = self._sealed_by_key.get(key.key_id, 0) + 1
        return header + nonce + body

    def open(self, sealed: bytes, associated_data: bytes = b"") -> bytes:
        if len(sealed) < OVERHEAD:
            raise DecryptionError(f"sealed message too short ({len(sealed)} < {OVERHEAD} bytes)")
        key_id, alg_id = _HEADER.unpack_from(sealed)
        alg = _BY_WIRE_ID.get(alg_id)
        if alg is None:
            raise DecryptionError(f"unknown algorithm id {alg_id}")
        key = self.ring.get(key_id)
        if key is None:
            raise DecryptionError(f"unknown key id {key_id}")
        header = bytes(sealed[: _HEADER.size])
        nonce = bytes(sealed[_HEADER.size : HEADER_SIZE])
        try:
            return self._aead(key, alg).decrypt(nonce, bytes(sealed[HEADER_SIZE:]), header + associated_data)
        except InvalidTag as exc:
            raise DecryptionError("authentication failed (tampered, wrong key or wrong associated data)") from exc

    def sealed_with_primary(self) -> int:
        """How many messages this cipher has sealed with the current primary key."""
        return self._sealed_by_key.get(self.ring.primary.key_id, 0)

    @property
    def needs_rotation(self) -> bool:
        return self.sealed_with_primary() >= self.config.max_messages_per_key


def encrypt_response(cipher: MessageCipher, data: bytes, algorithm: CipherAlgorithm | str) -> dict[str, object]:
    """The NETWORKING-050 ``/security/encryption/encrypt`` response body."""
    alg = CipherAlgorithm.parse(algorithm)
    sealed = cipher.seal(data, algorithm=alg)
    return {
        "encrypted": True,
        "algorithm": alg.value,
        "ciphertext": base64.b64encode(sealed).decode(),
        "key_id": cipher.ring.primary.key_id,
    }
