"""The daemon's HTTP endpoints: /metrics for Prometheus, /healthz (alive) and /readyz (able to work).

Nothing of it runs on the event loop that polls. The server has a thread and an event loop of its own, and
/metrics is rendered in a worker thread: concurrent scrapes wait for one render and share its page, and a page is
served again while it is younger than a second (or than its render took, if longer), so any number of scrapers
cost at most one render at a time, and rendering at most half the time. A scraper that accepts gzip (Prometheus
does) gets the page compressed once per render, in the worker thread (in the render itself once gzip was asked).
When rendering is costly (a quarter of a CPU second or more: tens of thousands of accounts), a scrape does not wait
for it: it gets the page rendered for the scrape before (never older than two minutes) while the next one renders,
so the values it reads are one scrape interval old, and each scrape still costs one render. The page is rendered,
kept and sent in pieces; the per-account pieces come deflated already (``service.deflate``) and are spliced into the
gzipped page as they are, so a scrape where no account changed compresses only the service's own families. Once
scrapers ask for gzip, a page over 8 MiB is kept only compressed (100 MB of text at 100,000 accounts is about 7 MB
gzipped) and inflated a piece at a time for the odd plain request. A page over 8 MiB on a connection without TLS is
sent by a worker thread in a few blocking calls rather than by the server's loop in many turns.

With a web configuration file (``service.webconfig``) the server speaks TLS and asks for basic auth as Prometheus
exporters do. As in the exporter-toolkit, authentication covers every path, /healthz and /readyz included. The file
and the certificates it names are looked at (one ``stat`` each) on every request and every TLS handshake; a change
takes effect at once, so certificates rotate by replacing the files. While a changed file is invalid, requests are
answered 500 and handshakes refused, with the problem logged, until it is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import os
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from service.basicauth import BasicAuth
from service.deflate import Deflated, GzipPage, Piece, gzipped, plain
from service.memory import give_back
from service.webconfig import WebConfig, WebConfigError, load_web_config

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Coroutine[Any, Any, list[str]]]
PageSection = Callable[[], Iterable[Piece]]  # pieces of the page, in order (a generator may make them)
Page = tuple[bytes, ...]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PAGE_MIN_AGE = 1.0  # seconds a rendered page is served again
SLOW_RENDER = (
    0.25  # CPU seconds: a render this costly has scrapes served the previous page while the next renders
)
PAGE_MAX_STALE = 120.0  # seconds: the oldest page a scrape is served while a new one renders
KEEP_PLAIN = 8 << 20  # bytes: a page above this is kept only gzipped once scrapers ask for gzip
INFLATE_PIECE = 1 << 20  # bytes of a page kept only gzipped decompressed at a time for a plain scrape
SEND_ASIDE = 8 << 20  # bytes: a page above this is sent by a worker thread in a few blocking calls
SEND_BATCH = 16 << 20  # bytes handed to the kernel in one blocking call when sent aside
SEND_STALL = 30  # seconds without progress after which a page sent aside gives up on its client
SERVING_SHARE = 0.25  # of a core, at most, for answering requests


@dataclass
class _Rendered:
    page: Page  # pieces: at 100,000 accounts the page is about 100 MB, never copied into one
    took: float
    cpu: float = 0.0  # CPU seconds of the render's thread: what the page costs, whatever the machine's load
    compressed: bytes | None = None  # compressed in the render, once scrapers asked for gzip
    at: float = -math.inf  # clock time the render ended
    gzipped: asyncio.Future[bytes] | None = None  # compressed once, when a scraper first asks for gzip


class MetricsPage:
    """The /metrics page, rendered off the event loop; scrapes that come while it renders share the render."""

    def __init__(
        self,
        render: Callable[[], bytes | Iterable[Piece]],
        *,
        min_age: float = PAGE_MIN_AGE,
        slow: float = SLOW_RENDER,
        max_stale: float = PAGE_MAX_STALE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._render, self._min_age, self._clock = render, min_age, clock
        self._slow, self._max_stale = slow, max_stale
        self._gzip_wanted = False
        self._current = _Rendered((), 0.0)
        self._fresh_until = -math.inf
        self._rendering: asyncio.Future[_Rendered] | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flockwatch-metrics")
        self.renders = 0

    async def get(self, gzipped: bool = False) -> bytes:
        _, pieces = await self.pieces(gzipped)
        return b"".join(pieces)

    async def pieces(
        self, gzipped: bool = False, inflate: int = INFLATE_PIECE
    ) -> tuple[int, Iterator[bytes]]:
        """The page's length in bytes and its pieces: as rendered, gzipped in one piece, or inflated ``inflate``
        bytes at a time (as they are taken) from a page kept only gzipped."""
        rendered = await self._fresh()
        if gzipped:
            body = await self._gzipped(rendered)
            return len(body), iter((body,))
        if rendered.page or rendered.compressed is None:
            return sum(len(piece) for piece in rendered.page), iter(rendered.page)
        compressed = rendered.compressed
        return struct.unpack("<I", compressed[-4:])[0], _inflated(compressed, inflate)

    async def _gzipped(self, rendered: _Rendered) -> bytes:
        self._gzip_wanted = True
        if rendered.compressed is not None:
            return rendered.compressed
        if rendered.gzipped is None:
            loop = asyncio.get_running_loop()
            rendered.gzipped = loop.run_in_executor(
                self._worker, gzipped, rendered.page
            )  # zlib lets the GIL go
        return await asyncio.shield(rendered.gzipped)

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    async def _fresh(self) -> _Rendered:
        now = self._clock()
        if now < self._fresh_until:
            return self._current
        if self._rendering is None:
            loop = asyncio.get_running_loop()
            self._rendering = loop.run_in_executor(self._worker, self._timed_render)
            self._rendering.add_done_callback(self._rendered)
        if self._serves_previous(now):
            return self._current  # the render goes on for the next scrape
        return await asyncio.shield(self._rendering)

    def _serves_previous(self, now: float) -> bool:
        """Whether a scrape gets the page already rendered instead of waiting: renders are slow, and the
        page is not too old."""
        current = self._current
        return current.cpu >= self._slow and now - current.at <= self._max_stale

    def _timed_render(self) -> _Rendered:
        started, cpu = time.perf_counter(), time.thread_time()
        give_back()  # the pages before this one
        made = self._render()
        pieces = (made,) if isinstance(made, bytes) else made
        page, compressed = _compressed(pieces) if self._gzip_wanted else (tuple(map(plain, pieces)), None)
        del made, pieces
        give_back()  # the text this render built
        return _Rendered(page, time.perf_counter() - started, time.thread_time() - cpu, compressed)

    def _rendered(self, done: asyncio.Future[_Rendered]) -> None:
        self._rendering = None
        if done.cancelled() or done.exception() is not None:
            return  # every waiter gets the exception; the next scrape tries again
        self._current = done.result()
        self._current.at = self._clock()
        self.renders += 1
        self._fresh_until = self._clock() + max(self._min_age, self._current.took)


def _compressed(pieces: Iterable[Piece]) -> tuple[Page, bytes]:
    """The pieces (as they come) gzipped, those deflated already spliced in, and kept as text as well unless
    the page is big: a big page is never held whole, only compressed; the odd plain scrape has it inflated."""
    gzip = GzipPage()
    kept: list[Piece] = []
    size = 0
    for piece in pieces:
        gzip.add(piece)
        size += piece.size if isinstance(piece, Deflated) else len(piece)
        if size <= KEEP_PLAIN:
            kept.append(piece)  # a reference: inflated below only if the whole page is small
    return (tuple(map(plain, kept)) if size <= KEEP_PLAIN else ()), gzip.finish()


def _inflated(compressed: bytes, size: int) -> Iterator[bytes]:
    """A gzipped page, decompressed ``size`` bytes at a time: a plain scrape of a page kept only compressed never
    holds the whole text."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = compressed
    while data:
        # On the server's own loop or a worker (never the loop that polls): a piece takes a few milliseconds.
        piece = inflater.decompress(data, size)
        data = inflater.unconsumed_tail
        yield piece
    rest = inflater.flush()
    if rest:
        yield rest


