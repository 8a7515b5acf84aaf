"""Exceptions of the auto-discovery package.

One tree, so callers can catch the whole package with ``AutodiscoveryError``::

    AutodiscoveryError
    ├── AutodiscoveryConfigError (also a ValueError)   a config field is invalid
    ├── PacketRejected                                  a remote datagram is refused (h11's "remote error")
    │   ├── MalformedPacket                             cannot be decoded
    │   ├── ForeignCluster                              another cluster's announcement
    │   ├── BadSignature                                HMAC does not verify
    │   ├── StalePacket                                 timestamp outside the freshness window
    │   └── ReplayedPacket                              nonce seen before
    ├── SerfError
    │   └── SerfSizeLimitExceeded                       event/query payload over the configured limit
    ├── AntiEntropyError
    │   └── AEProtocolError                             the peer sent an unexpected or malformed message
    └── MdnsError                                       zeroconf could not register/browse

Anything else raised from these modules is a bug.
"""

from __future__ import annotations


class AutodiscoveryError(Exception):
    """Base of every error raised on purpose by ``rustyray.autodiscovery``."""


class AutodiscoveryConfigError(AutodiscoveryError, ValueError):
    """A configuration field is out of range; the message names the field."""


class PacketRejected(AutodiscoveryError):
    """A received datagram was refused; ``reason`` is a stable short label for counters."""

    reason = "rejected"


class MalformedPacket(PacketRejected):
    reason = "malformed"


class ForeignCluster(PacketRejected):
    reason = "foreign_cluster"


class BadSignature(PacketRejected):
    reason = "bad_signature"


class StalePacket(PacketRejected):
    reason = "stale"


class ReplayedPacket(PacketRejected):
    reason = "replayed"


class SerfError(AutodiscoveryError):
    """A Serf-layer request cannot be honoured."""


class SerfSizeLimitExceeded(SerfError):
    """A user event or query payload is larger than the configured limit."""


class AntiEntropyError(AutodiscoveryError):
    """Anti-entropy synchronisation failed."""


class AEProtocolError(AntiEntropyError):
    """The peer sent a message that does not fit the session's state."""


class MdnsError(AutodiscoveryError):
    """mDNS registration or browsing failed."""
