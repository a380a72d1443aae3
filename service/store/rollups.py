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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, select, text

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

    def roll_up_range(self, start: datetime, end: datetime) -> MaintenanceReport:
        """Roll up the hours from ``start`` to ``end`` (after an import), whatever the watermark says."""
        report = MaintenanceReport()
        at, last = _floor(start, HOUR), _floor(end, HOUR) + HOUR
        while at < last:
            step_end = min(at + STEP, last)
            with self.engine.begin() as conn:
                report.hours += _roll_hours(conn, at, step_end)
            at = step_end
        day = _floor(start, DAY)
        while day < last:  # each day once, from all its hours
            with self.engine.begin() as conn:
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


def _floor(when: datetime, size: timedelta) -> datetime:
    seconds = int(when.timestamp())
    step = int(size.total_seconds())
    return datetime.fromtimestamp(seconds - seconds % step, UTC)


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
    """Rows ordered by account and time → one bucket row per account and bucket."""
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


def _roll_hours(conn: Connection, start: datetime, end: datetime) -> int:
    table = models.table(models.Sample)
    query = (
        select(
            table.c.account_id,
            table.c.observed_at,
            table.c.followers,
            table.c.following,
            table.c.posts,
            table.c.followers_step,
        )
        .where(table.c.observed_at >= start, table.c.observed_at < end)
        .order_by(table.c.account_id, table.c.observed_at)
    )
    rows = list(_aggregate(conn.execute(query), HOUR))
    _upsert(conn, models.HourlyRollup, rows)
    return len(rows)


def _roll_days(conn: Connection, start: datetime, end: datetime) -> int:
    """Whole days from the hourly rollups (a day is rewritten as its hours arrive)."""
    table = models.table(models.HourlyRollup)
    query = (
        select(table)
        .where(table.c.bucket >= start, table.c.bucket < end)
        .order_by(table.c.account_id, table.c.bucket)
    )
    days: dict[tuple[int, datetime], _Bucket] = {}
    for hour in conn.execute(query):
        key = (hour.account_id, _floor(hour.bucket, DAY))
        day = days.get(key)
        if day is None:
            days[key] = _Bucket(
                hour.first_at,
                hour.first_followers,
                hour.last_at,
                hour.last_followers,
                hour.min_followers,
                hour.max_followers,
                hour.samples,
                hour.last_following,
                hour.last_posts,
                hour.followers_step,
            )
            continue
        day.take(hour.last_at, hour.last_followers, hour.last_following, hour.last_posts, hour.followers_step)
        day.samples += hour.samples - 1
        day.min_followers = min(day.min_followers, hour.min_followers)
        day.max_followers = max(day.max_followers, hour.max_followers)
    rows = [day.row(*key) for key, day in days.items()]
    _upsert(conn, models.DailyRollup, rows)
    return len(rows)


_ROLLUP_VALUES = (
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


def _upsert(conn: Connection, model: type[models.Base], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    table = models.table(model)
    for start in range(0, len(rows), 5_000):
        statement = dialect.insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=["account_id", "bucket"],
            set_={name: statement.excluded[name] for name in _ROLLUP_VALUES},
        )
        conn.execute(statement, rows[start : start + 5_000])


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
