"""The database goes away while the daemon runs: samples wait in memory, none are lost, writes resume."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from service.accounts import AccountRef
from service.metrics import ServiceMetrics
from service.samples import Sample
from service.store.database import upgrade
from service.store.repository import Store
from service.writer import SampleWriter
from tests.conftest import T0

ACCOUNT = AccountRef("github", "torvalds")


async def test_samples_are_buffered_while_the_database_is_unreachable(tmp_path: Path) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    # NullPool: every write opens the file anew, so moving the folder away really cuts the database off
    engine = create_engine(f"sqlite:///{folder / 'flockwatch.db'}", poolclass=NullPool)
    upgrade(engine)
    store = Store(engine)
    store.watch(ACCOUNT, T0)
    account_id = store.account_ids([ACCOUNT])[ACCOUNT]
    registry = CollectorRegistry()
    writer = SampleWriter(store, ServiceMetrics(registry))
    samples = [(account_id, Sample(ACCOUNT, T0 + timedelta(hours=h), 1_000 + h)) for h in range(6)]

    writer.submit(samples[:2], [])
    assert await writer.flush()
    folder.rename(tmp_path / "gone")
    writer.submit(samples[2:4], [])
    assert not await writer.flush()
    writer.submit(samples[4:], [])
    assert not await writer.flush()
    assert writer.buffered == 4
    assert registry.get_sample_value("flockwatch_database_up") == 0
    assert registry.get_sample_value("flockwatch_samples_buffered") == 4
    assert registry.get_sample_value("flockwatch_database_errors_total") == 2

    (tmp_path / "gone").rename(folder)
    assert await writer.flush()
    assert [s.followers for s in store.history(ACCOUNT)] == [1_000 + h for h in range(6)]
    assert registry.get_sample_value("flockwatch_database_up") == 1
    assert registry.get_sample_value("flockwatch_samples_written_total") == 6
    assert writer.buffered == 0
