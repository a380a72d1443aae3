"""Buffered writes to the database: while it is unreachable, samples wait in memory and none are lost.

The poller hands each poll's samples and account updates to ``submit``; ``run`` writes them in the
background, retrying with exponential backoff while the database fails; ``drain`` writes what is left
before the daemon exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from service.metrics import ServiceMetrics
from service.samples import Sample
from service.store.database import safe_url
from service.store.repository import AccountUpdate, Store

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0


@dataclass
class _Pending:
    samples: list[tuple[int, Sample]] = field(default_factory=list)
    updates: list[AccountUpdate] = field(default_factory=list)


class SampleWriter:
    def __init__(self, store: Store, metrics: ServiceMetrics) -> None:
        self._store = store
        self._metrics = metrics
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._failing = False
        self._closed = False
        self._closing = asyncio.Event()

    @property
    def buffered(self) -> int:
        return len(self._pending.samples)

    def submit(self, samples: Sequence[tuple[int, Sample]], updates: Sequence[AccountUpdate]) -> None:
        self._pending.samples.extend(samples)
        self._pending.updates.extend(updates)
        self._metrics.samples_buffered.set(self.buffered)
        self._wake.set()

    async def run(self) -> None:
        """Write whenever something is submitted; back off while the database fails; end on ``close``."""
        delay = FIRST_RETRY_SECONDS
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._closed or await self.flush():
                delay = FIRST_RETRY_SECONDS
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=delay)
            delay = min(delay * 2, MAX_RETRY_SECONDS)
            self._wake.set()

    def close(self) -> None:
        """Let ``run`` end after the write under way; ``drain`` writes what is left."""
        self._closed = True
        self._closing.set()
        self._wake.set()

    async def flush(self) -> bool:
        """Write everything pending; False (and nothing lost) when the database refused."""
        batch, self._pending = self._pending, _Pending()
        if not batch.samples and not batch.updates:
            return True
        started = time.perf_counter()
        try:
            written = await asyncio.to_thread(self._store.write, batch.samples, batch.updates)
        except SQLAlchemyError as exc:
            self._requeue(batch)
            self._note_failure(exc)
            return False
        except asyncio.CancelledError:
            self._requeue(batch)  # rewriting is harmless: a repeated sample is ignored
            raise
        self._metrics.database_write_duration.observe(time.perf_counter() - started)
        self._metrics.samples_written.inc(written)
        self._metrics.samples_buffered.set(self.buffered)
        self._note_recovery()
        return True

    async def drain(self, attempts: int = 5) -> int:
        """Write what is pending before exit; returns how many samples could not be written."""
        delay = 0.2
        for _ in range(attempts):
            if await self.flush():
                return 0
            await asyncio.sleep(delay)
            delay *= 2
        return self.buffered

    def _requeue(self, batch: _Pending) -> None:
        batch.samples.extend(self._pending.samples)
        batch.updates.extend(self._pending.updates)
        self._pending = batch
        self._metrics.samples_buffered.set(self.buffered)

    def _note_failure(self, exc: SQLAlchemyError) -> None:
        self._metrics.database_errors.inc()
        self._metrics.database_up.set(0)
        if not self._failing:
            self._failing = True
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[:1]
            log.error(
                "database write failed; samples are kept in memory and retried",
                extra={
                    "database": safe_url(str(self._store.engine.url)),
                    "reason": reason[0] if reason else "",
                },
            )

    def _note_recovery(self) -> None:
        self._metrics.database_up.set(1)
        if self._failing:
            self._failing = False
            log.info("database writes recovered", extra={"buffered": self.buffered})
