"""The database goes away while the daemon runs: samples wait in memory, none are lost, writes resume."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from service.accounts import AccountRef
from service.metrics import ServiceMetrics
from service.samples import AccountState, Sample
from service.store.database import upgrade
from service.store.repository import AccountUpdate, Store
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


async def test_a_record_the_database_refuses_is_quarantined_and_every_other_record_is_written(
    store: Store,
) -> None:
    """One poisoned record (a NUL, a lone surrogate, a count too large for the column) among good ones."""
    refs = [AccountRef("x", f"user{i}") for i in range(6)]
    store.watch_many(refs, T0)
    ids = store.account_ids(refs)
    registry = CollectorRegistry()
    writer = SampleWriter(store, ServiceMetrics(registry))
    good = [(ids[ref], Sample(ref, T0 + timedelta(minutes=i), 1_000 + i)) for i, ref in enumerate(refs)]
    poisoned = [
        AccountUpdate(ids[refs[0]], T0, AccountState.ERRORING, "bad\x00text"),
        AccountUpdate(ids[refs[1]], T0, AccountState.ACTIVE, None, None, "lone\udc80surrogate"),
    ]
    too_large = (ids[refs[2]], Sample(refs[2], T0 + timedelta(hours=1), 10**20))
    writer.submit(
        [*good[:3], too_large, *good[3:]], [*poisoned, AccountUpdate(ids[refs[3]], T0, AccountState.ACTIVE)]
    )

    assert await writer.flush()

    assert store.sample_count() == 6
    assert writer.buffered == 0
    kept = writer.spool.quarantined()
    assert {k.kind for k in kept} <= {"sample", "update"} and len(kept) >= 2
    assert any(k.kind == "sample" for k in kept)  # the count no column can hold
    assert registry.get_sample_value("flockwatch_quarantined_records_total", {"kind": "sample"}) == 1
    assert {a.ref: a.state for a in store.watched()}[refs[3]] is AccountState.ACTIVE


async def test_a_database_that_refuses_everything_quarantines_nothing_and_keeps_the_spool() -> None:
    """A read-only database after a failover, missing permissions or a bug: not the records' fault."""
    from sqlalchemy.exc import InternalError

    class ReadOnly(Store):
        def write_batch(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            raise InternalError("INSERT", {}, Exception("cannot execute INSERT in a read-only transaction"))

    class Broken(Store):
        def write_batch(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
            raise RuntimeError("a bug")

    for store_class in (ReadOnly, Broken):
        engine = create_engine("sqlite://")
        upgrade(engine)
        registry = CollectorRegistry()
        writer = SampleWriter(store_class(engine), ServiceMetrics(registry))
        writer.submit([(1, Sample(ACCOUNT, T0 + timedelta(minutes=m), 5)) for m in range(16)], [])
        assert not await writer.flush()
        assert writer.spool.quarantined() == [] and writer.buffered == 16
        assert registry.get_sample_value("flockwatch_database_up") == 0


async def test_a_spooled_batch_that_cannot_be_read_back_is_set_aside_and_the_rest_is_written(
    store: Store,
) -> None:
    store.watch(ACCOUNT, T0)
    account_id = store.account_ids([ACCOUNT])[ACCOUNT]
    writer = SampleWriter(store, ServiceMetrics(CollectorRegistry()))
    writer.submit([(account_id, Sample(ACCOUNT, T0, 1))], [])
    with writer.spool._lock:  # a body of a format this release does not know
        writer.spool._db.execute("INSERT INTO pending (samples, body) VALUES (1, '{\"v\": 99}')")
        writer.spool._db.commit()
    writer.submit([(account_id, Sample(ACCOUNT, T0 + timedelta(hours=1), 2))], [])

    assert await writer.flush()

    assert [s.followers for s in store.history(ACCOUNT)] == [1, 2]
    assert [k.kind for k in writer.spool.quarantined()] == ["unreadable"]
