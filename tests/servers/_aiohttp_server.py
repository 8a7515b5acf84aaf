"""Start/stop an aiohttp application on a free 127.0.0.1 port (shared by the HTTP test doubles)."""

from __future__ import annotations

import ssl

from aiohttp import web


class LoopbackServer:
    """Runs ``app`` on 127.0.0.1 with an ephemeral port; ``base_url`` is valid after ``start``."""

    def __init__(self, app: web.Application, ssl_context: ssl.SSLContext | None = None) -> None:
        self._app = app
        self._ssl = ssl_context
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> str:
        self._runner = web.AppRunner(self._app, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.base_url

    @property
    def base_url(self) -> str:
        scheme = "https" if self._ssl else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
