"""``flockwatch import``: a history exported from elsewhere into the database, then rollups and detection.

1. **Samples, all or nothing.** The file is streamed (bounded memory, whatever its size) into one
   transaction: accounts it names are created as they appear, samples go in by bulk statements (COPY on
   PostgreSQL), a sample already stored is kept as it was, and each account's ``latest_*`` columns are
   set. A bad row (without ``--skip-bad-rows``), a database error or an interrupt rolls everything back.
2. **Rollups** of every hour the file touched (``Maintenance.roll_up_range``); on PostgreSQL in a thread
   of their own while step 3 runs (the server does the work of step 2, this process that of step 3).
3. **Detection**, in time order with bounded memory: the stored samples of the file's accounts, from
   ``WARM_UP`` before the file's first row to the newest stored, are read back one time slice at a time
   and run through a fresh engine; what it finds is stored (upserts by key), rows left open that it no
   longer holds are closed, and each account's final engine state is saved, so a daemon started
   afterwards loads it instead of replaying. Steps 2 and 3 only add derived data: after a failure there,
   importing the same file again (it adds no samples) redoes them.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Final

from sqlalchemy import Connection, Engine

from service.accounts import AccountRef
from service.clock import Clock
from service.config import RetentionConfig
from service.detection.analyst import Analyst, Findings, Folding
from service.detection.base import Detection
from service.detection.csvinput import CHUNK_ROWS, FUTURE_TOLERANCE, Row, RowStream, Skipped, micros
from service.detection.engine import DetectionEngine
from service.detection.recorder import DetectionRecorder
from service.memory import fewer_collections
from service.store import models
from service.store.buckets import SpillLoad, SpillMismatch
from service.store.loading import SampleLoader, SampleReader, keys_trusted, loader_for, note_latest
from service.store.repository import SavedState, Store, add_accounts
from service.store.rollups import Maintenance

WARM_UP: Final = timedelta(days=30)  # stored history before the file that the detectors read first
SLICE_ROWS: Final = 200_000  # about this many samples read back per time slice
WINDOW_ROWS: Final = 1_000_000  # rows grouped by account before they are stored (about 130 MB)
HOUR_US: Final = 3_600_000_000
ROLLUP_CACHE_MIB: Final = 256  # SQLite's page cache while step 2 rolls up a day (freed after each day)
# More than a CSV row takes (about 40 bytes with a short handle): the file's size over this estimates its
# rows low, which sets the samples table's index aside for a load only when that surely pays.
BYTES_PER_ROW: Final = 64

# (rows or samples done, fraction of the step done or None when unknown)
Progress = Callable[[int, float | None], None]


@dataclass
class ImportReport:
    rows: int = 0  # good rows in the file
    added: int = 0  # samples that were new
    accounts: dict[AccountRef, int] = field(default_factory=dict)  # the file's accounts and their ids
    new_accounts: int = 0
    first_us: int | None = None
    last_us: int | None = None
    skipped: Skipped = field(default_factory=Skipped)
    analysed: int = 0  # samples the detectors read
    findings: Findings | None = None  # step 3 done beside step 1 (see analyst.py), when it could be
    detections: int = 0  # anomalies stored
    states: int = 0  # engine states saved

    def note(self, chunk: _Chunk) -> None:
        self.rows += chunk.rows
        self.first_us = chunk.first_us if self.first_us is None else min(self.first_us, chunk.first_us)
        self.last_us = chunk.last_us if self.last_us is None else max(self.last_us, chunk.last_us)


@dataclass
class _Chunk:
    payload: str  # the rows, encoded for the database
    rows: int
    new: list[tuple[int, AccountRef]]  # accounts the file names for the first time here, with their keys
    first_us: int
    last_us: int
    position: int  # bytes of the file read


class _Reader:
    """Reads and encodes the file in a thread of its own, at most ``AHEAD`` chunks ahead of the database:
    parsing (Python) and storing (the database, which releases the GIL) overlap. An error in the file
    comes out of the iteration; leaving the ``with`` block stops the thread.

    Rows are handed over a ``window`` at a time, grouped by account (a stable sort: an account's rows
    keep their file order, so of two rows of one account and time the first is still kept). A file in
    time order names every account in every few rows; grouped, each account's index pages are touched
    once per window instead of once per row.
    """

    AHEAD: Final = 3

    def __init__(
        self, stream: RowStream, loader: SampleLoader, chunk_rows: int, window: int, folding: Folding | None
    ) -> None:
        self._stream = stream
        self._loader = loader
        self._folding = folding  # the rollup buckets folded here, in file order, as the rows are read
        self._chunk_rows = chunk_rows
        self._window = window
        self._seen: set[str] = set()  # accounts named in earlier chunks
        self._queue: queue.Queue[_Chunk | BaseException | None] = queue.Queue(self.AHEAD)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="import-reader", daemon=True)

    def __enter__(self) -> _Reader:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def __iter__(self) -> Iterator[_Chunk]:
        while (item := self._queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item

    def _run(self) -> None:
        chunks = self._stream.chunks(self._chunk_rows)
        try:
            window: list[Row] = []
            for rows in chunks:
                if self._stop.is_set():  # the database side stopped (an error, Ctrl-C): read no further
                    return
                if self._folding is not None:
                    self._folding.fold(rows)
                window += rows
                if len(window) >= self._window:
                    self._hand_over(window)
                    window = []
            self._hand_over(window)
            self._put(None)
        except BaseException as exc:  # handed to the reading side, which raises it
            self._put(exc)
        finally:
            chunks.close()  # closes the file

    def _hand_over(self, window: list[Row]) -> None:
        window.sort(key=itemgetter(0))
        for start in range(0, len(window), self._chunk_rows):
            self._put(self._chunk(window[start : start + self._chunk_rows]))

    def _chunk(self, rows: list[Row]) -> _Chunk:
        stream = self._stream
        names = {row[0] for row in rows} - self._seen
        self._seen |= names
        times = [row[1] for row in rows]
        new = [(stream.keys[name], stream.accounts[name]) for name in sorted(names)]
        return _Chunk(self._loader.encode(rows), len(rows), new, min(times), max(times), stream.position())

    def _put(self, item: _Chunk | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue


class Importer:
    def __init__(
        self,
        database: Engine,
        clock: Clock,
        chunk_rows: int = CHUNK_ROWS,
        window: int = WINDOW_ROWS,
        beside: bool = True,
    ) -> None:
        self.database = database
        self.clock = clock
        self.chunk_rows = chunk_rows  # rows read, encoded and stored at a time
        self.window = window  # rows grouped by account before they are stored
        self.beside = beside  # step 3 in a child process during step 1 where it can be (analyst.py)

    def load(self, path: Path, skip_bad_rows: bool, progress: Progress | None = None) -> ImportReport:
        """Step 1: the samples, in one transaction. Raises ``BadRow`` (nothing stored) on a bad row."""
        now = self.clock.now()
        stream = RowStream(path, skip_bad_rows, micros(now + FUTURE_TOLERANCE))
        report = ImportReport(skipped=stream.skipped)
        # on PostgreSQL the server does most of the load's work: this process folds the buckets there
        folds = self.database.dialect.name != "postgresql"
        analyst = Analyst(stream, folds) if self.beside and Analyst.available(path) else None
        try:
            if analyst is not None and not analyst.start():
                analyst = None  # no fork: the steps run after this one
            with fewer_collections():  # a window holds a million rows: scanning them again and again
                self._load(stream, report, analyst, now, progress)
        finally:
            if analyst is not None:
                analyst.stop()
        return report

    def _load(
        self,
        stream: RowStream,
        report: ImportReport,
        analyst: Analyst | None,
        now: datetime,
        progress: Progress | None,
    ) -> None:
        size = max(stream.path.stat().st_size, 1)
        with self.database.connect() as conn, keys_trusted(conn), conn.begin():
            folds_here = analyst.folding() if analyst is not None else None
            # rows folded here are known unique while folding goes on (it stops at an account stored)
            unique = folds_here.unique if folds_here is not None else None
            loader = loader_for(conn, stream.keys, size // BYTES_PER_ROW, unique)
            spills = _spill_loads(conn, analyst, loader.ids)
            reading = _Reader(stream, loader, self.chunk_rows, self.window, folds_here)
            with folds_here or nullcontext(), reading as reader:
                for chunk in reader:
                    if chunk.new:
                        self._add_accounts(conn, chunk.new, loader, report, now)
                        if folds_here is not None and not _all_new(report):
                            folds_here.abandon()  # nothing folded will be used: spill no more
                    loader.load(chunk.payload)
                    if folds_here is not None and folds_here.whole:
                        for spill in spills:  # PostgreSQL: what this process folded so far, staged
                            spill.stage()
                    elif analyst is not None and analyst.folds and _all_new(report):
                        for spill in spills:  # SQLite: what the child folded so far, loaded
                            spill.take_named()
                    report.note(chunk)
                    if progress is not None:
                        progress(report.rows, _done(chunk.position, analyst, report) / size)
            report.added = loader.finish()
            if folds_here is not None:  # PostgreSQL: the server builds them while the child works
                loader.restore()
            # what the child made stands for the stored samples only if they are all the file's rows
            if analyst is not None and _all_new(report):
                whole = folds_here is None or folds_here.whole
                report.findings = (
                    self._beside(conn, analyst, spills, report, progress, size) if whole else None
                )
            if report.findings is None:  # the buckets loaded during the load do not stand either
                for spill in spills:
                    spill.take_back()
            # SQLite: the samples' index built after the wait (this process does that work, with the child)
            loader.restore()
            note_latest(conn, report.accounts.values())  # (which reads samples by time)

    @staticmethod
    def _beside(
        conn: Connection,
        analyst: Analyst,
        spills: list[SpillLoad],
        report: ImportReport,
        progress: Progress | None,
        size: int,
    ) -> Findings | None:
        """Wait for the analysis beside the load, loading the buckets it spills meanwhile; what it found,
        or None (and its buckets taken back) when that cannot stand for the stored samples."""

        def waiting() -> bool:
            loaded = [spill.take() for spill in spills]
            if progress is not None:
                progress(report.rows, analyst.position() / size)
            return any(loaded)

        loaded = conn.begin_nested()  # taken back if what the child made cannot be used
        try:
            if not analyst.folds:  # folded by this process: the spills are whole, loaded while it works
                for spill in spills:
                    spill.finish()
            findings = analyst.findings(waiting)
        except SpillMismatch:
            findings = None
        # the same rows read by both (a file changed meanwhile could give the child others)
        if findings is None or findings.rows != report.rows:
            loaded.rollback()
            return None
        for spill in spills:
            spill.finish()
        loaded.commit()
        return findings

    @staticmethod
    def _add_accounts(
        conn: Connection,
        new: list[tuple[int, AccountRef]],
        loader: SampleLoader,
        report: ImportReport,
        now: datetime,
    ) -> None:
        """Accounts named for the first time: created if need be, and known to the loader by their keys."""
        known, added = add_accounts(conn, [ref for _, ref in new], now)
        report.accounts.update(known)
        report.new_accounts += len(added)
        loader.identify({key: known[ref] for key, ref in new})

    def roll_up_and_analyse(self, report: ImportReport, progress: Progress | None = None) -> None:
        """Steps 2 and 3, shown as one. On PostgreSQL at once: the rollups run in a thread of their own
        (the database server does that work) while the detectors read the samples here; an error in either
        is raised once both have stopped. On SQLite one after the other: there both are work of this
        process, and at once they took as long as in turn (2,000 accounts x 7 days on 2 busy cores:
        26-29 s at once, 16-28 s in turn)."""
        if report.findings is not None:  # rolled up in step 1, analysed beside it: only storing is left
            self.analyse(report, progress)
            return
        shares = [0.0, 0.0]  # rolled up, analysed
        at_once = self.database.dialect.name == "postgresql"

        def rolled(_: int, share: float | None) -> None:
            shares[0] = share or 0.0
            if progress is not None and not at_once:  # at once, the rollups' thread draws nothing
                progress(0, sum(shares) / 2)

        def analysed(done: int, share: float | None) -> None:
            shares[1] = share or 0.0
            if progress is not None:
                progress(done, sum(shares) / 2)

        if not at_once:
            self.analyse(report, analysed)
            self.roll_up(report, rolled)
            return
        stop = threading.Event()
        with _Background(lambda: self.roll_up(report, rolled, stop)) as rollups:
            try:
                self.analyse(report, analysed)
            except BaseException:
                stop.set()  # the rollups stop after their current day: importing again redoes them
                raise
            while rollups.wait(0.5):
                analysed(report.analysed, 1.0)

    def roll_up(
        self, report: ImportReport, progress: Progress | None = None, stop: threading.Event | None = None
    ) -> None:
        """Step 2: hourly and daily rollups of every hour the file touched, a day at a time."""
        if report.first_us is None or report.last_us is None:
            return
        maintenance = Maintenance(self.database, RetentionConfig())
        first, last = _time(report.first_us), _time(report.last_us)
        day = first.replace(hour=0, minute=0, second=0, microsecond=0)
        total = max((last - day) / timedelta(days=1), 1e-9)
        while day <= last and not (stop is not None and stop.is_set()):
            # roll_up_range stops before its end: one microsecond past the last sample takes its hour
            end = min(day + timedelta(days=1), last + timedelta(microseconds=1))
            maintenance.roll_up_range(max(day, first), end, ROLLUP_CACHE_MIB)
            day += timedelta(days=1)
            if progress is not None:
                progress(0, min((day - first) / timedelta(days=1) / total, 1.0))

    def analyse(self, report: ImportReport, progress: Progress | None = None) -> None:
        """Step 3: run the detectors over the stored history of the file's accounts, store what they find
        and save each account's final state."""
        if report.first_us is None or not report.accounts:
            return
        if report.findings is not None:
            self._store(report, report.findings)
            return
        refs = {account_id: ref for ref, account_id in report.accounts.items()}
        engine = DetectionEngine()
        recorder = DetectionRecorder(engine, dict(report.accounts))
        store = Store(self.database)
        start = report.first_us - int(WARM_UP.total_seconds()) * 1_000_000
        end = _newest(store, refs, micros(self.clock.now() + FUTURE_TOLERANCE)) + 1
        with self.database.connect() as conn:
            reader = SampleReader(conn, refs)
            step = _slice_length(report, start)
            at = start - start % HOUR_US
            while at < end:
                found, first = _observe(engine, refs, reader.slice(at, at + step), report)
                if found:
                    # each keeps when it was first detected, as when every version is written
                    rows = [replace(row, detected_at=first[row.key]) for row in recorder.rows(found)]
                    report.detections += store.write_batch([], [], rows).detections
                at += step
                if progress is not None:
                    progress(report.analysed, min((at - start) / max(end - start, 1), 1.0))
            reader.close()
        store.close_stale_detections(list(refs), {d.key for d in engine.active()})
        report.states = _save_states(store, engine, refs, self.clock.now())

    def _store(self, report: ImportReport, findings: Findings) -> None:
        """Step 3 done beside step 1: store what it found, as the reading back below would have."""
        store = Store(self.database)
        found = DetectionRecorder(DetectionEngine(), dict(report.accounts)).rows(findings.detections)
        # a row keeps when it was first detected, as when every version is written (the upsert leaves it)
        rows = [replace(row, detected_at=findings.first_detected[row.key]) for row in found]
        if rows:
            report.detections += store.write_batch([], [], rows).detections
        store.close_stale_detections(list(report.accounts.values()), findings.active)
        now = self.clock.now()
        states = [
            SavedState(report.accounts[ref], datetime.fromtimestamp(last, UTC), blob, None, now)
            for ref, (last, blob) in findings.states.items()
        ]
        store.save_states(states)
        report.states, report.analysed = len(states), report.added  # each new sample, as read back


