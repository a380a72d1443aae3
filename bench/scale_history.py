"""The scale benchmark's history: a watchlist of X accounts with weeks of samples, as if the daemon had
polled them every 15 minutes, their rollups, detections and saved detection states.

This loads the databases itself (quicker to set up than a CSV through ``flockwatch import``, which
``bench/import_speed.py`` measures on its own). Through the Store's API: the watchlist (``Store.watch_many``), each account's last
poll, latest counts and detections (``Store.write_batch``), the states (``Store.save_states``) of a
``DetectionEngine`` run over the history. Raw samples and rollup rows, the bulk of it, go in with plain
bulk inserts (COPY on PostgreSQL): ``write_batch`` and ``Maintenance.run`` take 40-55 µs a row here
(RETURNING, conflict checks, re-reading what was just written), which would make the history of 100,000
accounts a matter of hours. The rollup rows are aggregated here as the daemon's maintenance does in
SQL (tests/test_rollups_sql.py checks that SQL against the same plain computation), and the rollup
watermark is set as maintenance would have left it.

A history has ``days`` in all; raw samples are kept for its last ``raw_days`` (as with a shorter
``retention.raw``): before that the engine sees one sample an hour (as the daemon's own rebuild does) and
only the rollups keep them. The counts come from ``bench.fake_platform.counts``, the function the fake
platform answers with later. Accounts go 100 at a time (one poll batch: they share a poll moment), each
batch through an engine of its own, so the platform watch (which spans accounts) is not saved: the daemon
starts it afresh, as after a change of its format. Every database in ``urls`` gets the same history from
one pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine, Table, text

from bench.fake_platform import Profiles, counts, handle, profiles
from service.accounts import AccountRef
from service.board import Board
from service.config import RetentionConfig
from service.detection.base import Detection
from service.detection.engine import DetectionEngine
from service.detection.recorder import DetectionRecorder
from service.samples import AccountState, Sample
from service.store import models
from service.store.database import open_engine, upgrade
from service.store.repository import AccountUpdate, SavedState, Store
from service.store.rollups import DAY, HOUR, WATERMARK, Maintenance, _floor, _set

SPACING = 900.0  # 15-minute polling
BATCH = 100  # accounts polled together (X's lookup takes 100): they share a poll moment
BOARD_DAYS = 8  # what the /metrics trail holds (a week and a little)

Progress = Callable[[int, int], None]
Row = tuple[Any, ...]


@dataclass(frozen=True)
class History:
    accounts: int
    days: float
    raw_days: float
    end: float  # epoch seconds, on a whole hour: no sample at or after it
    rollups: bool = True  # hourly and daily rollups of the raw samples (the watermark is set either way)

    @property
    def start(self) -> float:
        return self.end - self.days * 86_400

    @property
    def raw_from(self) -> float:
        return self.end - self.raw_days * 86_400

    def refs(self) -> list[AccountRef]:
        return [AccountRef("x", handle(n)) for n in range(self.accounts)]


@dataclass
class Loaded:
    samples: int = 0  # raw samples stored
    observed: int = 0  # samples the engine saw (hourly before raw_days)
    detections: int = 0
    states: int = 0
    state_bytes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def took(self, step: str, since: float) -> None:
        self.seconds[step] = round(self.seconds.get(step, 0.0) + time.perf_counter() - since, 1)


@dataclass
class _Batch:
    """One poll batch's history: its accounts, their shared poll moments, and a row of counts per account."""

    refs: list[AccountRef]
    moments: list[float]  # epoch seconds
    followers: list[list[int]]
    following: list[list[int]]
    posts: list[list[int]]


def load(urls: Sequence[str], history: History, progress: Progress | None = None) -> Loaded:
    """Fill each (empty) database in ``urls`` with ``history``; returns what was written."""
    report = Loaded()
    started = time.perf_counter()
    stores = [_prepared(url, history) for url in urls]
    ids = [store.account_ids(history.refs()) for store in stores]
    drawn = profiles(history.accounts, history.start, history.days)
    report.took("watchlist", started)
    for first in range(0, history.accounts, BATCH):
        numbers = range(first, min(first + BATCH, history.accounts))
        _load_batch(stores, ids, history, _drawn(drawn, numbers, history), report)
        if progress is not None:
            progress(numbers.stop, history.accounts)
    for store in stores:
        _finish(store, history)
    return report


