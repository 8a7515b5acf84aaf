"""Errors that cross the service boundary (node -> actor -> Serve -> HTTP).

Why a plain value-carrying exception: it must survive pickling across Ray and map
one-to-one onto an HTTP status with a JSON body that names the offending field.
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the node refuses: ``status`` is the HTTP status, ``field`` the bad input."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def __reduce__(self):  # keep all three values when pickled by Ray
        return (ApiError, (self.status, self.message, self.field))

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"error": self.message, "status": self.status}
        if self.field:
            out["field"] = self.field
        return out


def bad_request(message: str, field: str | None = None) -> ApiError:
    return ApiError(400, message, field)


def unprocessable(message: str, field: str | None = None) -> ApiError:
    return ApiError(422, message, field)


def not_found(message: str, field: str | None = None) -> ApiError:
    return ApiError(404, message, field)


def conflict(message: str, field: str | None = None) -> ApiError:
    return ApiError(409, message, field)


def unavailable(message: str, field: str | None = None) -> ApiError:
    return ApiError(503, message, field)
