"""``import`` runs the detectors beside the load (service/detection/analyst.py) only where that finds
exactly what reading the stored samples back finds: the same detections, states and open anomalies, on
SQLite and PostgreSQL; and it reads back when it cannot use them."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import IntegrityError

from service.cli import EXIT_INTERRUPTED
from service.clock import ManualClock
from service.detection import analyst, importer
from service.detection.base import PLATFORM_EVENT
from service.detection.importer import Importer, ImportReport
from service.store import buckets, loading, models
from service.store.database import open_engine, upgrade
from tests.conftest import pg_schema
from tests.detection.test_backtest_cli import write_csv

START = datetime(2026, 3, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _history(
    rng: random.Random, every: timedelta = timedelta(hours=6), days: int = 60
) -> list[tuple[str, str, int]]:
    """Time-ordered rows of six accounts of one platform: organic noise, one with a bought drip, one with
    a burst, and a purge of all of them on day 40 (a platform event); one row repeated with another count."""
    counts = {f"x:user{i}": rng.randrange(500, 50_000) for i in range(6)}
    rows = []
    at = START
    while at < START + timedelta(days=days):
        day = (at - START).days
        for name in counts:
            counts[name] += rng.randint(0, 8)
            if name == "x:user1" and 20 <= day < 34:
                counts[name] += 190  # a drip of 760 a day
            if name == "x:user2" and at == START + timedelta(days=25):
                counts[name] += 4_000
            if at == START + timedelta(days=40):
                counts[name] -= counts[name] // 12
            rows.append((at.strftime("%Y-%m-%dT%H:%M:%SZ"), name, counts[name]))
        at += every
    rows.insert(100, (rows[99][0], rows[99][1], rows[99][2] + 50))  # the database keeps the first
    return rows


def _with_following_and_posts(path: Path, rows: list[tuple[str, str, int]], rng: random.Random) -> Path:
    """The rows with following and posts columns, often empty (a bucket keeps the last count given)."""
    lines = ["timestamp,account,followers,following,posts"]
    for at, name, followers in rows:
        following = str(rng.randrange(100, 200)) if rng.random() < 0.5 else ""
        posts = str(rng.randrange(1_000)) if rng.random() < 0.2 else ""
        lines.append(f"{at},{name},{followers},{following},{posts}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def second_engine(db_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A second, empty database of the same kind."""
    second = f"sqlite:///{tmp_path / 'second.db'}"
    with pg_schema() if db_url.startswith("postgresql") else nullcontext(second) as url:
        engine = open_engine(url)
        upgrade(engine)
        yield engine
        engine.dispose()


def _import(engine: Engine, path: Path, beside: bool, **options: int) -> ImportReport:
    importer = Importer(engine, ManualClock(NOW), beside=beside, **options)
    report = importer.load(path, False)
    importer.roll_up_and_analyse(report)
    return report


