"""/metrics off the event loop: one render for concurrent scrapes, a page reused briefly, renderers that copy."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from service import web
from service.accounts import AccountRef
from service.clock import SystemClock
from service.config import Config
from service.daemon import Daemon
from service.detection.engine import DetectionEngine
from service.detection.metrics import ScoreExposition
from service.exposition import snapshot
from service.samples import Sample
from service.web import METRICS_PAGE, HttpServer, MetricsPage, ServingBudget, build_app


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowRender:
    """A render that waits until released, counting its calls and noting the thread it ran in."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.threads: list[str] = []

    def __call__(self) -> bytes:
        self.calls += 1
        self.threads.append(threading.current_thread().name)
        assert self.release.wait(10)
        return f"page {self.calls}\n".encode()


async def test_concurrent_scrapes_share_one_render_made_off_the_event_loop() -> None:
    render, clock = SlowRender(), Clock()
    page = MetricsPage(render, clock=clock)
    waiting = [asyncio.ensure_future(page.get()) for _ in range(50)]
    ticks = 0
    while ticks < 5:  # the event loop goes on while the page renders
        await asyncio.sleep(0.01)
        ticks += 1
    render.release.set()
    pages = await asyncio.gather(*waiting)
    page.close()
    assert set(pages) == {b"page 1\n"} and render.calls == 1
    assert render.threads[0].startswith("flockwatch-metrics")


async def test_a_page_is_reused_for_a_second_then_rendered_again() -> None:
    render, clock = SlowRender(), Clock()
    render.release.set()
    page = MetricsPage(render, clock=clock)
    assert await page.get() == b"page 1\n"
    clock.now = 0.9
    assert await page.get() == b"page 1\n"
    clock.now = 1.01
    assert await page.get() == b"page 2\n"
    page.close()


async def test_a_failed_render_fails_those_waiting_and_the_next_scrape_renders_again() -> None:
    outcomes = iter([RuntimeError("board changed"), b"page\n"])

    def render() -> bytes:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    page = MetricsPage(render, clock=Clock())
    with pytest.raises(RuntimeError):
        await page.get()
    assert await page.get() == b"page\n"
    page.close()


async def test_a_big_page_kept_only_gzipped_is_still_served_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    # Once scrapers ask for gzip, a big page is kept compressed only; a plain scrape still gets it whole.
    monkeypatch.setattr("service.web.KEEP_PLAIN", 1000)
    monkeypatch.setattr("service.web.INFLATE_PIECE", 100)  # decompressed in many pieces
    body = [f"metric_{i} {i}\n".encode() for i in range(500)]
    clock = Clock()
    page = MetricsPage(lambda: body, clock=clock)
    await page.get(gzipped=True)  # scrapers want gzip: the next render compresses in the render
    clock.now = 5.0
    zipped = await page.get(gzipped=True)
    size, _ = await page.pieces()
    plain = await page.get()
    page.close()
    assert gzip.decompress(zipped) == plain == b"".join(body)
    assert size == len(plain)


@pytest.mark.parametrize("pieces", [1, 7])
async def test_gzip_is_served_to_scrapers_that_ask_for_it(pieces: int) -> None:
    # A page rendered in pieces (the daemon renders one per family) is served whole, plain and gzipped.
    body = b"".join(f"# HELP x{i} y\n".encode() for i in range(1000))
    cut = len(body) // pieces
    parts = [body[i * cut : (i + 1) * cut if i < pieces - 1 else len(body)] for i in range(pieces)]
    page = MetricsPage(lambda: parts, clock=Clock())
    app = build_app(CollectorRegistry(), _ready, page=page)
    server = HttpServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.bound_port}/metrics"
        async with httpx.AsyncClient() as http:
            zipped = await http.get(url, headers={"Accept-Encoding": "gzip"})
            plain = await http.get(url, headers={"Accept-Encoding": "identity"})
    finally:
        await server.stop()
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.content == body
    assert int(zipped.headers["Content-Length"]) < len(body) / 5
    assert "Content-Encoding" not in plain.headers and plain.content == body
    assert int(plain.headers["Content-Length"]) == len(body)


