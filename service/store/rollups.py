"""Hourly and daily rollups of the samples, and retention: raw samples are kept for ``retention.raw``
(90 days by default), hourly rollups for ``retention.hourly``, daily ones for ever unless told otherwise.

A rollup bucket holds an account's first, last, lowest and highest count in the hour (or day), the last
following/posts counts and how many samples it summarises: what `status`, the dashboards' database panels
and a state rebuilt after a long absence read instead of raw samples. Complete hours are rolled up once
(the watermark says how far); a sample written late (a spool backlog, an import) marks its hour for
rolling up again. Raw samples are deleted only once their hour is rolled up. Every step is a bounded
number of bulk statements; on PostgreSQL one replica at a time does it (an advisory lock).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, delete, func, select, text

from service.config import RetentionConfig
from service.store import models
from service.store.database import lock_key
from service.store.repository import ROLLUP_DIRTY, ROLLUP_WATERMARK, rolled_up_until

log = logging.getLogger(__name__)

WATERMARK = ROLLUP_WATERMARK
DIRTY = ROLLUP_DIRTY
STEP = timedelta(hours=6)  # raw samples read per statement when rolling up
DELETE_STEP = timedelta(hours=6)
LOCK = "maintenance"  # one maintenance run at a time across replicas (a PostgreSQL advisory lock)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass
class MaintenanceReport:
    hours: int = 0  # hourly buckets written
    days: int = 0
    deleted_samples: int = 0
    deleted_rollups: int = 0
    deleted_events: int = 0
    skipped: bool = False  # another replica was doing it


class Maintenance:
    def __init__(self, engine: Engine, retention: RetentionConfig) -> None:
        self.engine = engine
        self.retention = retention

    def run(self, now: datetime, dirty_from: datetime | None = None) -> MaintenanceReport:
        """Roll up every complete hour not yet rolled up (and the hours from ``dirty_from`` on), then delete
        what is past its retention."""
        with self.engine.connect() as lock:
            if not _lock(lock):
                return MaintenanceReport(skipped=True)
            try:
                report = MaintenanceReport()
                self.roll_up(now, dirty_from, report)
                self.expire(now, report)
                return report
            finally:
                _unlock(lock)

    def roll_up(self, now: datetime, dirty_from: datetime | None, report: MaintenanceReport) -> None:
        """Hours from the watermark (or the earliest late sample) to the last complete hour; days once complete."""
        until = _floor(now, HOUR)
        marked = self._setting(DIRTY)
        start = self._watermark() or self._oldest_sample()
        if start is None:
            return
        for late in (dirty_from, datetime.fromisoformat(marked) if marked else None):
            if late is not None and late < start:
                start = late
        start = _floor(start, HOUR)
        while start < until:
            end = min(start + STEP, until)
            with self.engine.begin() as conn:
                report.hours += _roll_hours(conn, start, end)
                # A day is summed from its hours once they are all there (not 24 times a day).
                report.days += _roll_days(conn, _floor(start, DAY), _floor(end, DAY))
                _set(conn, WATERMARK, end.isoformat())
            start = end
        if marked:
            with self.engine.begin() as conn:  # unless a writer marked an earlier hour meanwhile
                settings = models.table(models.Setting)
                conn.execute(delete(settings).where(settings.c.name == DIRTY, settings.c.value == marked))

    def roll_up_range(self, start: datetime, end: datetime, cache_mib: int = 0) -> MaintenanceReport:
        """Roll up the hours from ``start`` to ``end`` (after an import), whatever the watermark says.
        ``cache_mib``: SQLite's page cache for this work (an import's: see _bulk_cache)."""
        report = MaintenanceReport()
        at, last = _floor(start, HOUR), _floor(end, HOUR) + HOUR
        with self.engine.connect() as conn, _bulk_cache(conn, cache_mib):
            while at < last:
                step_end = min(at + STEP, last)
                with conn.begin():
                    report.hours += _roll_hours(conn, at, step_end)
                at = step_end
            day = _floor(start, DAY)
            while day < last:  # each day once, from all its hours
                with conn.begin():
                    report.days += _roll_days(conn, day, day + DAY)
                day += DAY
        return report

    def expire(self, now: datetime, report: MaintenanceReport) -> None:
        watermark = self._watermark()
        if watermark is None:
            return
        # Raw samples go only once their hour is rolled up.
        cut = min(now - self.retention.raw, watermark)
        report.deleted_samples += self._delete_in_steps(models.Sample, "observed_at", cut)
        report.deleted_rollups += self._delete_in_steps(
            models.HourlyRollup, "bucket", now - self.retention.hourly
        )
        if self.retention.daily is not None:
            report.deleted_rollups += self._delete_in_steps(
                models.DailyRollup, "bucket", now - self.retention.daily
            )
        with self.engine.begin() as conn:
            report.deleted_events += _delete_before(
                conn, models.AccountEvent, "at", now - self.retention.events
            )
            detections = models.table(models.Detection)
            old = conn.execute(delete(detections).where(detections.c.ended_at < now - self.retention.events))
            report.deleted_events += old.rowcount or 0
            _delete_before(conn, models.WatchlistChange, "at", now - timedelta(days=7))

    def _delete_in_steps(self, model: type[models.Base], column: str, cut: datetime) -> int:
        """Delete rows older than ``cut``, a few hours of them per transaction (no huge transactions)."""
        table = models.table(model)
        with self.engine.connect() as conn:
            oldest = conn.scalar(select(func.min(table.c[column])))
        deleted = 0
        at = oldest
        while at is not None and at < cut:
            at = min(at + DELETE_STEP, cut)
            with self.engine.begin() as conn:
                deleted += _delete_before(conn, model, column, at)
        return deleted

    def _watermark(self) -> datetime | None:
        with self.engine.connect() as conn:
            return rolled_up_until(conn)

    def _setting(self, name: str) -> str | None:
        with self.engine.connect() as conn:
            value: str | None = conn.scalar(select(models.Setting.value).where(models.Setting.name == name))
        return value

    def _oldest_sample(self) -> datetime | None:
        with self.engine.connect() as conn:
            oldest: datetime | None = conn.scalar(select(func.min(models.Sample.observed_at)))
        return oldest


@contextmanager
def _bulk_cache(conn: Connection, mib: int) -> Iterator[None]:
    """SQLite: a page cache of ``mib`` MiB on this connection while the block runs, the default after. A
    range of hours is read through the time index from rows stored in account order, each page many
    times: with the default 2 MiB cache an import's rollups re-read most pages from the OS (2,000
    accounts x 7 days: 7.1 CPU-s with it, 4.5-5.4 with 256 MiB)."""
    if not mib or conn.dialect.name != "sqlite":
        yield
        return
    conn.exec_driver_sql(f"PRAGMA cache_size = -{mib * 1024}")
    conn.commit()  # ends the transaction SQLAlchemy began for the pragma: each step begins its own
    try:
        yield
    finally:
        conn.rollback()  # a step that failed
        conn.exec_driver_sql("PRAGMA cache_size = -2000")  # SQLite's default; frees the pages
        conn.commit()


def _floor(when: datetime, size: timedelta) -> datetime:
    seconds = int(when.timestamp())
    step = int(size.total_seconds())
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


def _roll_hours(conn: Connection, start: datetime, end: datetime) -> int:
    """Hourly buckets of the raw samples from ``start`` to ``end``: one INSERT ... SELECT ... GROUP BY."""
    return _roll(conn, _HOURS, start, end)


def _roll_days(conn: Connection, start: datetime, end: datetime) -> int:
    """Whole days from the hourly rollups (a day is rewritten as its hours arrive)."""
    return _roll(conn, _DAYS, start, end)


@dataclass(frozen=True)
class _Source:
    """Where a rollup reads from: the columns that give each value of a bucket."""

    table: str
    target: str
    time: str  # the column the bucket is taken from
    size: str  # "hour" or "day"
    first_at: str
    first: str
    last_at: str
    last: str
    low: str
    high: str
    count: str
    following: str
    posts: str


_HOURS = _Source(
    table="samples", target="samples_hourly", time="observed_at", size="hour",
    first_at="observed_at", first="followers", last_at="observed_at", last="followers",
    low="followers", high="followers", count="count(*)", following="following", posts="posts",
)  # fmt: skip
_DAYS = _Source(
    table="samples_hourly", target="samples_daily", time="bucket", size="day",
    first_at="first_at", first="first_followers", last_at="last_at", last="last_followers",
    low="min_followers", high="max_followers", count="sum(samples)", following="last_following",
    posts="last_posts",
)  # fmt: skip


def _roll(conn: Connection, source: _Source, start: datetime, end: datetime) -> int:
    statement = text(_rollup_sql(source, conn.dialect.name)).bindparams(
        bindparam("start", type_=models.UtcDateTime), bindparam("end", type_=models.UtcDateTime)
    )
    return conn.execute(statement, {"start": start, "end": end}).rowcount or 0


def _rollup_sql(source: _Source, dialect: str) -> str:
    """The statement that (re)writes every bucket with a row in the range; the values are those of the rows
    in time order: first, last, lowest, highest, how many, the last following/posts that were not null."""
    s = source
    first, last, bucket, key = _SQLITE if dialect == "sqlite" else _POSTGRESQL
    values = (
        f"min({s.first_at}), {first(s.first, s.first_at)}, max({s.last_at}), "
        f"{last(s.last, s.last_at)}, min({s.low}), max({s.high}), {s.count}, {last(s.following, s.last_at)}, "
        f"{last(s.posts, s.last_at)}, max(followers_step)"
    )
    head, tail = bucket_upsert(s.target)
    return (
        f"{head}SELECT account_id, {bucket(s.time, s.size)}, {values} FROM {s.table} "
        f"WHERE {s.time} >= :start AND {s.time} < :end GROUP BY account_id, {key(s.time, s.size)}{tail}"
    )


def bucket_upsert(table: str) -> tuple[str, str]:
    """The head and tail of a statement that (re)writes rollup buckets of ``table`` from a SELECT or
    VALUES giving account_id, bucket, then ROLLUP_VALUES in order: a bucket already there is replaced."""
    updates = ", ".join(f"{name} = excluded.{name}" for name in ROLLUP_VALUES)
    head = f"INSERT INTO {table} (account_id, bucket, {', '.join(ROLLUP_VALUES)}) "
    return head, f" ON CONFLICT (account_id, bucket) DO UPDATE SET {updates}"


# SQLite keeps times as text of one width (YYYY-MM-DD HH:MM:SS.ffffff, as SQLAlchemy and loading.py write
# them) that sorts as the times do: the smallest "time || value" of a bucket is its first row's, and the
# value is what follows the time. One pass over the rows, no sort within a bucket.
_WIDTH = 26


def _sqlite_first(value: str, at: str) -> str:
    return f"CAST(substr(min({at} || {value}), {_WIDTH + 1}) AS INTEGER)"


def _sqlite_last(value: str, at: str) -> str:
    # a null value makes the concatenation null, which max() passes over: the last value that was not null
    return f"CAST(substr(max({at} || {value}), {_WIDTH + 1}) AS INTEGER)"


def _sqlite_key(at: str, size: str) -> str:
    return f"substr({at}, 1, {13 if size == 'hour' else 10})"


def _sqlite_bucket(at: str, size: str) -> str:
    # the same for every row of the group (its key), written as the start of the bucket
    return f"{_sqlite_key(at, size)} || '{':00:00.000000' if size == 'hour' else ' 00:00:00.000000'}'"


def _postgresql_first(value: str, at: str) -> str:
    return f"(array_agg({value} ORDER BY {at}))[1]"


def _postgresql_last(value: str, at: str) -> str:
    return f"(array_agg({value} ORDER BY {at} DESC) FILTER (WHERE {value} IS NOT NULL))[1]"


def _postgresql_bucket(at: str, size: str) -> str:
    # in UTC whatever the session's time zone (a day starts at midnight UTC, as everywhere else here)
    return f"date_trunc('{size}', {at} AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"


def _postgresql_key(at: str, size: str) -> str:
    return "2"  # the bucket, the second column


_SQLITE = (_sqlite_first, _sqlite_last, _sqlite_bucket, _sqlite_key)
_POSTGRESQL = (_postgresql_first, _postgresql_last, _postgresql_bucket, _postgresql_key)


ROLLUP_VALUES = (
    "first_at",
    "first_followers",
    "last_at",
    "last_followers",
    "min_followers",
    "max_followers",
    "samples",
    "last_following",
    "last_posts",
    "followers_step",
)


def _delete_before(conn: Connection, model: type[models.Base], column: str, cut: datetime) -> int:
    table = models.table(model)
    return conn.execute(delete(table).where(table.c[column] < cut)).rowcount or 0


def _set(conn: Connection, name: str, value: str) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(models.table(models.Setting)).values(name=name, value=value)
    conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"value": value}))


def _lock(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return True
    got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(conn, LOCK)}))
    conn.commit()  # the session lock stays; the connection must not sit idle in a transaction meanwhile
    return got


def _unlock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(conn, LOCK)})
        conn.commit()
