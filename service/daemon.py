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
from concurrent.futures import ThreadPoolExecutor
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
from service.samples import AccountState, Sample
from service.scheduler import PollScheduler
from service.sources.base import Source
from service.sources.hosts import guarded_transport
from service.sources.metrics import SourceMetrics
from service.sources.planning import CyclePlanner
from service.sources.registry import UnsupportedPlatform, build_source
from service.spool import Batch, Spool
from service.states import AccountStates
from service.store.database import DatabaseError, check_reachable, open_engine, safe_url, upgrade
from service.store.repository import AccountUpdate, DetectionRow, Store, WatchedAccount
from service.store.rollups import Maintenance
from service.web import HttpServer, build_app, web_guard
from service.writer import SampleWriter

log = logging.getLogger(__name__)

WATCHLIST_REFRESH = timedelta(seconds=30)
CHANGES_LOOKBACK = 1_000  # watchlist changes read again behind the newest seen
RESTART_DELAY = 5.0
THREADS = 8
# seconds of writing the spool's backlog before polling starts (the rest goes on meanwhile)
STARTUP_FLUSH = 30.0
HAND_OVER_WAIT = 30.0


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
        # Accounts are held as their snapshots between polls: a few hundred bytes each instead of several KB.
        self.detection_engine = DetectionEngine(compact=True)
        DetectionCollector(self.detection_engine, registry)
        self.scores = ScoreExposition(self.detection_engine)
        self.recorder = DetectionRecorder(self.detection_engine)
        self.states = AccountStates(self.store, self.detection_engine, self.board, self.recorder, clock)
        self.maintenance = Maintenance(self.engine, config.retention)
        self.cluster = Cluster(self.engine, config.cluster, replica_name(config))
        self.accounts: dict[int, WatchedAccount] = {}  # the watched accounts this daemon polls
        self._version = 0  # the newest watchlist change taken in
        self._seen_changes: set[int] = set()  # the changes taken in, within CHANGES_LOOKBACK of the newest
        self._sources: dict[str, Source] = {}
        self._pollers: dict[str, Poller] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._down: dict[str, str] = {}  # task -> why it is not running
        self._started = False
        self._threads: ThreadPoolExecutor | None = None
        self.scheduler = PollScheduler(
            self._poll_group, config.poll.jitter, self._interval_of, clock, batch_size=self._batch_size
        )
        host, port = parse_listen(config.http.listen)
        sections = [self.exposition.chunks, *([self.scores.chunks] if config.http.anomaly_scores else [])]
        guard = web_guard(config.http.web_config_file)
        self.http = HttpServer(build_app(registry, self._readiness, sections, guard=guard), host, port, guard)

    @property
    def metrics_url(self) -> str:
        host, _ = parse_listen(self.config.http.listen)
        return f"{self.http.scheme}://{_url_host(host)}:{self.http.bound_port}/metrics"

    # -- start and stop ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate, write the spool's backlog, load the watchlist and states, start polling and serving.
        Raises ``DatabaseError`` if the database is unusable, ``SpoolBusy`` if another daemon uses the spool."""
        self.spool.claim()
        # Database work runs in threads of the daemon's own; at stop, one stuck in a call is left behind.
        self._threads = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="flockwatch")
        asyncio.get_running_loop().set_default_executor(self._threads)
        await self.http.start()  # /healthz answers while the rest starts; /readyz says what is not ready yet
        await self._wait_for_database()
        await asyncio.to_thread(upgrade, self.engine)
        if self.spool.pending_samples or self.spool.pending_batches:
            log.info(
                "writing what the spool kept from the last run", extra={"samples": self.spool.pending_samples}
            )
            # A large backlog goes on in the background once polling runs: first its start, for the states.
            await self.writer.flush(deadline=time.monotonic() + STARTUP_FLUSH)
        await asyncio.to_thread(self._sync_config_watchlist)
        self._version = await asyncio.to_thread(self.store.watchlist_version)
        recent = await asyncio.to_thread(
            self.store.watchlist_changes, max(self._version - CHANGES_LOOKBACK, 0)
        )
        self._seen_changes = {
            seq for seq, _ in recent if seq <= self._version
        }  # the watchlist read next has them
        watched = await asyncio.to_thread(self.store.watched)
        await self.states.load_platforms()
        if self.cluster.shared:
            await self.cluster.beat(self._acquire, self._hand_over, self._stop_polling)
        else:
            await self._take_in(watched)
        self.scheduler.start()
        self._supervise("writer", self.writer.run)
        if self.cluster.shared:
            self._supervise("cluster", self._cluster_loop)
        self._supervise("watchlist", self._refresh_loop)
        self._supervise("checkpoint", self._checkpoint_loop)
        self._supervise("maintenance", self._maintenance_loop)
        self._started = True
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
        # the writer ends after its chunk under way; a database call that hangs is left behind, not waited for
        if self._tasks:
            await asyncio.wait(set(self._tasks.values()), timeout=max(deadline - time.monotonic(), 1.0) * 0.3)
        # Nothing was polled if it never started: what the spool holds waits for the next start.
        left = (
            await self.writer.drain(seconds=max(deadline - time.monotonic(), 1.0) * 0.7)
            if self._started
            else 0
        )
        if self._started:
            await self._save_states(deadline)
        await self._leave_cluster()
        for source in self._sources.values():
            await source.aclose()
        await self.http.stop()
        self.writer.shutdown()
        self.spool.close()
        self.engine.dispose()
        self._let_threads_go()
        if left:
            log.error(
                "database unreachable at exit: samples kept in the spool for the next start",
                extra={"samples": left, "spool": str(self.spool.path)},
            )
        log.info("flockwatch stopped", extra={"unwritten_samples": left, "polls_cancelled": cancelled})

    def _let_threads_go(self) -> None:
        """Stop waiting for the daemon's threads: asyncio.run would wait for a call stuck in the database."""
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
            self._threads = None

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
        async def nothing(_shards: set[int]) -> bool:
            return True

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

    async def _hand_over(self, shards: set[int]) -> bool:
        """Shards to give back (``cluster.leaving`` holds them already, so no new poll starts): let the polls
        under way finish, write what was taken and save the accounts' states, so whoever takes them next goes
        on exactly from here. False (keep them for now) when the database cannot take it."""
        leaving = [a for a in self.accounts.values() if a.id % self.cluster.shards in shards]
        self._replan()
        await self.scheduler.settle(seconds=HAND_OVER_WAIT)
        if not await self.writer.flush(deadline=time.monotonic() + HAND_OVER_WAIT):
            self.cluster.leaving -= shards
            self._replan()
            return False
        with contextlib.suppress(Exception):  # a state not saved is rebuilt from samples by the next holder
            await self.states.checkpoint(leaving)
        self._let_go([a.id for a in leaving])
        return True

    async def _stop_polling(self, shards: set[int]) -> None:
        """Shards that may no longer be ours (the lock connection was lost): stop polling them at once."""
        self._let_go([a.id for a in self.accounts.values() if a.id % self.cluster.shards in shards])

    async def _cluster_loop(self) -> None:
        while True:
            await asyncio.sleep(self.cluster.heartbeat.total_seconds())
            await self.cluster.beat(self._acquire, self._hand_over, self._stop_polling)

    def _sync_config_watchlist(self) -> None:
        now = self.clock.now()
        by_interval: dict[timedelta | None, list[Any]] = {}
        for entry in self.config.watchlist:
            by_interval.setdefault(entry.interval, []).append(entry.account)
        for interval, refs in by_interval.items():
            self.store.watch_many(refs, now, interval)

    async def refresh_watchlist(self) -> None:
        """Take in the watchlist changes made since the last look (`watch add|remove|recheck`). A stretch before
        the newest change seen is read again, each change taken once: on PostgreSQL a change may commit after a
        later-numbered one."""
        rows = await asyncio.to_thread(self.store.watchlist_changes, max(self._version - CHANGES_LOOKBACK, 0))
        new = [(seq, account_id) for seq, account_id in rows if seq not in self._seen_changes]
        if not new:
            return
        self._version = max(self._version, *(seq for seq, _ in new))
        self._seen_changes |= {seq for seq, _ in new}
        self._seen_changes = {seq for seq in self._seen_changes if seq > self._version - CHANGES_LOOKBACK}
        changed = {account_id for _, account_id in new}
        stored = await asyncio.to_thread(self.store.accounts_by_id, changed)
        gone = [
            i
            for i in changed
            if i in self.accounts and not (i in stored and stored[i][0] and self.owns(stored[i][1]))
        ]
        fresh = [
            a for watched, a in stored.values() if watched and self.owns(a) and a.id not in self.accounts
        ]
        for watched, account in stored.values():
            kept = self.accounts.get(account.id)
            if watched and kept is not None:  # a new interval, or a recheck: what the user asked for
                kept.interval, kept.next_poll_at, kept.backoff_step = (
                    account.interval,
                    account.next_poll_at,
                    account.backoff_step,
                )
        self._let_go(gone)
        await self._take_in(fresh)
        if not fresh and not gone:
            self._replan()

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
        polled = [a for a in self.accounts.values() if self.owns(a)]  # not the shards being handed over
        # stretch intervals first when the watchlist would outrun a platform's rate limit
        wanted = [(a.ref, self.config.interval_for(a.ref, a.interval)) for a in polled]
        self.cycles.plan(self.config, wanted, fraction=self.cluster.fraction)
        self.scheduler.plan(polled)

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
        # a batch that waited for its turn may hold accounts handed over or let go meanwhile
        accounts = [a for a in accounts if a.id in self.accounts and self.owns(a)]
        poller = self._poller(platform)
        if poller is None:
            await self._mark_unpollable(platform, accounts)
            return []
        return await poller.poll(accounts, deadline)

    def _judge(self, samples: Sequence[tuple[int, Sample]]) -> list[DetectionRow]:
        """The engine judges the samples of accounts this daemon polls (a late answer for an account let go
        meanwhile is stored, but its state is its new holder's)."""
        return self.recorder.judge([pair for pair in samples if pair[0] in self.accounts])

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
                source, self.writer, self.board, self.metrics, self.clock, self._judge
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
        problems = [] if self._started else ["starting: the database, the spool's backlog, detection states"]
        try:
            await asyncio.wait_for(asyncio.to_thread(check_reachable, self.engine), timeout=3)
        except Exception as exc:  # any failure to answer means not ready; the reason is reported
            problems.append(f"database: {exc}" if str(exc) else "database: no answer")
        if not self.scheduler.running:
            problems.append("scheduler: not running")
        if self.spool.full:
            problems.append(f"spool: full ({self.spool.size:,} bytes): polling paused")
        if self.writer.spool_failing:
            problems.append(f"spool: cannot append ({self.writer.spool_failing})")
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
