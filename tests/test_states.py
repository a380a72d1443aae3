"""Detections as stored rows, and detection states carried across restarts, on SQLite and PostgreSQL.

One row per anomaly however many versions of it the engine reports; a restart that loads the saved states
(or rebuilds them from samples) goes on updating the same row, and closes rows whose anomaly ended while the
daemon was away.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from service.accounts import AccountRef
from service.board import Board
from service.clock import ManualClock
from service.config import RetentionConfig
from service.detection.engine import DetectionEngine
from service.detection.recorder import DetectionRecorder
from service.metrics import ServiceMetrics
from service.samples import Sample
from service.spool import Batch, Spool
from service.states import AccountStates
from service.store import models
from service.store.database import upgrade
from service.store.repository import Store, WatchedAccount
from service.store.rollups import Maintenance
from service.writer import SampleWriter
from tests.detection.helpers import START, organic_gains, series

DRIPPING = AccountRef("x", "dripping")


class Run:
    """One run of the daemon's detection path: engine, recorder, board and states over one store."""

    def __init__(self, store: Store, clock: ManualClock) -> None:
        self.store = store
        self.engine = DetectionEngine()
        self.recorder = DetectionRecorder(self.engine)
        self.board = Board()
        self.states = AccountStates(store, self.engine, self.board, self.recorder, clock)

    def account(self) -> WatchedAccount:
        (account,) = self.store.watched()
        return account

    def poll(self, samples: Sequence[Sample]) -> None:
        """Each sample as its own batch, as the poller delivers them: samples and detections stored together."""
        account_id = self.account().id
        for sample in samples:
            pairs = [(account_id, sample)]
            self.store.write_batch(pairs, [], self.recorder.judge(pairs))

    async def start(self) -> None:
        async def take(batch: Batch) -> None:
            self.store.write_batch(batch.samples, batch.updates, batch.detections)

        await self.states.load([self.account()], take)


def _rows(store: Store, kind: str) -> list[models.Detection]:
    with store.engine.connect() as conn:
        table = models.table(models.Detection)
        return list(conn.execute(select(table).where(table.c.kind == kind)))  # type: ignore[arg-type]


def test_an_ongoing_anomaly_is_one_row_updated_as_it_goes(store: Store, clock: ManualClock) -> None:
    store.watch(DRIPPING, START)
    run = Run(store, clock)
    run.poll(series("x:dripping", organic_gains(30, 20) + [768] * 10))

    (row,) = _rows(store, "regular_growth")
    assert row.ended_at is None and row.account_id == run.account().id
    assert "gained +768/day for 10 days" in row.summary


async def test_a_restart_loads_the_saved_state_and_updates_the_same_row(
    store: Store, clock: ManualClock
) -> None:
    store.watch(DRIPPING, START)
    samples = series("x:dripping", organic_gains(30, 20) + [768] * 12)
    first = Run(store, clock)
    first.poll(samples[:36])
    assert await first.states.checkpoint([first.account()]) == 1

    restarted = Run(store, clock)
    await restarted.start()
    restarted.poll(samples[36:])

    assert restarted.engine.last_at(DRIPPING) == samples[-1].observed_at.timestamp()
    (row,) = _rows(store, "regular_growth")
    assert "for 12 days" in row.summary


async def test_a_restart_without_a_saved_state_rebuilds_it_from_samples(
    store: Store, clock: ManualClock
) -> None:
    store.watch(DRIPPING, START)
    samples = series("x:dripping", organic_gains(30, 20) + [768] * 12)
    Run(store, clock).poll(samples[:36])
    clock.set(samples[35].observed_at)

    restarted = Run(store, clock)
    loaded_before = await _load(restarted)
    restarted.poll(samples[36:])

    assert loaded_before == (0, 1)
    (row,) = _rows(store, "regular_growth")
    assert "for 12 days" in row.summary


async def test_a_state_rebuilt_after_raw_samples_expired_reads_the_hourly_rollups(
    store: Store, clock: ManualClock
) -> None:
    store.watch(DRIPPING, START)
    samples = series("x:dripping", organic_gains(30, 20) + [768] * 12)
    Run(store, clock).poll(samples[:36])
    clock.set(samples[35].observed_at)
    Maintenance(store.engine, RetentionConfig(raw=timedelta(days=3))).run(clock.now() + timedelta(hours=1))
    assert store.sample_count() == 3  # the raw samples of the last three days are all that is left

    restarted = Run(store, clock)
    loaded_before = await _load(restarted)
    restarted.poll(samples[36:])

    assert loaded_before == (0, 1)
    (row,) = _rows(store, "regular_growth")  # the same anomaly, followed from its start
    assert "for 12 days" in row.summary


async def test_a_row_whose_anomaly_ended_while_away_is_closed(store: Store, clock: ManualClock) -> None:
    store.watch(DRIPPING, START)
    samples = series("x:dripping", organic_gains(30, 20) + [768] * 10 + organic_gains(10, 20, seed=3))
    first = Run(store, clock)
    first.poll(samples[:38])
    await first.states.checkpoint([first.account()])
    account_id = first.account().id
    # stored by a run that crashed before its engine saw them
    store.write_batch([(account_id, s) for s in samples[38:]], [])

    await Run(store, clock).start()

    (row,) = _rows(store, "regular_growth")
    assert row.ended_at == START + timedelta(days=40)


async def _load(run: Run) -> tuple[int, int]:
    async def take(batch: Batch) -> None:
        run.store.write_batch(batch.samples, batch.updates, batch.detections)

    loaded = await run.states.load([run.account()], take)
    return loaded.restored, loaded.rebuilt


async def test_detections_found_while_the_database_is_down_are_stored_after_it_returns(
    tmp_path: Path,
) -> None:
    """A regular-growth phase that opens and ends during an outage: its row is written once the database is
    back, with the times the engine saw, and ended."""
    folder = tmp_path / "db"
    folder.mkdir()
    database = create_engine(f"sqlite:///{folder / 'flockwatch.db'}", poolclass=NullPool)
    upgrade(database)
    store = Store(database)
    store.watch(DRIPPING, START)
    (account,) = store.watched()
    writer = SampleWriter(store, ServiceMetrics(CollectorRegistry()), Spool(tmp_path / "spool.db"))
    recorder = DetectionRecorder(DetectionEngine())
    samples = series("x:dripping", organic_gains(30, 20) + [768] * 10 + organic_gains(10, 20, seed=3))

    folder.rename(tmp_path / "away")
    for sample in samples:
        pairs = [(account.id, sample)]
        await writer.take(Batch(pairs, [], recorder.judge(pairs)))
    assert not await writer.flush()
    (tmp_path / "away").rename(folder)
    assert await writer.flush()

    (row,) = _rows(store, "regular_growth")
    assert row.started_at == START + timedelta(days=30)
    assert row.ended_at == START + timedelta(days=40)
    assert store.sample_count() == len(samples)
    writer.spool.close()