class SentAside:
    """Counts the pages the server hands to a worker thread to send."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._send = web._send_blocking
        monkeypatch.setattr("service.web._send_blocking", self)
        monkeypatch.setattr("service.web.SEND_ASIDE", 1000)
        monkeypatch.setattr("service.web.SEND_BATCH", 3000)  # several blocking calls per page

    def __call__(self, fd: int, pieces: Iterator[bytes]) -> float:
        self.calls += 1
        return self._send(fd, pieces)


@pytest.mark.parametrize("kept_gzipped", [False, True])
async def test_a_big_page_sent_aside_arrives_whole_and_the_connection_goes_on(
    monkeypatch: pytest.MonkeyPatch, kept_gzipped: bool
) -> None:
    # A big page goes from a worker thread straight to the socket; the connection serves requests after.
    aside = SentAside(monkeypatch)
    monkeypatch.setattr("service.web.KEEP_PLAIN", 1000 if kept_gzipped else 1 << 30)
    body = [f"metric_{i} {i}\n".encode() for i in range(5000)]
    page = MetricsPage(lambda: body, clock=Clock())
    server = HttpServer(build_app(CollectorRegistry(), _ready, page=page), "127.0.0.1", 0)
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.bound_port}"
        limits = httpx.Limits(max_connections=1)  # every request on one kept-alive connection
        async with httpx.AsyncClient(limits=limits) as http:
            zipped = await http.get(url + "/metrics", headers={"Accept-Encoding": "gzip"})
            plain = [
                await http.get(url + "/metrics", headers={"Accept-Encoding": "identity"}) for _ in range(2)
            ]
            alive = await http.get(url + "/healthz")
    finally:
        await server.stop()
    assert zipped.content == b"".join(body)
    assert [p.content for p in plain] == [b"".join(body)] * 2 and alive.text == "ok\n"
    assert aside.calls == 3  # the gzipped page is over the size too


async def test_a_client_that_leaves_during_a_page_sent_aside_harms_no_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    SentAside(monkeypatch)
    body = [b"x" * 1023 + b"\n"] * (48 << 10)  # 48 MiB: more than the socket buffers hold
    page = MetricsPage(lambda: body, clock=Clock())
    server = HttpServer(build_app(CollectorRegistry(), _ready, page=page), "127.0.0.1", 0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.bound_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(1 << 20)
        writer.transport.abort()  # gone with most of the page unread
        async with httpx.AsyncClient(timeout=30) as http:
            whole = await http.get(
                f"http://127.0.0.1:{server.bound_port}/metrics", headers={"Accept-Encoding": "identity"}
            )
    finally:
        await server.stop()
    assert len(whole.content) == 48 << 20


async def _ready() -> list[str]:
    return []


def fetch(url: str, took: list[float]) -> None:
    started = time.perf_counter()
    httpx.get(url, timeout=10)
    took.append(time.perf_counter() - started)


async def test_the_server_answers_while_the_daemons_event_loop_is_busy() -> None:
    """A poll holding the daemon's loop for a second does not hold up a scrape (the server has its own loop)."""
    server = HttpServer(build_app(CollectorRegistry(), _ready), "127.0.0.1", 0)
    await server.start()
    took: list[float] = []
    try:
        scraper = threading.Thread(target=fetch, args=(f"http://127.0.0.1:{server.bound_port}/metrics", took))
        scraper.start()
        time.sleep(1.0)  # noqa: ASYNC251 - on purpose: the daemon's loop busy with something else
        scraper.join()
    finally:
        await server.stop()
    assert took and took[0] < 0.5


