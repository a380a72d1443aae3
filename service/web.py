"""The daemon's HTTP endpoints: /metrics for Prometheus, /healthz (alive) and /readyz (able to work)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessCheck = Callable[[], Awaitable[list[str]]]
PageSection = Callable[[], bytes]


def build_app(
    registry: CollectorRegistry, readiness: ReadinessCheck, sections: Sequence[PageSection] = ()
) -> web.Application:
    """``sections`` render further metric families after the registry's (the per-account series)."""

    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest(registry) + b"".join(section() for section in sections)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_request: web.Request) -> web.Response:
        problems = await readiness()
        status = 503 if problems else 200
        body = json.dumps({"ready": not problems, "problems": problems}) + "\n"
        return web.Response(status=status, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class HttpServer:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._host, self._port = host, port
        self.bound_port = port

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.bound_port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await asyncio.wait_for(self._runner.cleanup(), timeout=5)