class _Background:
    """A function run in a thread of its own; leaving the ``with`` block waits for it and raises what it
    raised (unless an error is already on its way out)."""

    def __init__(self, work: Callable[[], None]) -> None:
        self._work = work
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="import-rollups", daemon=True)

    def __enter__(self) -> _Background:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._thread.join()
        if kind is None and self._error is not None:
            raise self._error

    def wait(self, seconds: float) -> bool:
        """Wait at most ``seconds``; whether it is still running."""
        self._thread.join(seconds)
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # raised in the calling thread on leaving the block
            self._error = exc


def _spill_loads(conn: Connection, analyst: Analyst | None, ids: dict[int, int]) -> list[SpillLoad]:
    """The loads of the analyst's hourly and daily spills (none without an analyst); ``ids`` fills as
    the load names the accounts."""
    if analyst is None:
        return []
    hourly, daily = analyst.spills
    return [
        SpillLoad(conn, models.HourlyRollup, hourly, ids),
        SpillLoad(conn, models.DailyRollup, daily, ids),
    ]


def _all_new(report: ImportReport) -> bool:
    """Whether every account of the file so far was created by this import."""
    return report.new_accounts == len(report.accounts)


def _done(position: int, analyst: Analyst | None, report: ImportReport) -> int:
    """How far step 1 is, in bytes of the file: the slower of the load and the analysis beside it, as
    long as that analysis may be used."""
    return min(position, analyst.position()) if analyst is not None and _all_new(report) else position