async def test_the_serving_budget_holds_requests_once_a_quarter_second_of_cpu_is_spent() -> None:
    cpu, clock = Clock(), Clock()
    budget = ServingBudget(cpu=cpu, clock=clock)
    await asyncio.wait_for(budget.wait(), 1)
    cpu.now = 0.3
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(budget.wait(), 0.05)
    clock.now = 1.0
    await asyncio.wait_for(budget.wait(), 1)
    assert budget.waited >= 1


def test_snapshot_takes_the_copy_again_when_the_loop_changed_a_dictionary() -> None:
    accounts = {"a": 1, "b": 2}
    attempts = []

    def items() -> Iterator[int]:
        attempts.append(1)
        for value in accounts.values():
            if len(attempts) == 1:
                accounts["c"] = 3  # what the event loop does between two steps of the render thread
            yield value

    assert snapshot(items) == [1, 2, 3] and len(attempts) == 2


def test_scores_page_leaves_out_an_account_the_engine_forgot_meanwhile() -> None:
    engine = DetectionEngine()
    refs = [AccountRef("x", "kept"), AccountRef("x", "forgotten")]
    at = datetime(2026, 11, 26, tzinfo=UTC)
    for ref in refs:
        engine.observe(Sample(ref, at, 100))
        engine.observe(Sample(ref, at + timedelta(hours=1), 110))
    tokens = list(engine.score_tokens())
    engine.keep_only({refs[0]})
    forgetful = ScoreExposition(engine)
    forgetful._engine = type(
        "Stale", (), {"score_tokens": lambda _: iter(tokens), "scores_of": engine.scores_of}
    )()  # type: ignore[assignment]
    page = forgetful.render().decode()
    assert 'account="kept"' in page and 'account="forgotten"' not in page


@pytest.mark.parametrize("scores", [True, False])
async def test_the_anomaly_scores_can_be_left_out_of_the_page(tmp_path: Path, scores: bool) -> None:
    config = Config.model_validate(
        {"database": {"url": f"sqlite:///{tmp_path / 'page.db'}"}, "http": {"anomaly_scores": scores}}
    )
    daemon = Daemon(config, clock=SystemClock(), registry=CollectorRegistry())
    at = datetime(2026, 11, 26, tzinfo=UTC)
    daemon.detection_engine.observe(Sample(AccountRef("x", "someone"), at, 100))
    daemon.board.keep_only({AccountRef("x", "someone")})
    try:
        page = (await daemon.http._app[METRICS_PAGE].get()).decode()
    finally:
        daemon.engine.dispose()
        await daemon.http.stop()
    assert ("flockwatch_anomaly_score{" in page) is scores
    assert 'flockwatch_account_state{account="someone",platform="x",state="pending"} 1.0' in page


async def test_when_renders_are_slow_a_scrape_gets_the_previous_page_while_the_next_renders() -> None:
    render, clock = SlowRender(), Clock()
    render.release.set()
    page = MetricsPage(render, clock=clock, slow=0.0, max_stale=60.0)
    assert await page.get() == b"page 1\n"  # nothing rendered yet: the first scrape waits
    render.release.clear()

    clock.now = 15.0
    assert await page.get() == b"page 1\n"  # served at once, while page 2 renders
    await asyncio.sleep(0.05)
    assert render.calls == 2
    render.release.set()
    await asyncio.sleep(0.05)
    clock.now = 30.0
    render.release.clear()
    assert await page.get() == b"page 2\n"  # what the previous scrape's render made

    render.release.set()
    await asyncio.sleep(0.05)
    render.release.clear()
    clock.now = 100.0  # the newest page (page 3, rendered at 30 s) is now too old to serve
    waiting = asyncio.ensure_future(page.get())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    render.release.set()
    assert await waiting == b"page 4\n"
    page.close()


async def test_a_fast_render_is_always_waited_for() -> None:
    render, clock = SlowRender(), Clock()
    render.release.set()
    page = MetricsPage(render, clock=clock)  # renders here take far less than the slow threshold
    assert await page.get() == b"page 1\n"
    clock.now = 15.0
    assert await page.get() == b"page 2\n"
    page.close()
