"""Exception tree of the security package.

    SecurityError
     ├── CertificateError        a certificate/key file is missing, malformed, or does not chain to the CA
     ├── PeerIdentityError       a verified TLS peer is not the node it claims to be
     ├── DecryptionError         a sealed message failed authentication (tampered, wrong key, truncated)
     ├── KeyRingError            the cluster key ring is unusable (unknown key id, bad file)
     └── InvalidRuleError        an ACL/firewall rule is malformed (also a ValueError, naming the field)

Lower-layer errors (``ssl.SSLError``, ``cryptography.exceptions.InvalidTag``, ``ValueError`` from parsers) are
re-raised as one of these with ``raise ... from exc`` so callers need to catch only this tree.
"""

from __future__ import annotations


class SecurityError(Exception):
    """Base class of every error raised by ``rustyray.security``."""


class CertificateError(SecurityError):
    """A certificate or key is missing, malformed, expired or not issued by the cluster CA."""


class PeerIdentityError(SecurityError):
    """The authenticated peer's certificate names a different node than the one it claims to be."""


class DecryptionError(SecurityError):
    """Authenticated decryption failed; the message must be dropped."""


class KeyRingError(SecurityError):
    """The key ring cannot serve the request (unknown key id, corrupt key file)."""


class InvalidRuleError(SecurityError, ValueError):
    """A rule is malformed; the message names the offending field."""
