"""Each account's detection state and /metrics trail, saved as data and loaded in bulk.

Start-up (and a replica taking accounts over) loads every account's saved state in a few set-based
queries and replays only the samples stored after it, instead of replaying raw history. An account with no
usable state (a new install, a snapshot of an older format) is rebuilt from its last weeks: the hourly
rollups (one sample an hour, kept longer than raw samples), then the raw samples of the last two days.
The daemon saves the states of accounts that moved on every ``checkpoint`` and once more at shutdown.
Engine and board are only ever changed on the event loop, a chunk of accounts at a time; the database
work runs in threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from service.accounts import AccountRef
from service.board import REACH, Board
from service.clock import Clock
from service.detection.base import Detection
from service.detection.engine import DetectionEngine
from service.detection.recorder import DetectionRecorder
from service.memory import give_back
from service.samples import Sample
from service.spool import Batch
from service.store.repository import SavedState, Store, WatchedAccount

log = logging.getLogger(__name__)
T = TypeVar("T")

REBUILD_DAYS = 30  # what a state rebuilt from samples reads: every detector's memory fits in it
FINE_DAYS = 2  # of those, the last days at full resolution; before that one sample an hour
CHUNK = 500  # accounts changed on the event loop between two yields
STATES_CHUNK = 5_000  # saved states read from the database at a time
REBUILD_GROUP = 200
REPLAY_GROUP = 2_000
PLATFORMS_STATE = "platforms"
FUTURE_TOLERANCE = timedelta(minutes=5)

Take = Callable[[Batch], Awaitable[None]]


@dataclass
class Loaded:
    restored: int = 0
    rebuilt: int = 0
    replayed: int = 0
    seconds: float = 0.0


class AccountStates:
    def __init__(
        self, store: Store, engine: DetectionEngine, board: Board, recorder: DetectionRecorder, clock: Clock
    ) -> None:
        self._store = store
        self._engine = engine
        self._board = board
        self._recorder = recorder
        self._clock = clock
        self._saved: dict[int, float | None] = {}  # account id -> as_of of its last saved state

    async def load(self, accounts: Sequence[WatchedAccount], take: Take) -> Loaded:
        """Bring ``accounts`` into the engine and on the board; detections the replay finds go to ``take``."""
        started = time.perf_counter()
        report = Loaded()
        after: dict[int, datetime] = {}
        missing: list[WatchedAccount] = []
        # A chunk of saved states at a time: all of them at once (4 KB an account) would hold 400 MB at
        # 100,000 accounts, and the heap would keep that size after they are freed.
        for chunk in _chunks(list({a.id: a for a in accounts}.values()), STATES_CHUNK):
            saved = await asyncio.to_thread(self._store.load_states, [a.id for a in chunk])
            for account in chunk:
                state = saved.pop(account.id, None)
                if state is not None and self._restore(account, state):
                    after[account.id] = state.as_of
                    report.restored += 1
                else:
                    missing.append(account)
                await _yield_every(report.restored + len(missing))
        now = self._clock.now()
        refs = {a.id: a.ref for a in accounts}
        report.replayed += await self._replay(self._store.samples_after, after, refs, now, take)
        since = {a.id: now - timedelta(days=REBUILD_DAYS) for a in missing}
        rebuild = partial(self._store.rebuild_history, fine_from=now - timedelta(days=FINE_DAYS))
        report.replayed += await self._replay(rebuild, since, refs, now, take, thin=True)
        report.rebuilt = len(missing)
        for account in accounts:
            self._saved.setdefault(account.id, None)
        await self._close_stale([a.id for a in accounts])
        give_back()  # what reading and restoring the states used, the system gets back
        report.seconds = time.perf_counter() - started
        return report

    def _restore(self, account: WatchedAccount, state: SavedState) -> bool:
        from service.detection.snapshot import SnapshotError

        try:
            self._engine.restore(account.ref, state.engine)
        except SnapshotError:
            return False
        view = self._board.view(account.ref)
        if state.board:
            view.load(state.board)
        self._saved[account.id] = self._engine.last_at(account.ref)
        return True

    async def _replay(
        self,
        read: Callable[..., Sequence[tuple[int, Sample]]],
        after: dict[int, datetime],
        refs: dict[int, AccountRef],
        now: datetime,
        take: Take,
        thin: bool = False,
    ) -> int:
        """Feed the samples stored after each account's state to the engine and the board, in time order."""
        # A few hundred (a rebuild reads weeks per account) or thousand accounts at a time keep memory bounded;
        # accounts saved at about the same time go together, so no group reads far behind its own states.
        ids = sorted(after, key=lambda i: after[i])
        group = REBUILD_GROUP if thin else REPLAY_GROUP
        replayed = 0
        for start in range(0, len(ids), group):
            part = {i: after[i] for i in ids[start : start + group]}
            samples = await asyncio.to_thread(read, part, refs, now + FUTURE_TOLERANCE)
            if thin:
                samples = _thinned(samples, now - timedelta(days=FINE_DAYS))
            await self._observe(samples, take)
            replayed += len(samples)
        return replayed

    async def _observe(self, samples: Sequence[tuple[int, Sample]], take: Take) -> None:
        found: list[Detection] = []
        trail_from = _trail_starts(samples)
        for start in range(0, len(samples), CHUNK * 20):
            for account_id, sample in samples[start : start + CHUNK * 20]:
                self._recorder.ids.setdefault(sample.account, account_id)
                found += self._engine.observe(sample)
                if sample.observed_at >= trail_from[account_id]:
                    self._board.record_sample(sample)
            await asyncio.sleep(0)
        if found:
            await take(Batch(detections=self._recorder.rows(found)))

    async def _close_stale(self, account_ids: list[int]) -> None:
        """Rows left open by an earlier run whose anomaly the loaded state no longer holds are closed."""
        open_keys = {d.key for d in self._engine.active()}
        await asyncio.to_thread(self._store.close_stale_detections, account_ids, open_keys)

    async def checkpoint(self, accounts: Sequence[WatchedAccount]) -> int:
        """Save the state of every account that took a sample since its last save; returns how many."""
        rows: list[SavedState] = []
        now = self._clock.now()
        for chunk in _chunks(list(accounts), CHUNK):
            for account in chunk:
                state = self._snapshot(account, now)
                if state is not None:
                    rows.append(state)
            await asyncio.sleep(0)
        saved = len(rows)
        if rows:
            await asyncio.to_thread(self._store.save_states, rows)
            for row in rows:
                self._saved[row.account_id] = row.as_of.timestamp()
        platforms = self._engine.platform_snapshot()
        await asyncio.to_thread(self._store.save_engine_state, PLATFORMS_STATE, now, platforms)
        del rows
        give_back()
        return saved

    def _snapshot(self, account: WatchedAccount, now: datetime) -> SavedState | None:
        last = self._engine.last_at(account.ref)
        if last is None or self._saved.get(account.id) == last:
            return None
        blob = self._engine.snapshot(account.ref)
        if blob is None:
            return None
        view = self._board.find(account.ref)
        as_of = datetime.fromtimestamp(last, now.tzinfo)
        return SavedState(account.id, as_of, blob, view.dump() if view else None, now)

    async def load_platforms(self) -> None:
        from service.detection.snapshot import SnapshotError

        blob = await asyncio.to_thread(self._store.load_engine_state, PLATFORMS_STATE)
        if blob is not None:
            try:
                self._engine.restore_platforms(blob)
            except SnapshotError:
                log.info("the saved platform watch is of another format; it starts afresh")

    def forget(self, account_ids: Sequence[int]) -> None:
        for account_id in account_ids:
            self._saved.pop(account_id, None)


