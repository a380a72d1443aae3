"""The daemon: watchlist → scheduler → pollers → writer → database, with /metrics served from the board."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import timedelta

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from service import __version__
from service.board import Board
from service.clock import Clock
from service.config import Config, parse_listen
from service.detection.engine import DetectionEngine
from service.detection.metrics import DetectionCollector, ScoreExposition
from service.detection.recorder import DetectionRecorder
from service.exposition import AccountExposition
from service.metrics import ServiceMetrics
from service.poller import Poller, SampleListener
from service.samples import AccountState
from service.scheduler import PollScheduler
from service.sources.base import Source
from service.sources.hosts import guarded_transport
from service.sources.metrics import SourceMetrics
from service.sources.planning import CyclePlanner
from service.sources.registry import UnsupportedPlatform, build_source
from service.store.database import check_reachable, open_engine, safe_url, upgrade
from service.store.repository import AccountUpdate, Store, WatchedAccount
from service.web import HttpServer, build_app, web_guard
from service.writer import SampleWriter

log = logging.getLogger(__name__)

WATCHLIST_REFRESH = timedelta(seconds=30)
WARM_HISTORY = timedelta(days=8)


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        registry: CollectorRegistry,
        transport: httpx.AsyncBaseTransport | None = None,
        listeners: Sequence[SampleListener] = (),
        engine: Engine | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.registry = registry
        self.engine = engine or open_engine(config.database.url)
        self.store = Store(self.engine)
        self.board = Board()
        self.metrics = ServiceMetrics(registry)
        self.exposition = AccountExposition(self.board)
        self.source_metrics = SourceMetrics(registry)
        self.cycles = CyclePlanner(self.source_metrics)
        self.writer = SampleWriter(self.store, self.metrics)
        self._transport = transport
        self.detection_engine = DetectionEngine()
        DetectionCollector(self.detection_engine, registry)
        self.scores = ScoreExposition(self.detection_engine)
        self.recorder = DetectionRecorder(self.detection_engine, self.engine, clock)
        self._listeners = [self.recorder, *listeners]
        self._sources: dict[str, Source] = {}
        self._pollers: dict[str, Poller] = {}
        self._watched: list[WatchedAccount] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._writer_task: asyncio.Task[None] | None = None
        self.scheduler = PollScheduler(self._poll_group, config.poll.jitter, self._interval_of)
        host, port = parse_listen(config.http.listen)
        sections = [self.exposition.render, *([self.scores.render] if config.http.anomaly_scores else [])]
        guard = web_guard(config.http.web_config_file)
        self.http = HttpServer(build_app(registry, self._readiness, sections, guard=guard), host, port, guard)

    @property
    def metrics_url(self) -> str:
        host, _ = parse_listen(self.config.http.listen)
        return f"{self.http.scheme}://{_url_host(host)}:{self.http.bound_port}/metrics"

    async def start(self) -> None:
        """Migrate, load the watchlist, start polling and serving. Raises ``DatabaseError`` if the database is unusable."""
        await asyncio.to_thread(upgrade, self.engine)
        await asyncio.to_thread(self._sync_config_watchlist)
        await self.refresh_watchlist()
        await asyncio.to_thread(self._warm_board)
        warmed = await self.recorder.warm_up()
        self.detection_engine.keep_only({account.ref for account in self._watched})
        log.info("detection engine warmed up", extra={"samples": warmed})
        self.scheduler.start()
        self._writer_task = asyncio.create_task(self.writer.run())
        self._tasks = [self._writer_task, asyncio.create_task(self._refresh_loop())]
        await self.http.start()
        log.info(
            "flockwatch started",
            extra={
                "version": __version__,
                "accounts": len(self._watched),
                "database": safe_url(self.config.database.url),
                "metrics": self.metrics_url,
            },
        )

    async def stop(self) -> None:
        """Finish polls under way, write every pending sample, then close."""
        await self.scheduler.drain()
        self.writer.close()
        for task in self._tasks:
            if task is not self._writer_task:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lost = await self.writer.drain()
        for source in self._sources.values():
            await source.aclose()
        await self.http.stop()
        self.engine.dispose()
        if lost:
            log.error("database unreachable at exit: samples not written", extra={"samples": lost})
        log.info("flockwatch stopped", extra={"unwritten_samples": lost})

    def _sync_config_watchlist(self) -> None:
        now = self.clock.now()
        for entry in self.config.watchlist:
            self.store.watch(entry.account, now, entry.interval)

    async def refresh_watchlist(self) -> None:
        self._watched = await asyncio.to_thread(self.store.watched)
        watched = {account.ref for account in self._watched}
        self.board.keep_only(watched)
        self.detection_engine.keep_only(watched)
        for account in self._watched:
            view = self.board.view(account.ref)
            view.state, view.last_error = account.state, account.last_error
            view.last_polled_at = view.last_polled_at or account.last_polled_at
        # stretch intervals first when the watchlist would outrun a platform's rate limit
        wanted = [(a.ref, self.config.interval_for(a.ref, a.interval)) for a in self._watched]
        self.cycles.plan(self.config, wanted)
        self.scheduler.plan(self._watched)

    def _warm_board(self) -> None:
        for sample in self.store.recent_samples(self.clock.now() - WARM_HISTORY):
            self.board.record_sample(sample)

    async def _refresh_loop(self) -> None:
        """Pick up `watch add|remove` made while running (and stable ids learned by polls)."""
        while True:
            await asyncio.sleep(WATCHLIST_REFRESH.total_seconds())
            try:
                await self.refresh_watchlist()
            except SQLAlchemyError:
                log.debug("watchlist refresh skipped: database unreachable")

    def _interval_of(self, account: WatchedAccount) -> timedelta:
        wanted = self.config.interval_for(account.ref, account.interval)
        return self.cycles.stretch(account.ref.platform, wanted)

    async def _poll_group(self, platform: str, accounts: Sequence[WatchedAccount]) -> None:
        poller = self._poller(platform)
        if poller is None:
            self._mark_unpollable(platform, accounts)
            return
        await poller.poll(accounts)

    def _poller(self, platform: str) -> Poller | None:
        if platform not in self._pollers:
            try:
                source = self._build_source(platform)
            except UnsupportedPlatform:
                return None
            self._sources[platform] = source
            self._pollers[platform] = Poller(
                source, self.writer, self.board, self.metrics, self.clock, self._listeners
            )
        return self._pollers[platform]

    def _build_source(self, platform: str) -> Source:
        settings = self.config.platforms.of(platform)
        transport = self._transport
        if transport is None and platform == "mastodon" and not settings.base_url:
            # Hosts come from handles: connect only to the address the SSRF check approved.
            transport = guarded_transport(settings.allow_hosts)
        client = httpx.AsyncClient(
            timeout=self.config.poll.timeout.total_seconds(),
            transport=transport,
            headers={"User-Agent": f"flockwatch/{__version__}"},
            follow_redirects=False,
        )
        return build_source(platform, settings, client, self.clock, metrics=self.source_metrics)

    def _mark_unpollable(self, platform: str, accounts: Sequence[WatchedAccount]) -> None:
        now = self.clock.now()
        message = f"flockwatch cannot poll {platform} accounts"
        updates = [AccountUpdate(a.id, now, AccountState.ERRORING, message) for a in accounts]
        self.writer.submit([], updates)
        for account in accounts:
            self.board.record_state(account.ref, AccountState.ERRORING, message, now)

    async def _readiness(self) -> list[str]:
        problems = []
        try:
            await asyncio.wait_for(asyncio.to_thread(check_reachable, self.engine), timeout=3)
        except Exception as exc:  # any failure to answer means not ready; the reason is reported
            problems.append(f"database: {exc}" if str(exc) else "database: no answer")
        if not self.scheduler.running:
            problems.append("scheduler: not running")
        return problems


def _url_host(host: str) -> str:
    if ":" in host:
        return f"[{host}]"
    return "127.0.0.1" if host in ("0.0.0.0", "") else host