def _newest(store: Store, refs: dict[int, AccountRef], limit_us: int) -> int:
    """The time of the newest sample stored for these accounts (their latest_at), at most ``limit_us``."""
    newest = [a.latest_at for _, a in store.accounts_by_id(refs).values() if a.latest_at is not None]
    return min(max(micros(when) for when in newest), limit_us) if newest else limit_us


def _slice_length(report: ImportReport, start_us: int) -> int:
    """A time slice expected to hold about SLICE_ROWS samples of the file's accounts (whole hours)."""
    assert report.last_us is not None
    span = max(report.last_us - start_us, HOUR_US)
    per_us = max(report.rows, 1) / span
    hours = max(1, min(int(SLICE_ROWS / per_us // HOUR_US), 24 * 31))
    return hours * HOUR_US


def _observe(
    engine: DetectionEngine,
    refs: dict[int, AccountRef],
    rows: list[tuple[int, int, int, int | None, int]],
    report: ImportReport,
) -> tuple[list[Detection], dict[str, datetime]]:
    """Feed one slice to the engine; the detections it opened, changed or ended (latest version each),
    and when the slice first saw each."""
    changed: dict[str, Detection] = {}
    first: dict[str, datetime] = {}
    observe = engine.observe_values
    for account_id, us, followers, following, step in rows:
        for detection in observe(refs[account_id], us / 1e6, followers, following, step):
            changed[detection.key] = detection
            first.setdefault(detection.key, detection.detected_at)
    report.analysed += len(rows)
    return list(changed.values()), first


def _save_states(store: Store, engine: DetectionEngine, refs: dict[int, AccountRef], now: datetime) -> int:
    states = []
    for account_id, ref in refs.items():
        last = engine.last_at(ref)
        blob = engine.snapshot(ref) if last is not None else None
        if last is not None and blob is not None:
            states.append(SavedState(account_id, datetime.fromtimestamp(last, UTC), blob, None, now))
    store.save_states(states)
    return len(states)


def _time(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC) + timedelta(microseconds=us % 1_000_000)
