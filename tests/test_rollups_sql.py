"""The rollups the database computes (one INSERT ... SELECT ... GROUP BY per step) against a plain Python
computation over the same samples: random counts, times shared by many accounts and on the bucket
boundaries, following/posts often unknown, and samples written late into hours already rolled up."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, make_url, select

from service.accounts import AccountRef
from service.config import RetentionConfig
from service.samples import Sample
from service.store import models
from service.store.database import open_engine
from service.store.repository import Store
from service.store.rollups import Maintenance
from tests.conftest import T0

COLUMNS = (
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


def test_database_rollups_equal_a_plain_computation_of_the_same_samples(store: Store, db_url: str) -> None:
    rng = random.Random(2026)
    refs = [AccountRef("x", f"user{i}") for i in range(12)]
    for ref in refs:
        store.watch(ref, T0)
    ids = store.account_ids(refs)
    stored: dict[tuple[int, datetime], Sample] = {}
    store.write(_samples(rng, ids, stored, T0, T0 + timedelta(days=2)), [])
    with _utc_plus_5_45(store.engine, db_url) as engine:
        maintenance = Maintenance(engine, RetentionConfig())
        maintenance.run(T0 + timedelta(days=2))
        # late: into hours and days already rolled up, some before the first sample, none stored twice
        late = _samples(rng, ids, stored, T0 - timedelta(hours=3), T0 + timedelta(days=2), keep=0.15)
        store.write_batch(late, [])

        report = maintenance.run(T0 + timedelta(days=2, hours=1))

    assert late and report.hours > 0
    assert _stored(store.engine, models.HourlyRollup) == _expected(stored, timedelta(hours=1))
    assert _stored(store.engine, models.DailyRollup) == _expected(stored, timedelta(days=1))


def _samples(
    rng: random.Random,
    ids: dict[AccountRef, int],
    stored: dict[tuple[int, datetime], Sample],
    start: datetime,
    end: datetime,
    keep: float = 0.6,
) -> list[tuple[int, Sample]]:
    """Times on a 7.5-minute grid shared by the accounts (so on every hour and day boundary), some with
    microseconds; each account takes a random share of them. Times already stored are left out."""
    times = []
    at = start
    while at < end:
        times.append(at + timedelta(microseconds=rng.choice((0, 0, 1, 999_999))))
        at += timedelta(seconds=450)
    written = []
    for ref, account_id in ids.items():
        for when in times:
            if rng.random() > keep or (account_id, when) in stored:
                continue
            sample = Sample(
                ref,
                when,
                rng.randrange(0, 5_000_000),
                _maybe(rng, rng.randrange(0, 10_000)),
                _maybe(rng, rng.randrange(0, 100_000)),
                rng.choice((1, 1, 1, 10, 10_000)),
            )
            stored[account_id, when] = sample
            written.append((account_id, sample))
    return written


def _maybe(rng: random.Random, value: int) -> int | None:
    return None if rng.random() < 0.4 else value


@contextmanager
def _utc_plus_5_45(engine: Engine, db_url: str) -> Iterator[Engine]:
    """On PostgreSQL, maintenance on sessions whose time zone is not UTC (nor a whole number of hours off):
    buckets are UTC hours and days all the same."""
    if engine.dialect.name != "postgresql":
        yield engine
        return
    url = make_url(db_url)
    options = f"{url.query.get('options', '')} -c timezone=Asia/Kathmandu".strip()
    other = open_engine(url.update_query_dict({"options": options}).render_as_string(hide_password=False))
    try:
        yield other
    finally:
        other.dispose()


def _stored(engine: Engine, model: type[models.Base]) -> dict[tuple[int, datetime], tuple[Any, ...]]:
    table = models.table(model)
    with engine.connect() as conn:
        rows = conn.execute(select(table))
        return {(row.account_id, row.bucket): tuple(getattr(row, c) for c in COLUMNS) for row in rows}


def _expected(
    stored: dict[tuple[int, datetime], Sample], size: timedelta
) -> dict[tuple[int, datetime], tuple[Any, ...]]:
    """Each bucket straight from its samples in time order (a day from its samples, not its hours)."""
    buckets: dict[tuple[int, datetime], list[Sample]] = defaultdict(list)
    for (account_id, when), sample in sorted(stored.items(), key=lambda item: item[0]):
        buckets[account_id, _floor(when, size)].append(sample)
    return {key: _bucket(rows) for key, rows in buckets.items()}


def _bucket(rows: list[Sample]) -> tuple[Any, ...]:
    counts = [s.followers for s in rows]
    following = [s.following for s in rows if s.following is not None]
    posts = [s.posts for s in rows if s.posts is not None]
    return (
        rows[0].observed_at,
        counts[0],
        rows[-1].observed_at,
        counts[-1],
        min(counts),
        max(counts),
        len(rows),
        following[-1] if following else None,
        posts[-1] if posts else None,
        max(s.followers_step for s in rows),
    )


def _floor(when: datetime, size: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (when - epoch) // size * size
