"""Exception tree of ``rustyray.discovery``.

::

    DiscoveryError
     +-- BackendNotConfiguredError   backend absent from [discovery]   (kind UNAVAILABLE)
     +-- BackendMisconfiguredError   its table failed validate()       (kind CONFLICT)
     +-- BackendUnavailableError     transport failure talking to it   (from httpx / dns / botocore errors)
     +-- BackendResponseError        it answered, but with an error or a body we cannot read
     +-- UnknownBackendError         no backend of that name                (kind NOT_FOUND)

Config ``validate()`` methods raise plain ``ValueError`` naming the field, as every subsystem does.
Lower-layer errors are re-raised with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations

from rustyray.errors import ErrorKind


class DiscoveryError(Exception):
    """Base of every error raised by a discovery backend."""

    #: What went wrong, in the API's terms (``serve_apps.errors`` alone maps kinds to HTTP).
    kind: ErrorKind = ErrorKind.UPSTREAM_FAILED


class BackendNotConfiguredError(DiscoveryError):
    """The backend has no table in ``[discovery]``; ``hint`` says how to add one."""

    kind = ErrorKind.UNAVAILABLE

    def __init__(self, backend: str, hint: str) -> None:
        super().__init__(f"discovery backend {backend!r} is not configured. {hint}")
        self.backend = backend
        self.hint = hint


class BackendMisconfiguredError(DiscoveryError):
    """The backend's table exists but is invalid; ``reason`` is the validate() message."""

    kind = ErrorKind.CONFLICT

    def __init__(self, backend: str, reason: str, hint: str) -> None:
        super().__init__(f"discovery backend {backend!r} is misconfigured: {reason}. {hint}")
        self.backend = backend
        self.reason = reason
        self.hint = hint


class BackendUnavailableError(DiscoveryError):
    """The backend could not be reached (connection refused, timeout, TLS failure)."""

    kind = ErrorKind.UNAVAILABLE


class BackendResponseError(DiscoveryError):
    """The backend answered with an error status or a body that does not parse."""

    kind = ErrorKind.UPSTREAM_FAILED

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UnknownBackendError(DiscoveryError):
    """No discovery backend has that name."""

    kind = ErrorKind.NOT_FOUND

    def __init__(self, backend: str, known: list[str]) -> None:
        super().__init__(f"unknown discovery backend {backend!r}; known: {', '.join(known)}")
        self.backend = backend
