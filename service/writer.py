"""From the spool to the database: bounded chunks, backoff through outages, refused records quarantined.

The poller hands each poll's batch to ``take``, which returns once the batch is in the spool (on disk).
``run`` copies the spool to the database in the background, chunk by chunk, and trims what was written.
While the database is unreachable it backs off and keeps everything in the spool. A chunk the database
refuses for what it holds (a value it cannot store) is split in halves until the refused records are
found; those go to the spool's quarantine with the reason, every other record is written. The writer never
dies: an unexpected error is logged with its traceback and the chunk is retried later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from sqlalchemy.exc import DataError, IntegrityError, StatementError

from service.metrics import ServiceMetrics
from service.samples import Sample
from service.spool import Batch, Spool, UnreadableBatch
from service.store.database import safe_url
from service.store.repository import AccountUpdate, Store, Written

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
CHUNK_RECORDS = 5_000  # one transaction: a day's backlog of a thousand accounts goes back in ~20 of them
APPEND_ATTEMPTS = 3
# The most records of one chunk the database may refuse one by one before the refusal counts as the database's
# state (read-only after a failover, permissions, a bug) rather than the records': then nothing is quarantined.
MAX_REFUSED = 10


class Outage(Exception):
    """The database cannot take the chunk now (unreachable, read-only, refusing everything): retry later,
    lose nothing."""


class SpoolFailure(Exception):
    """A batch could not be appended to the spool (the disk is full or failing)."""


def refuses_the_record(exc: BaseException) -> bool:
    """Whether the database refused what a record holds (a value it cannot store), as opposed to refusing to work
    (down, read-only, a missing table): only the former is isolated and quarantined."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, StatementError):  # raised while binding a value: the driver could not encode it
        return isinstance(exc.orig, UnicodeError | ValueError | OverflowError | TypeError)
    return isinstance(exc, UnicodeError | OverflowError)