def _prepared(url: str, history: History) -> Store:
    """Migrated, the watchlist in, each account already known by its platform id, as after a first poll."""
    engine = open_engine(url)
    upgrade(engine)
    store = Store(engine)
    store.watch_many(history.refs(), _time(history.start))
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE accounts SET platform_handle = handle, platform_id = "
                "CAST(1000000000 + CAST(substr(handle, 2) AS INTEGER) AS TEXT) WHERE platform = 'x'"
            )
        )
    return store


def _load_batch(
    stores: list[Store], ids: list[dict[AccountRef, int]], history: History, batch: _Batch, report: Loaded
) -> None:
    started = time.perf_counter()
    engine, found, board = _judged(batch, history)
    report.took("detect", started)
    tables: dict[tuple[int, ...], list[tuple[Table, list[Row]]]] = {}
    for store, id_of in zip(stores, ids, strict=True):
        started = time.perf_counter()
        key = tuple(id_of[ref] for ref in batch.refs)  # databases loaded together number accounts alike
        if key not in tables:
            tables[key] = _rows(key, batch, history)
        for table, rows in tables[key]:
            bulk_insert(store.engine, table, rows)
        _write_last(store, id_of, batch, DetectionRecorder(engine, dict(id_of)), found)
        states = _states(engine, board, id_of, batch, history)
        store.save_states(states)
        report.took(f"write {store.engine.dialect.name}", started)
    report.samples += len(tables[key][0][1])
    report.observed += len(batch.refs) * len(batch.moments)
    report.detections += len({d.key for d in found})
    report.states += len(states)
    report.state_bytes += sum(len(s.engine) + len(s.board or b"") for s in states)


def _drawn(drawn: Profiles, numbers: range, history: History) -> _Batch:
    """The batch's counts: hourly before ``raw_from``, every 15 minutes after, at the batch's poll moment."""
    phase = (numbers.start // BATCH) % 90 * 10.0
    moments: list[float] = []
    at = history.start + phase
    while at < history.end:
        moments.append(at)
        at += 3600.0 if at + 3600.0 <= history.raw_from else SPACING
    column = np.arange(numbers.start, numbers.stop, dtype=np.int64)[:, None]
    followers, following, posts = counts(drawn, column, np.array(moments)[None, :])
    refs = [AccountRef("x", handle(n)) for n in numbers]
    return _Batch(refs, moments, followers.tolist(), following.tolist(), posts.tolist())


def _judged(batch: _Batch, history: History) -> tuple[DetectionEngine, list[Detection], Board]:
    """The batch through a detection engine of its own, in time order; the /metrics trail of its last days
    (fed the last sample of each hour: the trail keeps no more)."""
    engine = DetectionEngine()
    board = Board()
    trail_from = history.end - BOARD_DAYS * 86_400
    found: list[Detection] = []
    last = len(batch.moments) - 1
    for step, at in enumerate(batch.moments):
        trail = at >= trail_from and (step == last or batch.moments[step + 1] // 3600 != at // 3600)
        for i, ref in enumerate(batch.refs):
            followers, following = batch.followers[i][step], batch.following[i][step]
            found += engine.observe_values(ref, at, followers, following, 1)
            if trail:
                board.view(ref).add(Sample(ref, _time(at), followers, following, batch.posts[i][step]))
    return engine, found, board


def _rows(ids: tuple[int, ...], batch: _Batch, history: History) -> list[tuple[Table, list[Row]]]:
    """The raw samples (those after ``raw_from``) of accounts ``ids`` and, with rollups, their hourly and
    daily rollups, each with its table."""
    times = [_time(at) for at in batch.moments]
    first = next(i for i, at in enumerate(batch.moments) if at >= history.raw_from)
    rows: list[Row] = [
        (account_id, times[step], batch.followers[i][step], batch.following[i][step], batch.posts[i][step], 1)
        for i, account_id in enumerate(ids)
        for step in range(first, len(times))
    ]
    tables = [(models.table(models.Sample), rows)]
    for model, size in ((models.HourlyRollup, HOUR), (models.DailyRollup, DAY)) if history.rollups else ():
        table = models.table(model)
        tables.append((table, [tuple(b[c.name] for c in table.columns) for b in _aggregate(rows, size)]))
    return tables


def _write_last(
    store: Store,
    id_of: dict[AccountRef, int],
    batch: _Batch,
    recorder: DetectionRecorder,
    found: list[Detection],
) -> None:
    """Each account's last poll and latest counts (its last sample again: stored once), and the detections."""
    at = _time(batch.moments[-1])
    last = [
        (id_of[ref], Sample(ref, at, batch.followers[i][-1], batch.following[i][-1], batch.posts[i][-1]))
        for i, ref in enumerate(batch.refs)
    ]
    polled = [AccountUpdate(account_id, s.observed_at, AccountState.ACTIVE) for account_id, s in last]
    store.write_batch(last, polled, recorder.rows(found))


def _states(
    engine: DetectionEngine, board: Board, id_of: dict[AccountRef, int], batch: _Batch, history: History
) -> list[SavedState]:
    saved_at = _time(history.end)
    states = []
    for ref in batch.refs:
        blob, last, view = engine.snapshot(ref), engine.last_at(ref), board.find(ref)
        if blob is not None and last is not None:
            states.append(SavedState(id_of[ref], _time(last), blob, view.dump() if view else None, saved_at))
    return states


def _finish(store: Store, history: History) -> None:
    """The rollup watermark where the daemon's maintenance would have left it, then a maintenance run (it
    finds nothing to do but proves the watermark), and fresh planner statistics on PostgreSQL."""
    with store.engine.begin() as conn:
        _set(conn, WATERMARK, _time(history.end).isoformat())
    Maintenance(store.engine, RetentionConfig()).run(_time(history.end))
    if store.engine.dialect.name == "postgresql":  # as autovacuum would have after a load this size
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
    store.engine.dispose()


def bulk_insert(engine: Engine, table: Table, rows: Sequence[Row]) -> None:
    """Rows (in the table's column order) into a table that holds none of them: COPY on PostgreSQL, one
    prepared INSERT on SQLite, with the column types' own conversions (times as the models store them)."""
    if not rows:
        return
    names = [column.name for column in table.columns]
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            convert = [_remembered(column.type.bind_processor(engine.dialect)) for column in table.columns]
            marks = ", ".join("?" * len(names))
            cursor.executemany(
                f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})",
                [tuple(f(v) if f else v for f, v in zip(convert, row, strict=True)) for row in rows],
            )
        raw.commit()
    finally:
        raw.close()


