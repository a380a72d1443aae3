"""When to poll: each account is due one interval after its last poll; a group ticks to poll what is due.

One APScheduler interval job per (platform, interval) group of watched accounts ticks about ten times per
interval and starts a poll of the accounts that are due and not being polled already (an account's polls never
overlap; a slow answer holds back only the accounts of its own batch).
Accounts polled together stay together, so batches stay full; an account that joins late (added, or taken
over from another replica) keeps its own phase: it is first polled one interval after its last stored
poll, never twice within an interval. An account in a permanent state waits until its ``next_poll_at``.
Polls run as tasks of their own, so that shutting down lets in-flight polls finish (``drain``) instead of
cutting them off halfway; a group's poll has the group's interval as its
budget, and accounts it did not reach stay due.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from service.clock import Clock, SystemClock
from service.store.repository import WatchedAccount

GroupKey = tuple[str, float]  # platform, interval in seconds
# Polls the accounts of one platform within the deadline (time.monotonic); returns those it did not reach.
PollGroup = Callable[[str, Sequence[WatchedAccount], float], Coroutine[Any, Any, Sequence[WatchedAccount]]]
TICKS_PER_INTERVAL = 10
MIN_TICK = 0.2
MAX_TICK = 60.0
BATCHES_AT_ONCE = 4  # per group: a slow batch holds back no other, and a platform sees a few requests at once


class PollScheduler:
    def __init__(
        self,
        poll_group: PollGroup,
        jitter: timedelta,
        interval_of: Callable[[WatchedAccount], timedelta],
        clock: Clock | None = None,
        batch_size: Callable[[str], int] = lambda _platform: 100,
    ) -> None:
        self._poll_group = poll_group
        self._batch_size = batch_size
        self._limits: dict[GroupKey, asyncio.Semaphore] = {}
        self._jitter = jitter.total_seconds()
        self._interval_of = interval_of
        self._clock = clock or SystemClock()
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._groups: dict[GroupKey, dict[int, WatchedAccount]] = {}
        self._due: dict[int, float] = {}  # account id -> time.monotonic() at which it is due
        self._in_flight: set[asyncio.Task[Sequence[WatchedAccount]]] = set()
        self._polling: set[int] = set()  # accounts whose poll is under way: a tick does not poll them again

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        self._scheduler.start()

    def groups(self) -> list[GroupKey]:
        """The (platform, interval in seconds) groups being polled."""
        return sorted(self._groups)

    def plan(self, accounts: Iterable[WatchedAccount]) -> None:
        """Bring the jobs in line with the watchlist: new groups start, empty ones stop, accounts keep their
        due times (a new one is due one interval after its last poll)."""
        groups: dict[GroupKey, dict[int, WatchedAccount]] = {}
        for account in accounts:
            key = (account.ref.platform, self._interval_of(account).total_seconds())
            groups.setdefault(key, {})[account.id] = account
            if account.id not in self._due:
                self._due[account.id] = self._first_due(account, key[1])
        for key in set(self._groups) - set(groups):
            self._scheduler.remove_job(_job_id(key))
        for key in set(groups) - set(self._groups):
            self._add_job(key)
        kept = {account_id for members in groups.values() for account_id in members}
        self._due = {account_id: due for account_id, due in self._due.items() if account_id in kept}
        self._groups = groups

    def _first_due(self, account: WatchedAccount, interval: float) -> float:
        last = account.last_polled_at or account.latest_at
        if last is None:
            return time.monotonic()
        wait = (last - self._clock.now()).total_seconds() + interval
        return time.monotonic() + min(max(wait, 0.0), interval)

    def _add_job(self, key: GroupKey) -> None:
        platform, seconds = key
        tick = min(max(seconds / TICKS_PER_INTERVAL, MIN_TICK), MAX_TICK)
        self._scheduler.add_job(
            self._run_group,
            IntervalTrigger(seconds=tick, jitter=min(self._jitter, tick / 2) or None),
            args=[key],
            id=_job_id(key),
            name=f"poll {platform} every {seconds:g}s",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(int(tick), 1),
            next_run_time=datetime.now(UTC),
        )

    def due(self, key: GroupKey) -> list[WatchedAccount]:
        """The group's accounts whose time has come (and whose permanent state's wait is over)."""
        now, clock_now = time.monotonic(), self._clock.now()
        tick = min(max(key[1] / TICKS_PER_INTERVAL, MIN_TICK), MAX_TICK)
        return [
            account
            for account in self._groups.get(key, {}).values()
            if self._due.get(account.id, 0.0) <= now + tick / 2
            and account.id not in self._polling
            and (account.next_poll_at is None or account.next_poll_at <= clock_now)
        ]

    async def _run_group(self, key: GroupKey) -> None:
        accounts = self.due(key)
        if not accounts:
            return
        started = time.monotonic()
        for account in accounts:
            self._due[account.id] = started + key[1]
        size = max(self._batch_size(key[0]), 1)
        for first in range(0, len(accounts), size):
            self._start(key, accounts[first : first + size], started + key[1])

    def _start(self, key: GroupKey, batch: Sequence[WatchedAccount], deadline: float) -> None:
        """A batch's poll is a task of its own: the tick returns at once, a slow batch holds back no other,
        and shutting the scheduler down does not cut a poll off halfway (`drain` waits for it)."""
        ids = {account.id for account in batch}
        self._polling |= ids
        task = asyncio.get_running_loop().create_task(self._poll_batch(key, batch, deadline))
        self._in_flight.add(task)
        task.add_done_callback(lambda done: self._finished(ids, done))

    async def _poll_batch(
        self, key: GroupKey, batch: Sequence[WatchedAccount], deadline: float
    ) -> Sequence[WatchedAccount]:
        limit = self._limits.setdefault(key, asyncio.Semaphore(BATCHES_AT_ONCE))
        async with limit:
            return await self._poll_group(key[0], batch, deadline)

    def _finished(self, ids: set[int], task: asyncio.Task[Sequence[WatchedAccount]]) -> None:
        self._polling -= ids
        self._in_flight.discard(task)
        if task.cancelled() or task.exception() is not None:
            return
        for account in task.result():
            if account.id in self._due:
                self._due[account.id] = time.monotonic()  # not reached: due again at the next tick

    async def settle(self, seconds: float) -> None:
        """Wait (at most ``seconds``) for the polls under way to finish, scheduling on as before."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=seconds)

    async def drain(self, seconds: float | None = None) -> int:
        """Stop starting polls and wait (at most ``seconds``) for the ones under way; returns how many polls
        had to be cancelled."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if not self._in_flight:
            return 0
        _, late = await asyncio.wait(set(self._in_flight), timeout=seconds)
        for task in late:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*late, return_exceptions=True)
        return len(late)


def _job_id(key: GroupKey) -> str:
    return f"poll:{key[0]}:{key[1]:g}"
