"""Shared pieces of the management API: the gateway dependency and error mapping."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rustyray.errors import DomainError
from serve_apps.errors import error_response
from serve_apps.gateway import NodeUnavailable

PREFIX = "/api/v1/network"
NodeParam = Query(None, description="Ask this node for its own view (default: the node the API fronts)")


def gateway(request: Request) -> Any:
    return request.app.state.gateway


async def call(request: Request, service: str, method: str, node: str | None = None, /, **kwargs: Any) -> Any:
    """Run ``service.api_<method>`` on the requested (or fronted) node."""
    gw = gateway(request)
    node_id = await gw.fronted(node, trust=node is None)
    try:
        return await gw.call(node_id, service, method, **kwargs)
    except NodeUnavailable:
        if node is not None:
            raise  # the caller asked for that node: its absence is the answer
        # The fronted node died since it last answered: pick a live one (checked) and ask it instead.
        retry = await gw.fronted(None)
        if retry == node_id:
            raise
        return await gw.call(retry, service, method, **kwargs)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Every error is JSON: ``{"error": message, "status": code, "field": name?}``."""

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return error_response(exc)  # the status comes from serve_apps.errors.HTTP_STATUS

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
        field = _field(tuple(first.get("loc", ())))
        detail = [{"field": _field(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in errors]
        return JSONResponse({"error": f"{field}: {first.get('msg', 'invalid')}", "status": 422, "field": field,
                             "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail), "status": exc.status_code}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug or unexpected failure (in a route or, in process, in a service): 500, traceback logged."""
        import logging

        logging.getLogger("rustyray.api").error("unhandled error in %s %s", request.method, request.url.path,
                                                exc_info=exc)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}", "status": 500},
                            status_code=500)
