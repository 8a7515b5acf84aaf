"""Identity challenges: the token a verifier hands out, and the book that makes each one fresh exactly once.

Theory of operation
-------------------
Challenge-response identity (``identity``, ISO/IEC 9798-3 unilateral authentication with a random number)
is replay-safe only if the verifier checks that the challenge is one *it* issued, recently, and that it
has not been answered before. So the verifier mints an ``IdentityChallenge`` (its own node id, the issue
time and a 32-byte random nonce), records it in its ``ChallengeBook``, and hands the encoded token to the
caller. The prover signs the token's fields bound to its own node id (the message layout is
``identity.identity_message``); the verifier decodes the token it gets back and *consumes* it in the book.

``ChallengeBook.consume`` answers exactly one of:

* ``FRESH``     issued by this book, younger than ``ttl_s``, not presented before: the only outcome that may
  lead to ``verified: true``;
* ``EXPIRED``   issued here, but ``ttl_s`` or more ago (the verifier's clock);
* ``REPLAYED``  issued here and already presented once (whatever that first verification concluded);
* ``UNKNOWN``   never issued here, forgotten (more than ``capacity`` issued since), or a token whose fields
  differ from what was issued under that nonce.

Every presentation spends the challenge, successful or not: one attempt per nonce. At most ``capacity``
challenges are outstanding (issuing beyond that forgets the oldest) and at most ``capacity`` spent ones
are remembered to tell a replay from an unknown challenge. Memory is therefore bounded whatever callers do.

The token (``IdentityChallenge.encode``), all integers big-endian::

    offset  size  field
    0       1     version, 0x01
    1       8     issued_at_ms: u64, milliseconds since the Unix epoch on the verifier's clock
    9       32    nonce: the verifier's random bytes
    41      1     n: length of the verifier's node id in UTF-8 bytes, 1..255
    42      n     verifier: the node id of the node that issued (and alone can verify) the challenge

Sans-I/O: the nonce (from the caller's random source) and ``now`` (seconds, the verifier's wall clock)
come in.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_TTL_S",
    "NONCE_SIZE",
    "SCHEME",
    "ChallengeBook",
    "Freshness",
    "FreshnessCheck",
    "IdentityChallenge",
    "TrustLevel",
]

DEFAULT_CAPACITY = 1024  # outstanding challenges remembered (count); as many spent ones again
DEFAULT_TTL_S = 30.0  # seconds a challenge stays answerable: one round trip through the API, with room to spare
NONCE_SIZE = 32  # bytes of verifier randomness per challenge (256 bits: never repeats, never guessed)
TOKEN_VERSION = 1
_HEADER = struct.Struct(">BQ")  # version, issued_at_ms
_MAX_ID = 255  # bytes of UTF-8 node id (one length byte)


def _node_id_bytes(node_id: str, what: str) -> bytes:
    raw = node_id.encode("utf-8")
    if not 1 <= len(raw) <= _MAX_ID:
        raise ValueError(f"{what} node id must be 1..{_MAX_ID} UTF-8 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True)
class IdentityChallenge:
    """One challenge as the verifier issued it (see the module docstring for the token layout)."""

    verifier: str  # node id of the issuing (verifying) node
    nonce: bytes  # NONCE_SIZE random bytes
    issued_at_ms: int  # milliseconds since the Unix epoch, verifier's clock

    def __post_init__(self) -> None:
        _node_id_bytes(self.verifier, "verifier")
        if len(self.nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes, got {len(self.nonce)}")
        if not 0 <= self.issued_at_ms < 1 << 64:
            raise ValueError(f"issued_at_ms out of range: {self.issued_at_ms}")

    @classmethod
    def issue(cls, verifier: str, nonce: bytes, now: float) -> IdentityChallenge:
        """The challenge ``verifier`` hands out at ``now`` (seconds since the epoch)."""
        return cls(verifier, nonce, int(now * 1000))

    def encode(self) -> bytes:
        vid = _node_id_bytes(self.verifier, "verifier")
        return _HEADER.pack(TOKEN_VERSION, self.issued_at_ms) + self.nonce + bytes([len(vid)]) + vid

    @classmethod
    def decode(cls, token: bytes) -> IdentityChallenge:
        """Parse a token; ``ValueError`` (saying what is wrong) for anything but a well-formed one."""
        fixed = _HEADER.size + NONCE_SIZE + 1
        if len(token) < fixed + 1:
            raise ValueError(f"not an identity challenge: {len(token)} bytes, a token has at least {fixed + 1} "
                             "(version, issue time, nonce, verifier id)")
        version, issued_at_ms = _HEADER.unpack_from(token)
        if version != TOKEN_VERSION:
            raise ValueError(f"unsupported identity challenge version {version} (this node speaks {TOKEN_VERSION})")
        n = token[fixed - 1]
        if len(token) != fixed + n:
            raise ValueError(f"not an identity challenge: verifier id of {n} bytes, but {len(token) - fixed} follow")
        nonce = token[_HEADER.size:_HEADER.size + NONCE_SIZE]
        try:
            verifier = token[fixed:].decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not an identity challenge: verifier id is not UTF-8") from None
        return cls(verifier, nonce, issued_at_ms)


SCHEME = "rustyray-node-identity-v2"
"""The identity signature scheme's name (``identity.CONTEXT`` is its domain-separation prefix)."""


