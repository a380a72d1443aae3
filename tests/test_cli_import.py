"""``flockwatch import`` on SQLite and PostgreSQL: a file goes in whole or not at all, rows from the future
are refused, and afterwards the rollups, latest counts, detections and engine states are all there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, inspect, select

from service.accounts import AccountRef
from service.cli import main
from service.clock import ManualClock
from service.detection.csvinput import BadRow, RowStream, micros
from service.detection.engine import DetectionEngine
from service.detection.importer import Importer
from service.samples import Sample
from service.store import models
from service.store.database import open_engine
from service.store.repository import Store
from service.store.rollups import Maintenance
from tests.conftest import index_definition
from tests.detection.test_backtest_cli import history_rows, write_csv

Rows = list[tuple[str, str, object]]


def _count(url: str, model: type[models.Base]) -> int:
    engine = open_engine(url)
    with engine.connect() as conn:
        found = int(conn.scalar(select(func.count()).select_from(models.table(model))) or 0)
    engine.dispose()
    return found


def _rows(n: int, accounts: int = 3, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> Rows:
    """``n`` rows, 15 minutes apart per account, accounts interleaved."""
    return [
        (
            (start + timedelta(minutes=15 * (i // accounts))).strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"x:user{i % accounts}",
            1_000 + i,
        )
        for i in range(n)
    ]


def _import(capsys: pytest.CaptureFixture[str], url: str, path: Path, *extra: str) -> tuple[int, str]:
    code = main(["import", str(path), "--db", url, *extra])
    return code, capsys.readouterr().err


def test_a_bad_row_at_the_end_leaves_the_database_untouched(
    db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The old import wrote 5,000 rows a transaction: everything before the refused count stayed stored.
    rows = [*_rows(12_000), ("2026-03-01T00:00:00Z", "x:user0", 10**20)]
    code, err = _import(capsys, db_url, write_csv(tmp_path / "h.csv", rows))  # type: ignore[arg-type]

    assert code == 2
    assert "h.csv:12002: followers 100000000000000000000 is too large" in err
    assert "nothing was imported" in err and "Traceback" not in err
    assert (_count(db_url, models.Sample), _count(db_url, models.Account)) == (0, 0)


def test_a_row_from_the_future_is_refused_and_never_stored(
    db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = write_csv(tmp_path / "h.csv", [*_rows(30), (soon, "x:user1", 5)])  # type: ignore[arg-type]

    code, err = _import(capsys, db_url, path)
    assert code == 2 and "h.csv:32: dated in the future" in err
    assert _count(db_url, models.Sample) == 0

    code, err = _import(capsys, db_url, path, "--skip-bad-rows")
    assert code == 0 and "skipped 1 bad rows, 1 of them dated in the future" in err
    assert _count(db_url, models.Sample) == 30


def test_a_database_failure_half_way_rolls_the_whole_file_back(
    db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.store import loading

    path = write_csv(tmp_path / "h.csv", _rows(3_000))  # type: ignore[arg-type]
    loaded: list[int] = []
    postgres = db_url.startswith("postgresql")
    loader_class = loading.PostgresLoader if postgres else loading.SqliteLoader
    original = loader_class.load

    def failing(self: loading.SampleLoader, payload: str) -> None:
        loaded.append(1)
        if len(loaded) == 3:
            raise OSError("the disk is full")
        original(self, payload)

    monkeypatch.setattr(loader_class, "load", failing)
    with pytest.raises(OSError, match="disk is full"):
        Importer(engine, ManualClock(datetime.now(UTC)), chunk_rows=500).load(path, False)

    assert len(loaded) == 3  # two chunks went in before the failure ...
    assert _count(db_url, models.Sample) == 0  # ... and went away with it
    assert _count(db_url, models.Account) == 0


def _samples_structures(engine: Engine) -> tuple[list[str], list[str]]:
    """The names of the samples table's indexes and foreign keys, as the database reports them."""
    listed = (
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'samples' AND sql IS NOT NULL"
        if engine.dialect.name == "sqlite"
        else "SELECT indexname FROM pg_indexes WHERE tablename = 'samples' AND indexname <> 'pk_samples' "
        "AND schemaname = current_schema()"
    )
    with engine.connect() as conn:
        indexes = sorted(str(row[0]) for row in conn.exec_driver_sql(listed))
    keys = sorted(str(key["referred_table"]) for key in inspect(engine).get_foreign_keys("samples"))
    return indexes, keys


