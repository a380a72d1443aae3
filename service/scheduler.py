"""When to poll: one APScheduler interval job per (platform, interval) group of watched accounts.

``max_instances=1`` keeps a group's poll from overlapping itself. Each poll runs as a task of its own,
shielded from the scheduler, so that shutting down lets in-flight polls finish (``drain``) instead of
cutting them off halfway.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from service.store.repository import WatchedAccount

GroupKey = tuple[str, float]  # platform, interval in seconds
PollGroup = Callable[[str, Sequence[WatchedAccount]], Coroutine[Any, Any, None]]


class PollScheduler:
    def __init__(
        self, poll_group: PollGroup, jitter: timedelta, interval_of: Callable[[WatchedAccount], timedelta]
    ):
        self._poll_group = poll_group
        self._jitter = jitter.total_seconds()
        self._interval_of = interval_of
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._groups: dict[GroupKey, list[WatchedAccount]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def running(self) -> bool:
        return bool(self._scheduler.running)

    def start(self) -> None:
        self._scheduler.start()

    def plan(self, accounts: Sequence[WatchedAccount]) -> None:
        """Bring the jobs in line with the watchlist: new groups start, empty ones stop."""
        groups: dict[GroupKey, list[WatchedAccount]] = defaultdict(list)
        for account in accounts:
            groups[(account.ref.platform, self._interval_of(account).total_seconds())].append(account)
        for key in set(self._groups) - set(groups):
            self._scheduler.remove_job(_job_id(key))
        for key in set(groups) - set(self._groups):
            self._add_job(key)
        self._groups = dict(groups)

    def _add_job(self, key: GroupKey) -> None:
        platform, seconds = key
        first = datetime.now(UTC) + timedelta(seconds=random.uniform(0, min(self._jitter, seconds)))
        self._scheduler.add_job(
            self._run_group,
            IntervalTrigger(seconds=seconds, jitter=min(self._jitter, seconds / 2) or None),
            args=[key],
            id=_job_id(key),
            name=f"poll {platform} every {seconds:g}s",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(int(seconds), 1),
            next_run_time=first,
        )

    async def _run_group(self, key: GroupKey) -> None:
        accounts = self._groups.get(key, [])
        if not accounts:
            return
        task = asyncio.get_running_loop().create_task(self._poll_group(key[0], accounts))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        # The scheduler cancels its job coroutines when it shuts down; the poll itself goes on and `drain` waits
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)

    async def drain(self) -> None:
        """Stop starting polls and wait for the ones under way."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)


def _job_id(key: GroupKey) -> str:
    return f"poll:{key[0]}:{key[1]:g}"