class SampleWriter:
    def __init__(
        self,
        store: Store,
        metrics: ServiceMetrics,
        spool: Spool | None = None,
        *,
        chunk_records: int = CHUNK_RECORDS,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self.spool = spool or Spool()
        self._chunk = chunk_records
        self._wake = asyncio.Event()
        self._failing = False
        self._closed = False
        self._closing = asyncio.Event()
        self._lock = asyncio.Lock()  # one copy to the database at a time
        self.earliest_written: datetime | None = (
            None  # the oldest sample written since the rollups last read it
        )
        # Threads of its own: a hung database connection must not keep a poll's batch from the spool.
        self._appender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flockwatch-spool")
        self._database = ThreadPoolExecutor(max_workers=1, thread_name_prefix="flockwatch-writer")
        self.spool_failing: str | None = None  # why the last append failed, until one succeeds
        self._show_spool()

    @property
    def buffered(self) -> int:
        """Samples taken but not yet in the database."""
        return self.spool.pending_samples

    async def take(self, batch: Batch) -> None:
        """Put ``batch`` in the spool (on disk) and wake the writer; when this returns it cannot be lost.
        Raises ``SpoolFailure`` when the disk refuses it (after a few tries)."""
        if not len(batch):
            return
        loop = asyncio.get_running_loop()
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            try:
                await asyncio.shield(loop.run_in_executor(self._appender, self.spool.append, batch))
                break
            except (OSError, sqlite3.Error) as exc:
                self.spool_failing = f"{type(exc).__name__}: {exc}"
                log.error(
                    "the spool refused a batch", extra={"attempt": attempt, "reason": self.spool_failing}
                )
                if attempt == APPEND_ATTEMPTS:
                    raise SpoolFailure(self.spool_failing) from exc
                await asyncio.sleep(0.2 * attempt)
        self.spool_failing = None
        self._show_spool()
        self._wake.set()

    def submit(self, samples: Sequence[tuple[int, Sample]], updates: Sequence[AccountUpdate]) -> None:
        """``take`` for callers outside the event loop's flow (tests, tools): appends synchronously."""
        self.spool.append(Batch(list(samples), list(updates)))
        self._show_spool()
        self._wake.set()

    async def run(self) -> None:
        """Write whenever something is taken; back off while the database fails; end on ``close``."""
        delay = FIRST_RETRY_SECONDS
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                break
            try:
                written = await self.flush(stop_when_closed=True)
            except Exception:  # never die: say what happened, keep the spool, try again later
                log.exception("writing to the database failed unexpectedly; the spool keeps everything")
                written = False
            if written:
                delay = FIRST_RETRY_SECONDS
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)
            self._wake.set()

    def close(self) -> None:
        """Let ``run`` end after the chunk under way; ``drain`` writes what it can before exit."""
        self._closed = True
        self._closing.set()
        self._wake.set()

    async def flush(self, deadline: float | None = None, *, stop_when_closed: bool = False) -> bool:
        """Copy the spool to the database, chunk by chunk; False (nothing lost) when it could not finish."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            while taken := await loop.run_in_executor(self._database, self._oldest):
                if (deadline is not None and time.monotonic() > deadline) or (
                    stop_when_closed and self._closed
                ):
                    return False
                try:
                    await loop.run_in_executor(self._database, self._write_chunk, taken)
                except Outage as exc:
                    self._note_failure(exc)
                    return False
                self._note_recovery()
        return True

    def shutdown(self) -> None:
        """Let go of the writer's threads without waiting for one stuck in a database call."""
        for pool in (self._appender, self._database):
            pool.shutdown(wait=False, cancel_futures=True)

    async def drain(self, seconds: float = 20.0) -> int:
        """Write what is pending before exit, for at most ``seconds``; returns the samples left in the spool
        (kept on disk: the next start writes them)."""
        deadline = time.monotonic() + seconds
        delay = 0.2
        while not await self.flush(deadline) and time.monotonic() + delay < deadline:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        return self.buffered

    # -- in a worker thread ------------------------------------------------------------------------------

    def _oldest(self) -> list[tuple[int, Batch]]:
        """The next chunk; a batch that cannot be read back (damaged, another format) goes to quarantine as text."""
        while True:
            try:
                return self.spool.oldest(self._chunk)
            except UnreadableBatch as exc:
                self.spool.set_aside(exc.seq, str(exc), datetime.now(UTC))
                self._metrics.quarantined.labels("unreadable").inc()
                log.error(
                    "a spooled batch could not be read back; kept in quarantine", extra={"reason": str(exc)}
                )

    def _write_chunk(self, taken: list[tuple[int, Batch]]) -> None:
        batch = Batch()
        for _, part in taken:
            batch.extend(part)
        started = time.perf_counter()
        written = self._write_isolating(batch)
        self._metrics.database_write_duration.observe(time.perf_counter() - started)
        self.spool.remove([seq for seq, _ in taken])
        self._metrics.samples_written.inc(written.samples)
        if written.earliest is not None and (
            self.earliest_written is None or written.earliest < self.earliest_written
        ):
            self.earliest_written = written.earliest
        self._show_spool()

    def _write_isolating(self, batch: Batch) -> Written:
        """Write ``batch``; if the database refuses what it holds, split it until the refused records are
        found and quarantine them (a few at most: more is the database's state, an ``Outage``). Raises
        ``Outage`` when the database cannot take the chunk."""
        refused: list[tuple[Batch, BaseException]] = []
        written = self._isolate(batch, refused)
        if len(refused) > MAX_REFUSED:
            raise Outage(
                f"the database refused {len(refused)} records of one chunk: {_reason(refused[0][1])}"
            )
        for record, exc in refused:
            self._quarantine(record, exc)
        return written

    def _isolate(self, batch: Batch, refused: list[tuple[Batch, BaseException]]) -> Written:
        try:
            return self._store.write_batch(batch.samples, batch.updates, batch.detections)
        except Exception as exc:
            if not refuses_the_record(exc):
                raise Outage(_reason(exc)) from exc
            if len(batch) == 1:
                refused.append((batch, exc))
                return Written()
            if len(refused) > MAX_REFUSED:
                raise Outage(f"the database refuses records one after another: {_reason(exc)}") from exc
        records = batch.records()
        middle = len(records) // 2
        total = Written()
        for half in (records[:middle], records[middle:]):
            part = Batch()
            for record in half:
                part.extend(record)
            done = self._isolate(part, refused)
            total.samples += done.samples
            total.detections += done.detections
            if done.earliest is not None and (total.earliest is None or done.earliest < total.earliest):
                total.earliest = done.earliest
        return total

    def _quarantine(self, record: Batch, exc: BaseException) -> None:
        reason = _reason(exc)
        self.spool.quarantine(record, reason, datetime.now(UTC))
        self._metrics.quarantined.labels(record.kind()).inc()
        log.warning(
            "the database refused a record; it is kept in the spool's quarantine",
            extra={"kind": record.kind(), "reason": reason},
        )

    # -- health ------------------------------------------------------------------------------------------

    def _show_spool(self) -> None:
        self._metrics.samples_buffered.set(self.spool.pending_samples)
        self._metrics.spool_bytes.set(self.spool.size)
        self._metrics.spool_limit_bytes.set(self.spool.max_bytes)

    def _note_failure(self, exc: Outage) -> None:
        self._metrics.database_errors.inc()
        self._metrics.database_up.set(0)
        if not self._failing:
            self._failing = True
            log.error(
                "database write failed; samples are kept in the spool and retried",
                extra={"database": safe_url(str(self._store.engine.url)), "reason": str(exc)},
            )

    def _note_recovery(self) -> None:
        self._metrics.database_up.set(1)
        if self._failing:
            self._failing = False
            log.info("database writes recovered", extra={"buffered": self.buffered})


def _reason(exc: BaseException) -> str:
    """The first line of what the database said, without the statement or its parameters."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    text = lines[0] if lines else type(original).__name__
    return f"{type(original).__name__}: {text}"[:300]
