"""Request bodies over the cap are refused with the API's JSON error, declared or streamed."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from serve_apps.body_limit import BodyLimitMiddleware


def make_app(limit: int) -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    app.add_middleware(BodyLimitMiddleware, max_bytes=limit)
    read: list[int] = []

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        body = await request.body()
        read.append(len(body))
        return {"bytes": len(body)}

    return app, read


async def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_body_at_the_limit_passes_and_one_byte_more_is_413():
    app, read = make_app(1000)
    async with await client(app) as c:
        ok = await c.post("/echo", content=b"x" * 1000)
        assert ok.status_code == 200 and ok.json() == {"bytes": 1000}
        big = await c.post("/echo", content=b"x" * 1001)
        assert big.status_code == 413
        err = big.json()
        assert err["field"] == "body" and err["status"] == 413 and "1000 byte limit" in err["error"]
    assert read == [1000]  # the route never saw the oversize body


async def test_a_streamed_body_is_counted_and_cut_off():
    app, read = make_app(1000)

    async def chunks():
        for _ in range(50):
            yield b"y" * 100

    async with await client(app) as c:
        r = await c.post("/echo", content=chunks())  # chunked: no Content-Length to check up front
        assert r.status_code == 413 and r.json()["field"] == "body"
        assert (await c.post("/echo", content=b"z")).status_code == 200  # the app keeps serving
    assert read == [1]


async def test_the_management_api_has_the_limit(tmp_path):
    from harness import harness_auth

    from serve_apps.app import build_app
    from serve_apps.body_limit import MAX_BODY_BYTES
    from serve_apps.gateway import LocalGateway

    app = build_app(LocalGateway({}), harness_auth())
    async with await client(app) as c:
        r = await c.post("/api/v1/network/routing/send", content=b"{" + b" " * MAX_BODY_BYTES + b"}",
                         headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["field"] == "body"