def accepts_gzip(request: web.Request) -> bool:
    offered = request.headers.get("Accept-Encoding", "")
    return "gzip" in (part.split(";")[0].strip().lower() for part in offered.split(","))


METRICS_PAGE = web.AppKey("metrics_page", MetricsPage)
HOME_LOOP = web.AppKey("home_loop", asyncio.AbstractEventLoop)


class WebGuard:
    """The web configuration file as the server applies it, re-read when it or a file it names changes."""

    def __init__(self, path: Path) -> None:
        self.config = load_web_config(path)  # raises WebConfigError: nothing starts on a bad file
        self._path = path
        self._stamp = _stamps(self.config.watched_files())
        self._problem: WebConfigError | None = None
        self.auth = BasicAuth()
        limit = self.config.file.rate_limit
        self.rate = RequestRate(limit.interval, limit.burst) if limit.interval > 0 else None

    @property
    def tls(self) -> ssl.SSLContext | None:
        """The context the listener starts with; each handshake switches to the current one."""
        context = self.config.tls
        if context is not None:
            context.sni_callback = self._on_handshake
        return context

    def current(self) -> WebConfig:
        """The configuration in force now; raises ``WebConfigError`` while a changed file is invalid."""
        stamp = _stamps((self._path, *self.config.file.tls_server_config.files()))
        if stamp != self._stamp:
            self._stamp = stamp
            self._reload()
        if self._problem is not None:
            raise self._problem
        return self.config

    def _reload(self) -> None:
        try:
            config = load_web_config(self._path)
        except WebConfigError as exc:
            log.error("web configuration not applied", extra={"file": str(self._path), "problem": str(exc)})
            self._problem = exc
            return
        if config.restart_settings() != self.config.restart_settings():
            log.warning(
                "web configuration changed a setting that applies at the next start",
                extra={"file": str(self._path)},
            )
        if config.tls is None and self.config.tls is not None:
            config = WebConfig(config.path, config.file, self.config.tls)  # TLS stays on until a restart
        self.config, self._problem = config, None
        self._stamp = _stamps(config.watched_files())
        log.info("web configuration reloaded", extra={"file": str(self._path)})

    def _on_handshake(
        self, connection: ssl.SSLObject, _server_name: str | None, _context: ssl.SSLContext
    ) -> int | None:
        try:
            current = self.current().tls
        except WebConfigError:
            return ssl.ALERT_DESCRIPTION_INTERNAL_ERROR
        if current is not None and connection.context is not current:
            connection.context = current
        return None

    async def check(self, request: web.Request) -> web.Response | None:
        """None when the request may go on, else the answer that refuses it."""
        try:
            config = self.current()
        except WebConfigError:
            return web.Response(status=500, text="web configuration is invalid; see the log\n")
        if self.rate is not None and not self.rate.allow():
            return web.Response(status=429, text="too many requests\n")
        if config.users and not await self.auth.allows(config.users, request.headers.get("Authorization")):
            return web.Response(status=401, text="unauthorized\n", headers={"WWW-Authenticate": "Basic"})
        if config.allowed_sans is not None and not _san_allowed(request, config.allowed_sans):
            return web.Response(status=403, text="client certificate not allowed\n")
        return None

    def close(self) -> None:
        self.auth.close()