def _stored(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    detections, states, accounts = (
        models.table(models.Detection),
        models.table(models.DetectorState),
        models.table(models.Account),
    )
    with engine.connect() as conn:
        found = conn.execute(
            select(
                detections.c.key, detections.c.account, detections.c.kind, detections.c.severity,
                detections.c.started_at, detections.c.detected_at, detections.c.ended_at,
                detections.c.score, detections.c.summary, detections.c.explained_by_key,
            ).order_by(detections.c.key)
        )  # fmt: skip
        saved = conn.execute(
            select(accounts.c.platform, accounts.c.handle, states.c.as_of, states.c.engine)
            .join(accounts, accounts.c.id == states.c.account_id)
            .order_by(accounts.c.handle)
        )
        return [tuple(row) for row in found], [tuple(row) for row in saved]


def _rollups(engine: Engine) -> list[list[tuple[object, ...]]]:
    found = []
    with engine.connect() as conn:
        for model in (models.HourlyRollup, models.DailyRollup):
            table = models.table(model)
            rows = conn.execute(select(table).order_by(table.c.account_id, table.c.bucket))
            found.append([tuple(row) for row in rows])
    return found


@pytest.mark.parametrize(
    ("seed", "every"), [(1, timedelta(hours=6)), (2, timedelta(minutes=20)), (11, timedelta(hours=6))]
)
def test_what_is_found_beside_the_load_is_what_reading_back_finds(
    engine: Engine,
    second_engine: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    every: timedelta,
) -> None:
    rows = _history(random.Random(seed), every)
    path = _with_following_and_posts(tmp_path / "h.csv", rows, random.Random(seed))

    beside = _import(engine, path, beside=True)
    # read back in slices of a few hours, so a detection's versions span slices (as in a large file)
    monkeypatch.setattr(importer, "SLICE_ROWS", 50)
    read_back = _import(second_engine, path, beside=False)

    assert beside.findings is not None and read_back.findings is None
    detections, states = _stored(engine)
    assert {row[2] for row in detections} >= {PLATFORM_EVENT, "drop", "burst"}
    assert (detections, states) == _stored(second_engine)
    hourly, daily = _rollups(engine)
    assert len(daily) == 6 * 60 and len(hourly) == 6 * 24 * 60 // max(every // timedelta(hours=1), 1)
    assert [hourly, daily] == _rollups(second_engine)
    assert beside.analysed == read_back.analysed == len(rows) - 1  # the repeated row is not stored


def test_rows_that_go_back_in_time_are_read_back(engine: Engine, tmp_path: Path) -> None:
    rows = sorted(_history(random.Random(3)), key=lambda row: row[1])  # account by account
    report = _import(engine, write_csv(tmp_path / "h.csv", rows), beside=True)

    assert report.findings is None
    detections, states = _stored(engine)
    assert len(states) == 6 and any(row[2] == "drop" for row in detections)


@pytest.mark.parametrize("where", ["_read_all", "_analyse_file"])  # half-way, or before its spills exist
def test_a_child_that_dies_costs_the_import_nothing(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    def dies(*_: object) -> None:
        time.sleep(1.0)  # while the load waits for it
        os._exit(3)  # the child process, killed (its code is a copy of this one: a fork)

    monkeypatch.setattr(analyst, where, dies)
    path = write_csv(tmp_path / "h.csv", _history(random.Random(4)))
    report = _import(engine, path, beside=True)

    assert report.findings is None
    assert report.added == 6 * 4 * 60 and report.states == 6
    assert any(row[2] == PLATFORM_EVENT for row in _stored(engine)[0])
    assert [len(rows) for rows in _rollups(engine)] == [6 * 4 * 60, 6 * 60]


def _children(pid: int) -> list[int]:
    """The process's children that are forks of it (as the analyst is), not programs it runs (ctypes runs
    ldconfig at start-up, before any signal handler is set)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return [child for child in found if _command(child) == _command(pid)]


def _command(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""  # gone meanwhile


def _importing(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``flockwatch import`` of a long file in a process of its own, once its analyst has started."""
    rows = [
        (f"{1_760_000_000 + 900 * step}", f"x:user{account}", 1_000 + step)
        for step in range(1_500)
        for account in range(1_000)
    ]
    path = write_csv(tmp_path / "long.csv", rows)  # type: ignore[arg-type]
    command = [sys.executable, "-m", "service", "import", str(path), "--db", f"sqlite:///{tmp_path}/i.db"]
    environment = {**os.environ, "TMPDIR": str(tmp_path)}  # a killed import leaves its spill there
    importing = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, env=environment
    )  # a process group of its own, as a shell gives a command
    # The spill folder is made just before the analyst's fork, after the import set its signal handlers:
    # a child seen earlier may be one the start-up forks to run ldconfig (ctypes), still before its exec.
    deadline, children = time.monotonic() + 30, []
    while not (_spills(tmp_path) and (children := _children(importing.pid))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _spills(tmp_path) and children, "the analyst did not start"
    return importing, children[0]


def _gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text() if Path(f"/proc/{pid}").exists() else ""
        if "State:\tZ" in status:
            return True  # a zombie: it ended, and waits for its (dead) parent's reaper
        time.sleep(0.05)
    return not Path(f"/proc/{pid}").exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the analyst runs on Linux only")
def test_an_import_killed_takes_its_analyst_with_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    importing, analyst_pid = _importing(tmp_path)

    importing.kill()
    importing.wait()

    assert _gone(analyst_pid, 1), "the analyst kept reading the file after the import was killed"
    assert importing.stderr is not None
    importing.stderr.close()  # (the analyst held it open while it lived)
    assert _spills(tmp_path)  # a SIGKILL lets nothing clean up: the next import does
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    engine = open_engine(f"sqlite:///{tmp_path}/next.db")
    upgrade(engine)
    _import(engine, write_csv(tmp_path / "next.csv", _history(random.Random(6))), beside=True)
    engine.dispose()
    assert not _spills(tmp_path)


def _spills(folder: Path) -> list[Path]:
    return list(folder.glob(f"{analyst.SPILL_PREFIX}*"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the analyst runs on Linux only")
def test_ctrl_c_stops_the_import_and_its_analyst_without_a_traceback(tmp_path: Path) -> None:
    importing, analyst_pid = _importing(tmp_path)

    os.killpg(importing.pid, signal.SIGINT)  # as a terminal does: to the whole group, at once
    _, err = importing.communicate(timeout=60)

    assert importing.returncode == EXIT_INTERRUPTED
    assert b"Traceback" not in err and b"interrupted" in err
    assert _gone(analyst_pid, 10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the analyst runs on Linux only")
def test_sigterm_stops_the_import_as_ctrl_c_does_and_leaves_no_spill(tmp_path: Path) -> None:
    importing, analyst_pid = _importing(tmp_path)

    importing.terminate()  # kill, systemd, timeout: to the import alone
    _, err = importing.communicate(timeout=60)

    assert importing.returncode == EXIT_INTERRUPTED
    assert b"Traceback" not in err and b"interrupted" in err
    assert _gone(analyst_pid, 10)
    assert not _spills(tmp_path)


def test_a_file_read_from_a_pipe_is_read_once_and_whole(engine: Engine, tmp_path: Path) -> None:
    rows = _history(random.Random(7))
    source = write_csv(tmp_path / "h.csv", rows)
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_bytes(source.read_bytes()), daemon=True)
    writer.start()
    reports: list[ImportReport] = []
    importing = threading.Thread(
        target=lambda: reports.append(_import(engine, pipe, beside=True)), daemon=True
    )
    importing.start()
    importing.join(60)

    assert reports, "the import of a pipe did not end"  # two readers of a pipe could each wait on it
    (report,) = reports
    assert report.findings is None  # two readers of a pipe would each get part of it
    assert report.added == len(rows) - 1 and report.states == 6


def test_a_fork_refused_leaves_the_import_to_read_back(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork(*_: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")  # what fork says at the process limit

    monkeypatch.setattr(os, "fork", no_fork)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temporary"))
    (tmp_path / "temporary").mkdir()
    report = _import(engine, write_csv(tmp_path / "h.csv", _history(random.Random(5))), beside=True)

    assert report.findings is None and report.states == 6
    assert [len(rows) for rows in _rollups(engine)] == [6 * 4 * 60, 6 * 60]
    assert not list((tmp_path / "temporary").iterdir())  # no spill folder left behind


class _Pausing:
    """The analyst's shared progress, through which the child (a fork of this process) pauses for a
    second after the file's first chunk, its spills half written, then goes on or dies."""

    def __init__(self, shared: object, dies: bool) -> None:
        self.shared = shared
        self.dies = dies

    @property
    def value(self) -> int:
        return int(self.shared.value)  # type: ignore[attr-defined]

    @value.setter
    def value(self, position: int) -> None:
        self.shared.value = position  # type: ignore[attr-defined]
        if position:
            time.sleep(1.0)
            if self.dies:
                os._exit(3)
            self.dies, self.shared = False, self.shared


def _slow_analyst(monkeypatch: pytest.MonkeyPatch, dies: bool) -> list[bool]:
    """A slow analyst, and whether each reading of its spills found lines while the analyst was still at
    work (PostgreSQL stages them during the load, SQLite loads them while the load waits)."""
    original, taken, reported = analyst._read_all, [], []
    read, findings = buckets.SpillLoad._read, analyst.Analyst.findings

    def pausing(stream: object, spill: object, shared: object) -> object:
        return original(stream, spill, _Pausing(shared, dies))  # type: ignore[arg-type]

    def noted_read(self: buckets.SpillLoad, limit: int, advance: bool = True) -> bytes:
        found = read(self, limit, advance)
        if not reported and advance:
            taken.append(bool(found))
        return found

    def noted_findings(self: analyst.Analyst, waiting: Any = None) -> Any:
        try:
            return findings(self, waiting)
        finally:
            reported.append(True)

    monkeypatch.setattr(analyst, "_read_all", pausing)
    monkeypatch.setattr(buckets.SpillLoad, "_read", noted_read)
    monkeypatch.setattr(analyst.Analyst, "findings", noted_findings)
    return taken


def test_buckets_spilled_while_the_load_waits_are_loaded_meanwhile_and_whole(
    engine: Engine, second_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _history(random.Random(6), timedelta(minutes=20))  # two chunks of the file
    path = _with_following_and_posts(tmp_path / "h.csv", rows, random.Random(6))
    read_back = _import(second_engine, path, beside=False)
    taken = _slow_analyst(monkeypatch, dies=False)

    beside = _import(engine, path, beside=True)

    assert beside.findings is not None and read_back.findings is None
    assert any(taken)  # buckets went in while the analyst was still at work, lines cut half-way or not
    assert _rollups(engine) == _rollups(second_engine)
    assert _stored(engine) == _stored(second_engine)
    assert _indexes(engine) == _indexes(second_engine) and "ix_samples_observed_at" in _indexes(engine)[0]


def test_buckets_of_an_analyst_that_dies_half_way_are_taken_back(
    engine: Engine, second_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _history(random.Random(7), timedelta(minutes=20))
    path = write_csv(tmp_path / "h.csv", rows)
    _import(second_engine, path, beside=False)
    taken = _slow_analyst(monkeypatch, dies=True)

    report = _import(engine, path, beside=True)

    assert report.findings is None and any(taken)
    assert _rollups(engine) == _rollups(second_engine)  # the rollups of step 2, nothing of the child's
    assert _stored(engine) == _stored(second_engine)
    assert _indexes(engine) == _indexes(second_engine)  # (the samples' time index built while waiting)


def _indexes(engine: Engine) -> list[list[str]]:
    """Each table's indexes, primary key and foreign keys by name."""
    found = inspect(engine)
    return [
        sorted(
            [str(index["name"]) for index in found.get_indexes(table)]
            + [str(found.get_pk_constraint(table)["name"])]
            + [str(key["name"]) for key in found.get_foreign_keys(table)]
        )
        for table in _TABLES
    ]


def _samples(engine: Engine) -> list[tuple[object, ...]]:
    samples, accounts = models.table(models.Sample), models.table(models.Account)
    with engine.connect() as conn:
        rows = conn.execute(
            select(accounts.c.handle, samples.c.observed_at, samples.c.followers, samples.c.following)
            .join(accounts, accounts.c.id == samples.c.account_id)
            .order_by(accounts.c.handle, samples.c.observed_at)
        )
        return [tuple(row) for row in rows]


@pytest.mark.parametrize("late", ["nothing", "a repeated row", "an account already stored"])
def test_samples_loaded_in_parts_keep_the_first_of_a_repeat_and_end_with_every_key(
    engine: Engine, second_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, late: str
) -> None:
    """PostgreSQL loads a first file's samples with the primary key set aside while no row can repeat
    another; a repeat that comes only after some parts were stored brings the key back before it."""
    rows = _history(random.Random(8), timedelta(hours=1), days=20)
    del rows[100]  # (without _history's early repeat)
    late_at = rows[1_500][0]
    if late == "a repeated row":
        rows.insert(2_000, (rows[1_999][0], rows[1_999][1], rows[1_999][2] + 7))
    if late == "an account already stored":  # named only late in the file, its first time stored already
        rows = [row for row in rows if row[1] != "x:user5" or row[0] >= late_at]
        first = _with_following_and_posts(tmp_path / "first.csv", [(late_at, "x:user5", 5)], random.Random(9))
        for target in (engine, second_engine):
            _import(target, first, beside=False)
    path = _with_following_and_posts(tmp_path / "h.csv", rows, random.Random(8))
    monkeypatch.setattr(loading, "FLUSH_ROWS", 300)  # parts of a few hundred rows: ten moves or so

    beside = _import(engine, path, beside=True, chunk_rows=100, window=200)
    read_back = _import(second_engine, path, beside=False)

    assert (beside.findings is None) == (late == "an account already stored")
    assert beside.added == read_back.added == len(rows) - (late != "nothing")
    assert _samples(engine) == _samples(second_engine)
    assert _rollups(engine) == _rollups(second_engine)
    assert _indexes(engine) == _indexes(second_engine)
    assert [name for names in _indexes(engine) for name in names if name.startswith("pk_")] == [
        "pk_samples", "pk_samples_hourly", "pk_samples_daily"
    ]  # fmt: skip


_TABLES = ("samples", "samples_hourly", "samples_daily")


@pytest.mark.parametrize(
    "end", ["findings that stand", "findings that do not stand", "an account already stored"]
)
def test_buckets_loaded_between_the_chunks_stand_or_go_with_the_findings(
    engine: Engine, second_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    """SQLite loads the buckets that the analyst, ahead of the load, has spilled between the load's
    chunks, outside the savepoint that takes the rest back: when the findings do not stand, they are
    deleted again and the table's index comes back, as reading back leaves them."""
    rows = _history(random.Random(12), timedelta(hours=1), days=20)
    if end == "an account already stored":  # named only late in the file, its first time stored already
        late_at = rows[1_500][0]
        rows = [row for row in rows if row[1] != "x:user5" or row[0] >= late_at]
        first = write_csv(tmp_path / "first.csv", [(late_at, "x:user5", 5)])
        for target in (engine, second_engine):
            _import(target, first, beside=False)
    path = write_csv(tmp_path / "h.csv", rows)
    early = _early_takes(monkeypatch)
    if end == "findings that do not stand":
        monkeypatch.setattr(analyst.Analyst, "findings", lambda *_: None)

    beside = _import(engine, path, beside=True, chunk_rows=100, window=200)
    _import(second_engine, path, beside=False)

    assert (beside.findings is not None) == (end == "findings that stand")
    assert any(early) == (engine.dialect.name == "sqlite")  # (PostgreSQL stages them instead)
    assert _samples(engine) == _samples(second_engine)
    assert _rollups(engine) == _rollups(second_engine)
    assert _indexes(engine) == _indexes(second_engine) and "ix_samples_hourly_bucket" in _indexes(engine)[1]


def _early_takes(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """A load slowed down (so the analyst is ahead), small takes, and whether each take between the
    load's chunks has loaded buckets so far."""
    monkeypatch.setattr(buckets, "TAKE_BYTES", 2_000)
    load, take_named, early = loading.SqliteLoader.load, buckets.SpillLoad.take_named, []

    def slow_load(self: loading.SqliteLoader, payload: str) -> None:
        time.sleep(0.02)
        load(self, payload)

    def noted_take(self: buckets.SpillLoad) -> None:
        take_named(self)
        early.append(bool(self._early))

    monkeypatch.setattr(loading.SqliteLoader, "load", slow_load)
    monkeypatch.setattr(buckets.SpillLoad, "take_named", noted_take)
    return early


def test_an_import_leaves_every_foreign_key_whole_and_checked(engine: Engine, tmp_path: Path) -> None:
    """SQLite checks no foreign key row by row in the load's transaction: every key it wrote is whole,
    and the connections it hands back check them again."""
    path = write_csv(tmp_path / "h.csv", _history(random.Random(13), timedelta(hours=1), days=10))

    report = _import(engine, path, beside=True, chunk_rows=100, window=200)

    assert report.added > 0
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall() == []
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            with pytest.raises(IntegrityError):  # checked again: a sample of no account is refused
                conn.exec_driver_sql(
                    "INSERT INTO samples (account_id, observed_at, followers, followers_step) "
                    "VALUES (99999, '2026-01-01 00:00:00.000000', 1, 1)"
                )
        assert _indexes(engine)[0].count("fk_samples_account_id_accounts") == 1


class _FullDisk:
    """A spill file that takes a few kilobytes, then says the disk is full."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, text: str) -> int:
        self.written += len(text)
        if self.written > 4_000:
            raise OSError(28, "No space left on device")
        return len(text)


def test_a_spill_that_cannot_be_written_leaves_the_import_to_read_back(
    engine: Engine, second_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    @contextlib.contextmanager
    def full(_: object) -> Iterator[tuple[_FullDisk, _FullDisk]]:
        yield _FullDisk(), _FullDisk()  # (in the analyst, a fork, on SQLite; in this process on PostgreSQL)

    path = write_csv(tmp_path / "h.csv", _history(random.Random(8), timedelta(minutes=20)))
    _import(second_engine, path, beside=False)
    monkeypatch.setattr(analyst, "open_spills", full)

    report = _import(engine, path, beside=True)

    assert report.findings is None and report.added == report.rows - 1  # (one row repeats another)
    assert _rollups(engine) == _rollups(second_engine)
    assert _stored(engine) == _stored(second_engine)
