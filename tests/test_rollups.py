"""Rollups and retention, on SQLite and PostgreSQL: raw samples go only after their hours are summarised."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from service.accounts import AccountRef
from service.config import RetentionConfig
from service.samples import Sample
from service.store import models
from service.store.repository import Store
from service.store.rollups import Maintenance
from tests.conftest import T0

ALICE = AccountRef("x", "alice")


def _rows(store: Store, model: type[models.Base]) -> list[models.Base]:
    table = models.table(model)
    with store.engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.bucket)))  # type: ignore[arg-type]


def _count(store: Store, model: type[models.Base]) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(models.table(model))) or 0)


def test_complete_hours_and_days_are_rolled_up_with_first_last_low_high_and_count(store: Store) -> None:
    store.watch(ALICE, T0)
    account = store.account_ids([ALICE])[ALICE]
    # 15-minute samples for two days; the count dips once in the first hour
    counts = [1_000 + 3 * i for i in range(192)]
    counts[1] = 990
    store.write(
        [(account, Sample(ALICE, T0 + timedelta(minutes=15 * i), c, 7, 9)) for i, c in enumerate(counts)], []
    )

    report = Maintenance(store.engine, RetentionConfig()).run(T0 + timedelta(days=2, minutes=30))

    hours = _rows(store, models.HourlyRollup)
    assert report.hours == 48 and len(hours) == 48
    first = hours[0]
    assert (
        first.first_followers,
        first.last_followers,
        first.min_followers,
        first.max_followers,
        first.samples,
    ) == (
        1_000,
        1_009,
        990,
        1_009,
        4,
    )
    assert (first.last_following, first.last_posts) == (7, 9)
    days = _rows(store, models.DailyRollup)
    assert [(d.first_followers, d.last_followers, d.samples) for d in days] == [
        (1_000, 1_000 + 3 * 95, 96),
        (1_000 + 3 * 96, 1_000 + 3 * 191, 96),
    ]


def test_raw_samples_past_their_retention_go_and_their_rollups_stay(store: Store) -> None:
    store.watch(ALICE, T0)
    account = store.account_ids([ALICE])[ALICE]
    store.write([(account, Sample(ALICE, T0 + timedelta(hours=h), 100 + h)) for h in range(24 * 10)], [])
    now = T0 + timedelta(days=10)

    Maintenance(store.engine, RetentionConfig(raw=timedelta(days=3), hourly=timedelta(days=7))).run(now)

    assert store.history(ALICE)[0].observed_at == now - timedelta(days=3)
    hours = _rows(store, models.HourlyRollup)
    assert hours[0].bucket == now - timedelta(days=7)
    assert _count(store, models.DailyRollup) == 10


def test_a_sample_written_late_is_rolled_up_again_into_its_hour(store: Store) -> None:
    store.watch(ALICE, T0)
    account = store.account_ids([ALICE])[ALICE]
    store.write([(account, Sample(ALICE, T0 + timedelta(minutes=m), 100 + m)) for m in (0, 30)], [])
    maintenance = Maintenance(store.engine, RetentionConfig())
    maintenance.run(T0 + timedelta(hours=3))
    # written late (a spool backlog), and no one tells the next run: the mark is in the database
    store.write_batch([(account, Sample(ALICE, T0 + timedelta(minutes=45), 200))], [])

    Maintenance(store.engine, RetentionConfig()).run(T0 + timedelta(hours=3))

    (hour,) = _rows(store, models.HourlyRollup)
    assert (hour.samples, hour.last_followers, hour.max_followers) == (3, 200, 200)
