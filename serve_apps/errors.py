"""How a ``DomainError`` reads over HTTP: the one ``ErrorKind`` -> status table of the API.

Every place of the management API that turns a domain error into an answer (the FastAPI
exception handler, GraphQL error extensions, the body-limit middleware) goes through
``http_status`` / ``error_body`` here. The nodes never import it: a domain error carries
its kind, and only the API layer knows what that is in HTTP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rustyray.errors import DomainError, ErrorKind

if TYPE_CHECKING:
    from starlette.responses import JSONResponse

#: The one kind -> HTTP status table. A test fails when an ``ErrorKind`` is added without a status here.
HTTP_STATUS: dict[ErrorKind, int] = {
    ErrorKind.INVALID: 400,
    ErrorKind.UNAUTHORIZED: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.CONFLICT: 409,
    ErrorKind.PAYLOAD_TOO_LARGE: 413,
    ErrorKind.UNPROCESSABLE: 422,
    ErrorKind.TOO_MANY_REQUESTS: 429,
    ErrorKind.INTERNAL: 500,
    ErrorKind.NOT_IMPLEMENTED: 501,
    ErrorKind.UPSTREAM_FAILED: 502,
    ErrorKind.UNAVAILABLE: 503,
    ErrorKind.TIMEOUT: 504,
}


def http_status(exc: DomainError) -> int:
    return HTTP_STATUS[exc.kind]


def error_body(exc: DomainError) -> dict[str, object]:
    """The API's JSON error: ``{"error": message, "status": code, "field": name?}``."""
    out: dict[str, object] = {"error": exc.message, "status": http_status(exc)}
    if exc.field:
        out["field"] = exc.field
    return out


def error_response(exc: DomainError) -> JSONResponse:
    from starlette.responses import JSONResponse

    return JSONResponse(error_body(exc), status_code=http_status(exc))
