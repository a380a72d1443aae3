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
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from service.metrics import ServiceMetrics
from service.samples import Sample
from service.spool import Batch, Spool
from service.store.database import safe_url
from service.store.repository import AccountUpdate, Store, Written

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0
CHUNK_RECORDS = 5_000  # one transaction: a day's backlog of a thousand accounts goes back in ~20 of them
OUTAGE_ERRORS = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, ConnectionError)


class Outage(Exception):
    """The database could not be reached (or is not accepting writes now): retry later, lose nothing."""


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
        self._show_spool()

    @property
    def buffered(self) -> int:
        """Samples taken but not yet in the database."""
        return self.spool.pending_samples

    async def take(self, batch: Batch) -> None:
        """Put ``batch`` in the spool (on disk) and wake the writer; when this returns it cannot be lost."""
        if not len(batch):
            return
        await asyncio.shield(asyncio.to_thread(self.spool.append, batch))
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
                written = await self.flush()
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

    async def flush(self, deadline: float | None = None) -> bool:
        """Copy the spool to the database, chunk by chunk; False (nothing lost) when it could not finish."""
        async with self._lock:
            while taken := await asyncio.to_thread(self.spool.oldest, self._chunk):
                if deadline is not None and time.monotonic() > deadline:
                    return False
                try:
                    await asyncio.to_thread(self._write_chunk, taken)
                except Outage as exc:
                    self._note_failure(exc)
                    return False
                self._note_recovery()
        return True

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
        found and quarantine them. Raises ``Outage`` when the database cannot be reached."""
        try:
            return self._store.write_batch(batch.samples, batch.updates, batch.detections)
        except OUTAGE_ERRORS as exc:
            raise Outage(_reason(exc)) from exc
        except Exception as exc:  # the database (or its driver) refused a value: find which
            if len(batch) == 1:
                self._quarantine(batch, exc)
                return Written()
            reason = _reason(exc)
        log.debug("a chunk was refused; isolating the refused records", extra={"reason": reason})
        records = batch.records()
        middle = len(records) // 2
        total = Written()
        for half in (records[:middle], records[middle:]):
            part = Batch()
            for record in half:
                part.extend(record)
            done = self._write_isolating(part)
            total.samples += done.samples
            total.detections += done.detections
            if done.earliest is not None and (total.earliest is None or done.earliest < total.earliest):
                total.earliest = done.earliest
        return total

    def _quarantine(self, record: Batch, exc: Exception) -> None:
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
        self._metrics.spool_bytes.set(self.spool.live_bytes)
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