def test_a_first_load_sets_the_time_index_aside_and_brings_it_back_even_when_it_fails(
    db_url: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.store import loading

    before = _samples_structures(engine)
    assert before == (["ix_samples_observed_at"], ["accounts"])
    dropped: list[str] = []
    original = loading.SetAside.__init__

    def noting(self: loading.SetAside, conn: object, model: type[models.Base], primary: bool = False) -> None:
        original(self, conn, model, primary)  # type: ignore[arg-type]
        dropped.extend(str(index.name) for index in self.indexes)
        raise OSError("the disk is full")

    monkeypatch.setattr(loading.SetAside, "__init__", noting)
    path = write_csv(tmp_path / "h.csv", _rows(3_000))  # type: ignore[arg-type]
    with pytest.raises(OSError, match="disk is full"):
        Importer(engine, ManualClock(datetime.now(UTC))).load(path, False)
    assert dropped == ["ix_samples_observed_at"]  # the empty table's index was set aside ...
    assert _samples_structures(engine) == before  # ... and the rollback brought it back

    monkeypatch.undo()
    report = Importer(engine, ManualClock(datetime.now(UTC)), chunk_rows=500).load(path, False)
    assert report.added == 3_000 and _samples_structures(engine) == before
    # the rollups' time indexes, set aside while the buckets made beside the load went in, are back too
    assert report.findings is not None
    assert index_definition(engine, "ix_samples_hourly_bucket") and index_definition(
        engine, "ix_samples_daily_bucket"
    )
    with engine.begin() as conn:  # the key is enforced again: an account takes its samples with it
        conn.execute(
            delete(models.table(models.Account)).where(models.table(models.Account).c.handle == "user0")
        )
    assert _count(db_url, models.Sample) == 2_000


def test_after_an_import_the_daemon_has_rollups_latest_counts_detections_and_states(
    db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _import(capsys, db_url, write_csv(tmp_path / "h.csv", history_rows()))
    assert code == 0, err

    store = Store(engine)
    ids = store.account_ids([AccountRef("x", "bought"), AccountRef("x", "quiet")])
    newest = {a.ref: a.latest_at for a in store.watched()}
    assert newest[AccountRef("x", "bought")] == datetime(2026, 5, 30, tzinfo=UTC)
    assert _count(db_url, models.DailyRollup) == 120  # 60 days of 2 accounts
    assert _count(db_url, models.Detection) >= 1
    states = store.load_states(list(ids.values()))
    assert set(states) == set(ids.values())
    for ref, account_id in ids.items():
        engine_now = DetectionEngine()
        engine_now.restore(ref, states[account_id].engine)
        assert engine_now.last_at(ref) == datetime(2026, 5, 30, tzinfo=UTC).timestamp()


def test_a_failure_in_the_rollups_is_raised_and_the_detections_are_still_stored(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    importer = Importer(engine, ManualClock(datetime.now(UTC)), beside=False)  # rolled up after the load
    report = importer.load(write_csv(tmp_path / "h.csv", history_rows()), False)

    def full_disk(self: Maintenance, start: datetime, end: datetime, cache_mib: int = 0) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Maintenance, "roll_up_range", full_disk)
    with pytest.raises(OSError, match="disk full"):
        importer.roll_up_and_analyse(report)

    # PostgreSQL rolls up while the detections are stored; SQLite stores them first, then rolls up
    assert _count(engine.url.render_as_string(hide_password=False), models.Detection) >= 1


def test_the_detectors_read_samples_stored_after_the_file_too(
    db_url: str, engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A daemon polled the account after the exported history ends: the saved state is as of its newest
    # sample, so a restarted daemon replays nothing twice and misses nothing.
    store = Store(engine)
    ref = AccountRef("x", "quiet")
    store.watch(ref, datetime(2026, 6, 1, tzinfo=UTC))
    later = datetime(2026, 6, 2, tzinfo=UTC)
    store.write([(store.account_ids([ref])[ref], Sample(ref, later, 9_999))], [])

    assert _import(capsys, db_url, write_csv(tmp_path / "h.csv", history_rows()))[0] == 0

    (account_id,) = store.account_ids([ref]).values()
    assert store.load_states([account_id])[account_id].as_of == later
    accounts = models.table(models.Account)
    with engine.connect() as conn:
        latest = conn.scalar(select(accounts.c.latest_followers).where(accounts.c.id == account_id))
    assert latest == 9_999


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'2026-01-01,x:a,"' + b"1" * 200_000 + b'"', "field larger than field limit"),
        (b"2026-01-01,x:a,\xff\xfe", "not UTF-8 text"),
        (b"2026-01-01,x:a," + b"1" * 1_100_000, "longer than 1,000,000 characters"),
        (b"2026-01-01,x:\x00a,5", "the handle may hold only"),
    ],
    ids=["huge quoted field", "not UTF-8", "endless line", "NUL"],
)
def test_hostile_rows_are_bad_rows_with_their_line(tmp_path: Path, line: bytes, reason: str) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(b"timestamp,account,followers\n2026-01-01,x:a,5\n" + line + b"\n2026-01-02,x:a,6\n")

    with pytest.raises(BadRow) as caught:
        list(RowStream(path).chunks())
    assert caught.value.line == 3 and reason in caught.value.reason and len(str(caught.value)) < 400

    stream = RowStream(path, skip_bad_rows=True)
    assert [row[2] for chunk in stream.chunks() for row in chunk] == [5, 6]
    assert stream.skipped.count == 1


