"""Each account's change and growth over 24 h and 7 d, kept on its row (service/store/changes.py), on SQLite
and PostgreSQL: written with the samples by the daemon's batches and by ``import``, true to the
samples by /metrics' rule (the last hourly point at or before the cut-off), and filled in by migration 0004."""

from __future__ import annotations

import random
from bisect import bisect_right
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, delete, select, text

from service.accounts import AccountRef
from service.cli import main
from service.config import RetentionConfig
from service.samples import Sample
from service.store import changes, models
from service.store.repository import Store
from service.store.rollups import Maintenance
from tests.conftest import T0, index_definition
from tests.detection.test_backtest_cli import write_csv

WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}


def _history(seed: int, days: int = 9) -> list[Sample]:
    """Irregular polls (a few minutes to a few hours apart, some long gaps) of a count that moves either way."""
    rng = random.Random(seed)
    ref = AccountRef("x", f"acct{seed}")
    at, count, samples = T0, rng.randrange(0, 5_000_000), []
    gap = rng.choice([5, 15, 30, 60, 180])
    while at < T0 + timedelta(days=days):
        samples.append(Sample(ref, at, count))
        count = max(count + int(rng.gauss(rng.uniform(-50, 200), 300)), 0)
        at += timedelta(minutes=gap * rng.uniform(0.3, 1.7) + (600 if rng.random() < 0.01 else 0))
    return samples


def _expected(samples: list[Sample]) -> dict[str, int | None]:
    """The rule, from the samples in Python: the count at the last hourly point (an hour's last sample)
    at or before (latest - window)."""
    points: dict[int, Sample] = {}
    for sample in samples:
        points[int(sample.observed_at.timestamp()) // 3600] = sample
    ordered = sorted(points.values(), key=lambda s: s.observed_at)
    times = [s.observed_at for s in ordered]
    latest = samples[-1]
    found: dict[str, int | None] = {}
    for name, window in WINDOWS.items():
        older = bisect_right(times, latest.observed_at - window)
        found[name] = latest.followers - ordered[older - 1].followers if older else None
    return found


def _kept(engine: Engine, account_id: int) -> dict[str, object]:
    accounts = models.table(models.Account)
    with engine.connect() as conn:
        row = conn.execute(select(accounts).where(accounts.c.id == account_id)).one()
    return {name: getattr(row, name) for name in ("change_24h", "change_7d", "growth_24h", "growth_7d")}


def _check(kept: dict[str, object], samples: list[Sample]) -> None:
    latest = samples[-1].followers
    for name, change in _expected(samples).items():
        assert kept[f"change_{name}"] == change, name
        growth = kept[f"growth_{name}"]
        if change is None or latest == change:  # no old count, or an old count of 0
            assert growth is None, name
        else:
            assert growth == pytest.approx(change / (latest - change), rel=1e-9), name


def _watched(store: Store, samples: list[Sample]) -> int:
    """The id of the account the samples are of, watched from T0."""
    ref = samples[0].account
    store.watch(ref, T0)
    return store.account_ids([ref])[ref]


def _write_as_polled(store: Store, account_id: int, samples: list[Sample], batch: int) -> None:
    for start in range(0, len(samples), batch):
        store.write([(account_id, s) for s in samples[start : start + batch]], [])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_daemons_batches_keep_the_change_and_growth_by_the_hourly_point_rule(
    store: Store, engine: Engine, seed: int
) -> None:
    samples = _history(seed)
    account_id = _watched(store, samples)
    _write_as_polled(store, account_id, samples, batch=7)

    _check(_kept(engine, account_id), samples)


def test_a_backlog_of_older_samples_keeps_the_latest_and_counts_in_at_once(
    store: Store, engine: Engine
) -> None:
    samples = _history(4)
    account_id = _watched(store, samples)
    late = samples[len(samples) // 2 : -1 : 5]
    _write_as_polled(store, account_id, [s for s in samples if s not in late], batch=50)

    store.write([(account_id, s) for s in late], [])  # replayed from the spool, older than the latest

    assert Store(engine).watched()[0].latest_at == samples[-1].observed_at
    _check(_kept(engine, account_id), samples)


def test_a_failure_working_out_the_columns_costs_the_batch_none_of_its_samples(
    store: Store, engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    samples = _history(5)
    account_id = _watched(store, samples)
    _write_as_polled(store, account_id, samples[:-10], batch=50)

    def broken(conn: Connection, _ids: object) -> None:
        conn.execute(text("UPDATE no_such_table SET x = 1"))

    monkeypatch.setattr(changes, "refresh", broken)
    store.write([(account_id, s) for s in samples[-10:]], [])

    assert len(store.history(samples[0].account)) == len(samples)
    assert Store(engine).watched()[0].latest_at == samples[-1].observed_at
    _check(_kept(engine, account_id), samples[:-10])  # as they were before the failed batch
    assert "change columns were not updated" in caplog.text


def test_where_raw_samples_are_gone_the_hourly_rollups_give_the_same_values(
    store: Store, engine: Engine
) -> None:
    samples = _history(5)
    account_id = _watched(store, samples)
    _write_as_polled(store, account_id, samples, batch=200)
    Maintenance(engine, RetentionConfig()).roll_up_range(T0, samples[-1].observed_at + timedelta(hours=1))
    raw = models.table(models.Sample)
    with engine.begin() as conn:  # a raw retention shorter than a week
        conn.execute(delete(raw).where(raw.c.observed_at < samples[-1].observed_at - timedelta(days=2)))
        changes.refresh(conn, [account_id])

    _check(_kept(engine, account_id), samples)


def test_import_keeps_the_change_and_growth_of_the_accounts_it_loads(
    db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    histories = [_history(seed, days=8) for seed in (6, 7)]
    rows = sorted(
        (s.observed_at.strftime("%Y-%m-%dT%H:%M:%SZ"), str(s.account), s.followers)
        for h in histories
        for s in h
    )
    assert main(["import", str(write_csv(tmp_path / "h.csv", rows)), "--db", db_url]) == 0, (
        capsys.readouterr()
    )

    ids = Store(engine).account_ids([h[0].account for h in histories])
    for history in histories:
        _check(_kept(engine, ids[history[0].account]), history)


def test_migration_0004_fills_the_columns_for_stored_accounts_and_indexes_them(
    store: Store, engine: Engine
) -> None:
    from alembic import command

    from service.store.database import alembic_config

    samples = _history(8)
    account_id = _watched(store, samples)
    _write_as_polled(store, account_id, samples, batch=500)
    command.downgrade(alembic_config(engine), "0003")
    command.upgrade(alembic_config(engine), "head")

    _check(_kept(engine, account_id), samples)
    definition = index_definition(engine, "ix_accounts_change_24h")
    assert definition is not None
    if engine.dialect.name == "postgresql":
        assert "DESC NULLS LAST" in definition
