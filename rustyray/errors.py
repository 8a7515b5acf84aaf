"""Errors that cross the service boundary (node -> actor -> Serve -> HTTP).

Why a domain error that speaks no HTTP: a service says *what* went wrong (an
``ErrorKind``) and which input was wrong (``field``); the management API alone decides
how that reads over HTTP (``serve_apps.errors.HTTP_STATUS`` is the one kind -> status
table). It is a plain value-carrying exception so that it survives pickling across Ray.
Code raises ``DomainError`` or one of the helpers below (``not_found(msg, field)`` ...);
no status number appears below ``serve_apps`` (a unit test keeps it so).
"""

from __future__ import annotations

import enum


class ErrorKind(enum.Enum):
    """What went wrong, in the domain's terms (the HTTP status is the API layer's business)."""

    INVALID = "invalid"  # malformed input (bad encoding, wrong algorithm, garbage ciphertext)
    UNAUTHORIZED = "unauthorized"  # the caller did not prove who it is
    FORBIDDEN = "forbidden"  # refused by policy (ACL, firewall, dial policy, address policy)
    NOT_FOUND = "not_found"  # no such node, service, operation, rule, check...
    CONFLICT = "conflict"  # the current state does not allow it (feature disabled, already a member)
    PAYLOAD_TOO_LARGE = "payload_too_large"  # over a size limit (frame, message, body)
    UNPROCESSABLE = "unprocessable"  # well-formed but wrong: bad argument names, types or values
    TOO_MANY_REQUESTS = "too_many_requests"  # rate limited; retry later
    INTERNAL = "internal"  # a bug or an unexpected failure inside the node
    NOT_IMPLEMENTED = "not_implemented"  # this deployment cannot do that (e.g. a gateway that cannot spawn)
    UPSTREAM_FAILED = "upstream_failed"  # a peer or backend answered, but wrongly
    UNAVAILABLE = "unavailable"  # a node, peer or backend is not reachable or not running
    TIMEOUT = "timeout"  # a peer or backend did not answer in time


def _restore(cls: type[DomainError], kind: ErrorKind, message: str, field: str | None) -> DomainError:
    """Unpickle any ``DomainError`` subclass without calling its (possibly different) constructor."""
    exc = cls.__new__(cls)
    DomainError.__init__(exc, kind, message, field)
    return exc


class DomainError(Exception):
    """A request the node refuses: ``kind`` says why, ``field`` names the bad input (if one is to blame)."""

    def __init__(self, kind: ErrorKind, message: str, field: str | None = None) -> None:
        if not isinstance(kind, ErrorKind):
            raise TypeError(f"DomainError kind must be an ErrorKind, not {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.field = field

    def __reduce__(self):  # keep kind, message and field (and the subclass) when pickled by Ray
        return (_restore, (type(self), self.kind, self.message, self.field))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind.name}, {self.message!r}, field={self.field!r})"

    def to_dict(self) -> dict[str, object]:
        """``{"error": message, "kind": "not_found", "field": name?}`` (no HTTP status: see serve_apps.errors)."""
        out: dict[str, object] = {"error": self.message, "kind": self.kind.value}
        if self.field:
            out["field"] = self.field
        return out


def bad_request(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.INVALID, message, field)


def unprocessable(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.UNPROCESSABLE, message, field)


def not_found(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.NOT_FOUND, message, field)


def conflict(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.CONFLICT, message, field)


def unavailable(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.UNAVAILABLE, message, field)


def forbidden(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.FORBIDDEN, message, field)


def too_many_requests(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.TOO_MANY_REQUESTS, message, field)


def payload_too_large(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.PAYLOAD_TOO_LARGE, message, field)


def unauthorized(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.UNAUTHORIZED, message, field)


def not_implemented(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.NOT_IMPLEMENTED, message, field)


def upstream_failed(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.UPSTREAM_FAILED, message, field)


def timeout(message: str, field: str | None = None) -> DomainError:
    return DomainError(ErrorKind.TIMEOUT, message, field)
