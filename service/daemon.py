"""The daemon: watchlist → scheduler → pollers → spool → writer → database, with /metrics served from the board.

Start-up writes what the spool still holds, loads the watchlist once and each account's saved detection
state in bulk, then polls. Watchlist changes are read incrementally (the change log), account states
are saved every ``state.checkpoint``, rollups and retention run every ``retention.every``. Background
tasks are supervised: one that dies is logged with its traceback, shown in /readyz and restarted.
SIGTERM stops within ``shutdown.timeout``: polls under way finish (or are cancelled at their share of
it), the spool is written as far as the database allows (the rest stays on disk for the next start),
and states are saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from service import __version__
from service.board import Board
from service.clock import Clock
from service.cluster import Cluster
from service.config import Config, parse_listen
from service.detection.engine import DetectionEngine
from service.detection.metrics import DetectionCollector, ScoreExposition
from service.detection.recorder import DetectionRecorder
from service.exposition import AccountExposition
from service.metrics import ServiceMetrics
from service.poller import Poller
from service.samples import AccountState
from service.scheduler import PollScheduler
from service.sources.base import Source
from service.sources.hosts import guarded_transport
from service.sources.metrics import SourceMetrics
from service.sources.planning import CyclePlanner
from service.sources.registry import UnsupportedPlatform, build_source
from service.spool import Batch, Spool
from service.states import AccountStates
from service.store.database import DatabaseError, check_reachable, open_engine, safe_url, upgrade
from service.store.repository import AccountUpdate, Store, WatchedAccount
from service.store.rollups import Maintenance
from service.web import HttpServer, build_app, web_guard
from service.writer import SampleWriter

log = logging.getLogger(__name__)

WATCHLIST_REFRESH = timedelta(seconds=30)
RESTART_DELAY = 5.0


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock,
        registry: CollectorRegistry,
        transport: httpx.AsyncBaseTransport | None = None,
        engine: Engine | None = None,
        spool: Spool | None = None,
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
        self.spool = spool or Spool(spool_path(config), config.spool.max_size)
        self.writer = SampleWriter(self.store, self.metrics, self.spool)
        self._transport = transport
        self.detection_engine = DetectionEngine()
        DetectionCollector(self.detection_engine, registry)
        self.scores = ScoreExposition(self.detection_engine)
        self.recorder = DetectionRecorder(self.detection_engine)
        self.states = AccountStates(self.store, self.detection_engine, self.board, self.recorder, clock)
        self.maintenance = Maintenance(self.engine, config.retention)
        self.cluster = Cluster(self.engine, config.cluster, replica_name(config))
        self.accounts: dict[int, WatchedAccount] = {}  # the watched accounts this daemon polls
        self._version = 0  # the newest watchlist change taken in
        self._sources: dict[str, Source] = {}
        self._pollers: dict[str, Poller] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._down: dict[str, str] = {}  # task -> why it is not running
        self.scheduler = PollScheduler(
            self._poll_group, config.poll.jitter, self._interval_of, clock, batch_size=self._batch_size
        )
        host, port = parse_listen(config.http.listen)
        sections = [self.exposition.render, *([self.scores.render] if config.http.anomaly_scores else [])]
        guard = web_guard(config.http.web_config_file)
        self.http = HttpServer(build_app(registry, self._readiness, sections, guard=guard), host, port, guard)

    @property
    def metrics_url(self) -> str:
        host, _ = parse_listen(self.config.http.listen)
        return f"{self.http.scheme}://{_url_host(host)}:{self.http.bound_port}/metrics"

    # -- start and stop ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate, write the spool's backlog, load the watchlist and states, start polling and serving.
        Raises ``DatabaseError`` if the database is unusable."""
        await self._wait_for_database()
        await asyncio.to_thread(upgrade, self.engine)
        if self.spool.pending_samples or self.spool.pending_batches:
            log.info(
                "writing what the spool kept from the last run", extra={"samples": self.spool.pending_samples}
            )
            await self.writer.flush()
        await asyncio.to_thread(self._sync_config_watchlist)
        self._version = await asyncio.to_thread(self.store.watchlist_version)
        watched = await asyncio.to_thread(self.store.watched)
        await self.states.load_platforms()
        if self.cluster.shared:
            await self.cluster.beat(self._acquire, self._release)
        else:
            await self._take_in(watched)
        self.scheduler.start()
        self._supervise("writer", self.writer.run)
        if self.cluster.shared:
            self._supervise("cluster", self._cluster_loop)
        self._supervise("watchlist", self._refresh_loop)
        self._supervise("checkpoint", self._checkpoint_loop)
        self._supervise("maintenance", self._maintenance_loop)
        await self.http.start()
        log.info(
            "flockwatch started",
            extra={
                "version": __version__,
                "accounts": len(self.accounts),
                "database": safe_url(self.config.database.url),
                "spool": str(self.spool.path),
                "metrics": self.metrics_url,
            },
        )

    async def _wait_for_database(self) -> None:
        """An unreachable database at start is waited for (``database.start_timeout``), not given up on at once:
        after a crash during an outage, the spool is written as soon as the database is back."""
        deadline = time.monotonic() + self.config.database.start_timeout.total_seconds()
        delay = 0.5
        while True:
            try:
                await asyncio.to_thread(check_reachable, self.engine)
                return
            except DatabaseError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                if delay == 0.5:
                    log.error("database unreachable at start; waiting for it", extra={"reason": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def stop(self) -> None:
        """Finish polls under way, write the spool, save states, close; within ``shutdown.timeout``."""
        budget = self.config.shutdown.timeout.total_seconds()
        deadline = time.monotonic() + budget
        for poller in self._pollers.values():
            poller.stopping = True
        cancelled = await self.scheduler.drain(seconds=budget * 0.4)
        self.writer.close()
        for name, task in self._tasks.items():
            if name != "writer":
                task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        left = await self.writer.drain(seconds=max(deadline - time.monotonic(), 1.0) * 0.7)
        await self._save_states(deadline)
        await self._leave_cluster()
        for source in self._sources.values():
            await source.aclose()
        await self.http.stop()
        self.spool.close()
        self.engine.dispose()
        if left:
            log.error(
                "database unreachable at exit: samples kept in the spool for the next start",
                extra={"samples": left, "spool": str(self.spool.path)},
            )
        log.info("flockwatch stopped", extra={"unwritten_samples": left, "polls_cancelled": cancelled})

    async def _save_states(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0.5:
            log.warning("no time left to save detection states; the next start replays samples instead")
            return
        try:
            saved = await asyncio.wait_for(self.states.checkpoint(list(self.accounts.values())), remaining)
        except Exception as exc:  # the states are an optimisation: samples are safe either way
            log.warning(
                "detection states not saved at exit", extra={"reason": str(exc) or type(exc).__name__}
            )
            return
        log.info("detection states saved", extra={"accounts": saved})

    async def _leave_cluster(self) -> None:
        async def nothing(_shards: set[int]) -> None:
            return None

        try:
            await asyncio.wait_for(self.cluster.leave(nothing), timeout=5)
        except Exception as exc:  # the locks end with the session anyway
            log.warning(
                "could not leave the cluster cleanly", extra={"reason": str(exc) or type(exc).__name__}
            )

    # -- the watchlist ------------------------------------------------------------------------------------

    def owns(self, account: WatchedAccount) -> bool:
        """Whether this daemon polls ``account``: all of them, unless replicas share the watchlist."""
        return self.cluster.owns(account.id)

    async def _acquire(self, shards: set[int]) -> None:
        """Shards newly held: poll their watched accounts from their saved states on."""
        watched = await asyncio.to_thread(self.store.watched)
        await self._take_in(
            [a for a in watched if a.id % self.cluster.shards in shards and a.id not in self.accounts]
        )

    async def _release(self, shards: set[int]) -> None:
        """Shards to give back: stop starting polls of them, let the running ones finish, write what was
        taken and save their states, so whoever takes them next goes on exactly from here."""
        leaving = [a for a in self.accounts.values() if a.id % self.cluster.shards in shards]
        if not leaving:
            return
        ids = {a.id for a in leaving}
        self.scheduler.plan([a for a in self.accounts.values() if a.id not in ids])
        await self.scheduler.settle(seconds=30)
        await self.writer.flush(deadline=time.monotonic() + 30)
        with contextlib.suppress(Exception):
            await self.states.checkpoint(leaving)
        self._let_go(list(ids))

    async def _cluster_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cluster.heartbeat.total_seconds())
            await self.cluster.beat(self._acquire, self._release)

    def _sync_config_watchlist(self) -> None:
        now = self.clock.now()
        by_interval: dict[timedelta | None, list[Any]] = {}
        for entry in self.config.watchlist:
            by_interval.setdefault(entry.interval, []).append(entry.account)
        for interval, refs in by_interval.items():
            self.store.watch_many(refs, now, interval)

    async def refresh_watchlist(self) -> None:
        """Take in the watchlist changes made since the last look (`watch add|remove|recheck`)."""
        version, changed = await asyncio.to_thread(self.store.watchlist_changes, self._version)
        if not changed:
            self._version = version
            self._replan()
            return
        rows = await asyncio.to_thread(self.store.accounts_by_id, changed)
        gone = [
            i
            for i in changed
            if i in self.accounts and not (rows.get(i, (False,))[0] and self.owns(rows[i][1]))
        ]
        self._let_go(gone)
        fresh = [a for watched, a in rows.values() if watched and self.owns(a) and a.id not in self.accounts]
        for watched, account in rows.values():
            kept = self.accounts.get(account.id)
            if watched and kept is not None:
                kept.interval, kept.next_poll_at, kept.backoff_step = (
                    account.interval,
                    account.next_poll_at,
                    account.backoff_step,
                )
        await self._take_in(fresh)
        self._version = version

    async def _take_in(self, accounts: Sequence[WatchedAccount]) -> None:
        """Start polling ``accounts``: on the board, their states loaded, in the schedule."""
        for account in accounts:
            self.accounts[account.id] = account
            self.recorder.ids[account.ref] = account.id
            view = self.board.view(account.ref)
            view.state, view.last_error, view.last_polled_at = (
                account.state,
                account.last_error,
                account.last_polled_at,
            )
        if accounts:
            loaded = await self.states.load(accounts, self.writer.take)
            log.info(
                "detection states loaded",
                extra={
                    "accounts": len(accounts),
                    "restored": loaded.restored,
                    "rebuilt": loaded.rebuilt,
                    "samples_replayed": loaded.replayed,
                    "seconds": round(loaded.seconds, 2),
                },
            )
        self._replan()

    def _let_go(self, account_ids: Sequence[int]) -> None:
        """Stop polling these accounts: they leave the board, the engine and the schedule."""
        if not account_ids:
            return
        refs = {self.accounts.pop(i).ref for i in account_ids if i in self.accounts}
        self.board.remove(refs)
        self.detection_engine.keep_only({a.ref for a in self.accounts.values()})
        self.states.forget(account_ids)
        for ref in refs:
            self.recorder.ids.pop(ref, None)
        self._replan()

    def _replan(self) -> None:
        # stretch intervals first when the watchlist would outrun a platform's rate limit
        wanted = [(a.ref, self.config.interval_for(a.ref, a.interval)) for a in self.accounts.values()]
        self.cycles.plan(self.config, wanted, fraction=self.cluster.fraction)
        self.scheduler.plan(list(self.accounts.values()))

    def _interval_of(self, account: WatchedAccount) -> timedelta:
        wanted = self.config.interval_for(account.ref, account.interval)
        return self.cycles.stretch(account.ref.platform, wanted)

    # -- background work -----------------------------------------------------------------------------------

    def _supervise(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def guarded() -> None:
            while True:
                try:
                    await work()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._down[name] = f"{type(exc).__name__}: {exc}"[:200]
                    log.exception("a background task failed; restarting it", extra={"task": name})
                    self.metrics.task_restarts.labels(name).inc()
                    await asyncio.sleep(RESTART_DELAY)
                    self._down.pop(name, None)

        self._tasks[name] = asyncio.create_task(guarded(), name=name)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(WATCHLIST_REFRESH.total_seconds())
            if await self._database_reachable():
                await self.refresh_watchlist()

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.state.checkpoint.total_seconds())
            if await self._database_reachable():
                saved = await self.states.checkpoint(list(self.accounts.values()))
                log.debug("detection states saved", extra={"accounts": saved})

    async def _maintenance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.retention.every.total_seconds())
            if await self._database_reachable():
                await self.maintain()

    async def maintain(self) -> None:
        """Roll up and expire now (the loop does it every ``retention.every``)."""
        dirty, self.writer.earliest_written = self.writer.earliest_written, None
        report = await asyncio.to_thread(self.maintenance.run, self.clock.now(), dirty)
        log.info("rollups and retention", extra=vars(report))

    async def _database_reachable(self) -> bool:
        try:
            await asyncio.wait_for(asyncio.to_thread(check_reachable, self.engine), timeout=5)
        except Exception:
            return False
        return True

    # -- polling -----------------------------------------------------------------------------------------

    async def _poll_group(
        self, platform: str, accounts: Sequence[WatchedAccount], deadline: float
    ) -> Sequence[WatchedAccount]:
        if self.spool.full:
            self.metrics.polls_skipped.labels(platform, "spool_full").inc(len(accounts))
            return accounts
        poller = self._poller(platform)
        if poller is None:
            await self._mark_unpollable(platform, accounts)
            return []
        return await poller.poll(accounts, deadline)

    def _batch_size(self, platform: str) -> int:
        poller = self._poller(platform)
        return poller.source.batch_size if poller is not None else 100

    def _poller(self, platform: str) -> Poller | None:
        if platform not in self._pollers:
            try:
                source = self._build_source(platform)
            except UnsupportedPlatform:
                return None
            self._sources[platform] = source
            self._pollers[platform] = Poller(
                source, self.writer, self.board, self.metrics, self.clock, self.recorder.judge
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

    async def _mark_unpollable(self, platform: str, accounts: Sequence[WatchedAccount]) -> None:
        now = self.clock.now()
        message = f"flockwatch cannot poll {platform} accounts"
        updates = [AccountUpdate(a.id, now, AccountState.ERRORING, message) for a in accounts]
        await self.writer.take(Batch(updates=updates))
        for account in accounts:
            account.state, account.last_error, account.last_polled_at = AccountState.ERRORING, message, now
            self.board.record_state(account.ref, AccountState.ERRORING, message, now)

    # -- health --------------------------------------------------------------------------------------------

    async def _readiness(self) -> list[str]:
        problems = []
        try:
            await asyncio.wait_for(asyncio.to_thread(check_reachable, self.engine), timeout=3)
        except Exception as exc:  # any failure to answer means not ready; the reason is reported
            problems.append(f"database: {exc}" if str(exc) else "database: no answer")
        if not self.scheduler.running:
            problems.append("scheduler: not running")
        if self.spool.full:
            problems.append(f"spool: full ({self.spool.live_bytes:,} bytes): polling paused")
        problems += [f"{name}: task failed ({why}), restarting" for name, why in sorted(self._down.items())]
        return problems


def spool_path(config: Config) -> Path:
    """``spool.path``, else beside a SQLite database file, else ./flockwatch-spool.db."""
    if config.spool.path is not None:
        return config.spool.path
    url = make_url(config.database.url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        database = Path(url.database)
        return database.with_name(database.name + "-spool")
    return Path("flockwatch-spool.db")


def replica_name(config: Config) -> str:
    return config.cluster.name or f"{socket.gethostname()}:{os.getpid()}"


def _url_host(host: str) -> str:
    if ":" in host:
        return f"[{host}]"
    return "127.0.0.1" if host in ("0.0.0.0", "") else host
