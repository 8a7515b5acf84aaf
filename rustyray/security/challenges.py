"""Bookkeeping of the identity challenges this node issued, so that a signed response is fresh only once.

Theory of operation
-------------------
Challenge-response identity (``identity``, ISO/IEC 9798-3 style) is replay-safe only if the verifier
checks that the challenge is one it issued and has not seen answered before. This book remembers every
challenge the node hands out; verifying a response *consumes* its challenge, so a second verification of
the same response is no longer fresh. At most ``capacity`` challenges are outstanding: issuing beyond that
forgets the oldest (its response then verifies, but is not fresh).

Sans-I/O: the challenge bytes (from the caller's random source) and ``now`` come in.
"""

from __future__ import annotations

__all__ = ["DEFAULT_CAPACITY", "ChallengeBook"]

DEFAULT_CAPACITY = 1024  # outstanding challenges remembered (count)


class ChallengeBook:
    """Outstanding challenges, oldest first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity: must be >= 1, got {capacity}")
        self.capacity = capacity
        self._issued: dict[str, float] = {}  # challenge hex -> when it was issued (insertion order = age)

    def issue(self, challenge: bytes, now: float) -> None:
        """Remember ``challenge`` as handed out at ``now``; forgets the oldest beyond ``capacity``."""
        self._issued[challenge.hex()] = now
        while len(self._issued) > self.capacity:
            self._issued.pop(next(iter(self._issued)))

    def consume(self, challenge: bytes) -> bool:
        """True when this node issued ``challenge`` and it was not consumed yet; it is spent either way."""
        return self._issued.pop(challenge.hex(), None) is not None

    def __len__(self) -> int:
        return len(self._issued)

    def __contains__(self, challenge: object) -> bool:
        return isinstance(challenge, bytes) and challenge.hex() in self._issued