class TrustLevel(enum.Enum):
    FULL = "full"
    NONE = "none"


class Freshness(enum.Enum):
    FRESH = "fresh"
    EXPIRED = "expired"
    REPLAYED = "replayed"
    UNKNOWN = "unknown"


class FreshnessCheck(NamedTuple):
    freshness: Freshness
    reason: str  # why, for the API's ``reason``; "fresh" when FRESH

    @property
    def fresh(self) -> bool:
        return self.freshness is Freshness.FRESH


class ChallengeBook:
    """The challenges one verifier issued: outstanding ones oldest first, and the recently spent ones."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, ttl_s: float = DEFAULT_TTL_S) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1, got {capacity}")
        if not ttl_s > 0:
            raise ValueError(f"ttl_s: must be > 0, got {ttl_s}")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._issued: dict[bytes, tuple[IdentityChallenge, float]] = {}  # nonce -> (challenge, issued at), by age
        self._spent: dict[bytes, None] = {}  # nonces presented already, oldest first

    def issue(self, challenge: IdentityChallenge, now: float) -> float:
        """Remember ``challenge`` as handed out at ``now``; forgets the oldest beyond ``capacity``.

        Returns when it expires (seconds, same clock as ``now``).
        """
        self._issued.pop(challenge.nonce, None)  # a re-issued nonce (only with a broken RNG) counts from now
        self._issued[challenge.nonce] = (challenge, now)
        while len(self._issued) > self.capacity:
            self._issued.pop(next(iter(self._issued)))
        return now + self.ttl_s

    def consume(self, challenge: IdentityChallenge, now: float) -> FreshnessCheck:
        """Whether ``challenge`` is fresh at ``now`` (see the module docstring); it is spent either way."""
        entry = self._issued.get(challenge.nonce)
        if entry is None:
            if challenge.nonce in self._spent:
                return FreshnessCheck(Freshness.REPLAYED, "replayed: this challenge was already presented once; "
                                                          "ask for a new one")
            return FreshnessCheck(Freshness.UNKNOWN, "unknown challenge: not issued by this node, or forgotten "
                                                     f"after {self.capacity} newer ones; ask for a new one")
        issued, issued_at = entry
        if issued != challenge:  # same nonce, other verifier or issue time: not what this node handed out
            return FreshnessCheck(Freshness.UNKNOWN, "unknown challenge: its fields differ from the challenge "
                                                     "this node issued with that nonce")
        del self._issued[challenge.nonce]
        self._spent.pop(challenge.nonce, None)  # a re-issued nonce spent again is the newest spent one
        self._spent[challenge.nonce] = None
        while len(self._spent) > self.capacity:
            self._spent.pop(next(iter(self._spent)))
        age = now - issued_at
        if age >= self.ttl_s:
            return FreshnessCheck(Freshness.EXPIRED, f"expired: challenge issued {age:.1f} s ago, challenges "
                                                     f"are valid for {self.ttl_s:g} s; ask for a new one")
        return FreshnessCheck(Freshness.FRESH, "fresh")

    def __len__(self) -> int:
        """Outstanding (issued, not yet presented, not forgotten) challenges, expired ones included."""
        return len(self._issued)

    def __contains__(self, challenge: object) -> bool:
        return isinstance(challenge, IdentityChallenge) and self._issued.get(challenge.nonce, (None,))[0] == challenge