def _stamps(paths: Sequence[Path]) -> tuple[object, ...]:
    """What tells a file changed, for each path: cheap enough to ask on every request."""
    found: list[object] = []
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            found.append(None)
            continue
        found.append((info.st_mtime_ns, info.st_size, info.st_ino))
    return tuple(found)


def _san_allowed(request: web.Request, allowed: Sequence[str]) -> bool:
    """Whether the verified client certificate carries one of the allowed Subject Alternative Names."""
    peer = request.transport.get_extra_info("peercert") if request.transport else None
    if not peer:
        return False
    names = {_san_text(kind, value) for kind, value in peer.get("subjectAltName", ())}
    return any(name in names for name in allowed)


def _san_text(kind: str, value: str) -> str:
    if kind == "IP Address":
        return str(ipaddress.ip_address(value.strip()))  # as Go writes it: 2001:db8::1, not 2001:DB8:0:...
    return value


class ServingBudget:
    """Caps the CPU time the server's thread spends answering: once it has used ``share`` of the current second,
    requests wait for the next. Scrapers that fetch back to back then slow themselves down instead of taking the
    interpreter from the polls (threads share one interpreter lock); a few Prometheus servers never reach it."""

    def __init__(
        self,
        share: float = SERVING_SHARE,
        cpu: Callable[[], float] = time.thread_time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._share, self._cpu, self._clock = share, cpu, clock
        self._window_start, self._cpu_at_start = clock(), cpu()
        self._aside = 0.0  # CPU seconds spent answering in worker threads (a big plain page sent aside)
        self.waited = 0

    def charge(self, cpu: float) -> None:
        """Count CPU seconds that answering spent outside the server's thread."""
        self._aside += cpu

    async def wait(self) -> None:
        while True:
            now, used = self._clock(), self._cpu() + self._aside
            if now - self._window_start >= 1.0:
                self._window_start, self._cpu_at_start = now, used
            if used - self._cpu_at_start < self._share:
                return
            self.waited += 1
            await asyncio.sleep(self._window_start + 1.0 - now)


class RequestRate:
    """The toolkit's ``rate_limit``: a token bucket refilled one token per ``interval``, holding ``burst``."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._burst, self._clock = interval, burst, clock
        self._tokens, self._at = float(burst), clock()

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) / self._interval)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


def build_app(
    registry: CollectorRegistry,
    readiness: ReadinessCheck,
    sections: Sequence[PageSection] = (),
    *,
    guard: WebGuard | None = None,
    page: MetricsPage | None = None,
    budget: ServingBudget | None = None,
) -> web.Application:
    """``sections`` render further metric families after the registry's (the per-account series)."""

    def render() -> Iterator[Piece]:
        yield generate_latest(registry)
        for section in sections:
            yield from section()

    page = page or MetricsPage(render)
    serving = budget or ServingBudget()

    async def metrics(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": CONTENT_TYPE_LATEST}
        if accepts_gzip(request):
            headers["Content-Encoding"] = "gzip"
        connection = _plain_socket(request)  # then big pieces: few turns of the interpreter lock
        inflate = INFLATE_PIECE if connection is None else SEND_BATCH
        size, pieces = await page.pieces("Content-Encoding" in headers, inflate)
        response = web.StreamResponse(headers=headers)
        response.content_length = size
        await response.prepare(request)
        if connection is not None and size > SEND_ASIDE:
            await _sent_aside(request, response, connection.fileno(), pieces, serving)
        else:
            for piece in pieces:
                await response.write(piece)
        await response.write_eof()
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        problems = await _on_home_loop(request.app, readiness)
        status = 503 if problems else 200
        body = json.dumps({"ready": not problems, "problems": problems}) + "\n"
        return web.Response(status=status, text=body, content_type="application/json")

    app = web.Application(middlewares=[_budgeted(serving), *([_guarded(guard)] if guard else [])])
    if guard is not None:
        app.on_response_prepare.append(_headers_of(guard))
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app[METRICS_PAGE] = page
    return app


def _plain_socket(request: web.Request) -> Any:
    """The connection's socket when the response can go straight to it (not through TLS), else None."""
    transport = request.transport
    if transport is None or transport.get_extra_info("ssl_object") is not None:
        return None
    return transport.get_extra_info("socket")


async def _sent_aside(
    request: web.Request,
    response: web.StreamResponse,
    fd: int,
    pieces: Iterator[bytes],
    budget: ServingBudget,
) -> None:
    """Send a big page from a worker thread, in a few blocking calls that let the interpreter lock go.

    Sent through the loop, 100 MB take a hundred or more turns as the socket drains, and each turn waits for
    the interpreter lock that the polls and the render hold: 1-2 s on a busy daemon instead of 0.3."""
    transport = request.transport
    assert transport is not None
    for piece in pieces:
        if piece:
            await response.write(piece)  # the headers go with it; the rest must follow what the loop sent
            break
    while transport.get_write_buffer_size():  # noqa: ASYNC110 - asyncio has no event for an emptied buffer
        await asyncio.sleep(0.001)
    transport.pause_reading()
    try:
        budget.charge(await asyncio.to_thread(_send_blocking, fd, pieces))
    except OSError:
        transport.close()  # the client went away or stalled: the page cannot be finished on this connection
    else:
        transport.resume_reading()


def _send_blocking(fd: int, pieces: Iterator[bytes]) -> float:
    """Send the pieces on a blocking duplicate of ``fd``, ``SEND_BATCH`` bytes per call; the CPU seconds it took."""
    cpu = time.thread_time()
    with socket.socket(fileno=os.dup(fd)) as sock:
        stall = struct.pack("ll", SEND_STALL, 0)
        sock.setblocking(True)  # the flag is shared with the loop's socket: restored below
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, stall)
        try:
            for batch in _batches(pieces, SEND_BATCH):
                sock.sendall(batch)
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 0))
            sock.setblocking(False)
    return time.thread_time() - cpu