async def _yield_every(done: int) -> None:
    """Let the event loop run once per ``CHUNK`` accounts restored."""
    if done % CHUNK == 0:
        await asyncio.sleep(0)


def _chunks(values: Sequence[T], size: int) -> list[Sequence[T]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def _trail_starts(samples: Sequence[tuple[int, Sample]]) -> dict[int, datetime]:
    """Per account, the oldest sample time its /metrics trail can still hold: a day before the trail's reach
    from its newest sample. Older samples only cost the board time (it would drop them again)."""
    newest: dict[int, datetime] = {}
    for account_id, sample in samples:
        newest[account_id] = sample.observed_at  # samples come in time order: the last one is the newest
    return {account_id: at - REACH - timedelta(days=1) for account_id, at in newest.items()}


def _thinned(samples: Sequence[tuple[int, Sample]], fine_from: datetime) -> list[tuple[int, Sample]]:
    """At most one sample per account and hour before ``fine_from``; every sample after it."""
    kept: list[tuple[int, Sample]] = []
    last_hour: dict[int, int] = {}
    for account_id, sample in samples:
        if sample.observed_at < fine_from:
            hour = int(sample.observed_at.timestamp() // 3600)
            if last_hour.get(account_id) == hour:
                continue
            last_hour[account_id] = hour
        kept.append((account_id, sample))
    return kept