def test_the_stream_reads_a_chunk_without_reading_the_whole_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "h.csv", _rows(200_000))  # type: ignore[arg-type]
    stream = RowStream(path)
    chunks = stream.chunks(1_000)
    first = next(chunks)
    read = stream.position()
    chunks.close()

    assert len(first) == 1_000
    assert read < path.stat().st_size / 10


def test_the_stream_reads_what_the_strict_reader_reads(tmp_path: Path) -> None:
    from service.detection.csvinput import micros, read_samples

    path = tmp_path / "odd.csv"
    path.write_text(
        "followers,posts,account,timestamp\n"
        "5,,x:a,2026-04-01T00:00:00Z\n"
        '6,3,X:a,"2026-04-01T06:30:15.250+02:00"\n'
        "\n"
        "7,,x:b,1775260800\n"
        "8.0,1,x:b,2026-04-03\n"
    )
    streamed = [row for chunk in RowStream(path).chunks() for row in chunk]
    strict = read_samples(path).samples

    assert sorted(streamed, key=lambda r: (r[1], r[0])) == [
        (str(s.account), micros(s.observed_at), s.followers, s.following, s.posts) for s in strict
    ]


def test_of_two_rows_of_one_account_and_time_the_first_in_the_file_is_kept(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    # Rows are grouped by account before they are stored (a window at a time) and, on PostgreSQL, moved
    # from a staging table: neither may change which of two rows for one moment is kept.
    rows = _rows(3_000)
    rows.insert(1_500, (rows[0][0], rows[0][1], 77))  # the first moment of x:user0 again, later on
    path = write_csv(tmp_path / "h.csv", rows)  # type: ignore[arg-type]

    report = Importer(engine, ManualClock(datetime.now(UTC)), chunk_rows=100, window=700).load(path, False)

    assert (report.rows, report.added) == (3_001, 3_000)
    samples = models.table(models.Sample)
    with engine.connect() as conn:
        first = conn.scalar(select(samples.c.followers).order_by(samples.c.observed_at, samples.c.account_id))
    assert first == 1_000


def test_backtest_replays_rows_from_the_future_but_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = write_csv(tmp_path / "h.csv", [*history_rows(), (soon, "x:quiet", 99_999)])  # type: ignore[list-item]

    assert main(["backtest", str(path)]) == 0
    assert "warning: 1 rows are dated in the future (after now + 5 minutes); import refuses them" in (
        capsys.readouterr().err
    )


def test_the_detectors_read_back_each_stored_time_to_the_microsecond(store: Store, engine: Engine) -> None:
    from service.store.loading import SampleReader

    ref = AccountRef("x", "exact")
    store.watch(ref, datetime(2026, 1, 1, tzinfo=UTC))
    (account_id,) = store.account_ids([ref]).values()
    times = [
        datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(2026, 2, 28, 12, 0, tzinfo=UTC),
        datetime(2026, 3, 1, 0, 0, 0, 1, tzinfo=UTC),
    ]
    store.write([(account_id, Sample(ref, when, 10 + i, i)) for i, when in enumerate(times)], [])

    with engine.connect() as conn:
        reader = SampleReader(conn, [account_id])
        rows = reader.slice(0, micros(datetime(2030, 1, 1, tzinfo=UTC)))
        reader.close()
    assert rows == [(account_id, micros(when), 10 + i, i, 1) for i, when in enumerate(times)]