def _batches(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    batch: list[bytes] = []
    held = 0
    for piece in pieces:
        batch.append(piece)
        held += len(piece)
        if held >= size:
            yield b"".join(batch)
            batch, held = [], 0
    if batch:
        yield b"".join(batch)


def _on_home_loop(app: web.Application, check: ReadinessCheck) -> Awaitable[list[str]]:
    """Run ``check`` on the daemon's event loop, where what it looks at lives (the server has a loop of its own)."""
    home = app.get(HOME_LOOP)
    if home is None or home is asyncio.get_running_loop():
        return check()
    return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(check(), home))


def _budgeted(budget: ServingBudget) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        await budget.wait()
        return await handler(request)

    return middleware


def _guarded(guard: WebGuard) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await guard.check(request) or await handler(request)

    return middleware


def _headers_of(guard: WebGuard) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """The configured response headers, added as any response is sent (a streamed /metrics page too)."""

    async def add(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(guard.config.headers)

    return add


class HttpServer:
    """Serves the app from a thread of its own, with its own event loop: however many scrapers come, their
    requests queue there and never among the polls on the daemon's loop."""

    def __init__(self, app: web.Application, host: str, port: int, guard: WebGuard | None = None) -> None:
        self._app = app
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._host, self._port = host, port
        self._guard = guard
        self._page = app.get(METRICS_PAGE)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.tls = guard.tls if guard else None
        self.bound_port = port

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    async def start(self) -> None:
        """Listen; raises ``OSError`` when the address cannot be bound."""
        self._app[HOME_LOOP] = asyncio.get_running_loop()
        started: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name="flockwatch-http", daemon=True
        )
        self._thread.start()
        await asyncio.wrap_future(started)

    async def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            cleanup = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wrap_future(cleanup), timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            await asyncio.to_thread(self._thread.join, 5)
        if self._page is not None:
            self._page.close()
        if self._guard is not None:
            self._guard.close()

    def _serve(self, started: Future[None]) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # reported to start(), which raises it in the daemon
            started.set_exception(exc)
            loop.close()
            return
        self._loop = loop
        started.set_result(None)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _listen(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, reuse_address=True, ssl_context=self.tls)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        if sockets:
            self.bound_port = int(sockets[0].getsockname()[1])


def web_guard(path: Path | str | None) -> WebGuard | None:
    """The guard for a web configuration file, None without one; raises ``WebConfigError`` for a bad file."""
    return WebGuard(Path(path)) if path else None