def _remembered(convert: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """A column's conversion, done once per distinct value (a batch's rows share their few times)."""
    if convert is None:
        return None
    done: dict[Any, Any] = {}

    def remembered(value: Any) -> Any:
        if value not in done:
            done[value] = convert(value)
        return done[value]

    return remembered


def _time(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def hour_floor(epoch: float) -> float:
    return epoch - epoch % timedelta(hours=1).total_seconds()


@dataclass
class _Bucket:
    first_at: datetime
    first_followers: int
    last_at: datetime
    last_followers: int
    min_followers: int
    max_followers: int
    samples: int
    last_following: int | None
    last_posts: int | None
    followers_step: int

    def take(self, at: datetime, followers: int, following: int | None, posts: int | None, step: int) -> None:
        self.last_at, self.last_followers = at, followers
        self.min_followers = min(self.min_followers, followers)
        self.max_followers = max(self.max_followers, followers)
        self.samples += 1
        self.last_following = following if following is not None else self.last_following
        self.last_posts = posts if posts is not None else self.last_posts
        self.followers_step = max(self.followers_step, step)

    def row(self, account_id: int, bucket: datetime) -> dict[str, Any]:
        return {"account_id": account_id, "bucket": bucket, **vars(self)}


def _aggregate(rows: Iterable[Any], size: timedelta) -> Iterator[dict[str, Any]]:
    """Rows ordered by account and time → one bucket row per account and bucket: what the daemon's
    maintenance computes in SQL (service/store/rollups.py), here for rows the benchmark bulk-inserts itself."""
    key: tuple[int, datetime] | None = None
    bucket: _Bucket | None = None
    for row in rows:
        at = row[1]
        here = (row[0], _floor(at, size))
        if here != key:
            if bucket is not None and key is not None:
                yield bucket.row(*key)
            key = here
            bucket = _Bucket(at, row[2], at, row[2], row[2], row[2], 0, row[3], row[4], row[5])
        assert bucket is not None
        bucket.take(at, row[2], row[3], row[4], row[5])
    if bucket is not None and key is not None:
        yield bucket.row(*key)
