"""One poll of a group of accounts on one platform: source → samples, states and detections → spool.

A failure is contained to the accounts it concerns: a problem with one account changes its state; a failed
request changes the state of the accounts in that batch; anything else a source raises is counted and
becomes the batch's error; other batches and platforms go on. A batch the rate gate holds back is not sent
and changes no state. No sample is ever made up: only an ``Observation`` becomes a sample.

Each answered batch goes to the spool in one piece (samples, account updates, and what the detection
engine made of the samples) before the board and metrics show it.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from service.board import Board
from service.clock import Clock
from service.metrics import ServiceMetrics
from service.samples import AccountState, Sample
from service.sources.base import AccountProblem, FetchResult, Observation, Source, SourceError, Target
from service.spool import Batch
from service.store.repository import AccountUpdate, DetectionRow, WatchedAccount
from service.writer import SampleWriter

log = logging.getLogger(__name__)

# A permanent state (not found, suspended) is asked again after these waits, the last one repeating.
PERMANENT_BACKOFF = (timedelta(hours=1), timedelta(hours=6), timedelta(days=1))
PERMANENT_STATES = (AccountState.NOT_FOUND, AccountState.SUSPENDED)
MAX_COUNT = 10**10
MAX_TEXT = {"handle": 255, "platform_id": 255, "error": 500}

Judge = Callable[[Sequence[tuple[int, Sample]]], list[DetectionRow]]


@dataclass(frozen=True)
class _Outcome:
    sample: Sample | None
    update: AccountUpdate | None  # None: nothing was asked (the rate gate held the request back)
    error_kind: str | None


class Poller:
    def __init__(
        self,
        source: Source,
        writer: SampleWriter,
        board: Board,
        metrics: ServiceMetrics,
        clock: Clock,
        judge: Judge | None = None,
    ) -> None:
        self.source = source
        self._writer = writer
        self._board = board
        self._metrics = metrics
        self._clock = clock
        self._judge = judge
        self.stopping = False  # set on shutdown: batches not yet started are left for the next run

    async def poll(
        self, accounts: Sequence[WatchedAccount], deadline: float | None = None
    ) -> list[WatchedAccount]:
        """Poll ``accounts`` batch by batch; returns those not reached (stopping, or past ``deadline``)."""
        size = max(self.source.batch_size, 1)
        for start in range(0, len(accounts), size):
            reason = (
                "stopping" if self.stopping else "overrun" if deadline and time.monotonic() > deadline else ""
            )
            if reason:
                left = accounts[start:]
                self._metrics.polls_skipped.labels(self.source.platform, reason).inc(len(left))
                return list(left)
            await self._poll_batch(accounts[start : start + size])
        return []

    async def _poll_batch(self, batch: Sequence[WatchedAccount]) -> None:
        targets = {account.id: Target(account.ref.handle, account.platform_id) for account in batch}
        started = time.perf_counter()
        results = await self._fetch(list(targets.values()))
        if not all(isinstance(r, AccountProblem) and r.deferred for r in results.values()):
            # Counted when a request went out; a batch the rate gate held back entirely was not sent.
            self._metrics.polls.labels(self.source.platform).inc()
            self._metrics.poll_duration.labels(self.source.platform).observe(time.perf_counter() - started)
        now = self._clock.now()
        outcomes = [(account, _outcome(account, results.get(targets[account.id]), now)) for account in batch]
        await self._deliver(outcomes)

    async def _fetch(self, targets: list[Target]) -> Mapping[Target, FetchResult]:
        try:
            return await self.source.fetch(targets)
        except SourceError as exc:
            problem = _problem_for_all(exc)
        except Exception:  # a source's bug is this batch's error, never the whole group's
            log.exception("a source failed unexpectedly", extra={"platform": self.source.platform})
            problem = AccountProblem(
                AccountState.ERRORING, "flockwatch could not read the answer", kind="internal"
            )
        return dict.fromkeys(targets, problem)

    async def _deliver(self, outcomes: Sequence[tuple[WatchedAccount, _Outcome]]) -> None:
        samples = [(account.id, o.sample) for account, o in outcomes if o.sample is not None]
        batch = Batch(
            samples, [o.update for _, o in outcomes if o.update is not None], self._detections(samples)
        )
        await self._writer.take(batch)
        for account, outcome in outcomes:
            self._show(account, outcome)

    def _detections(self, samples: list[tuple[int, Sample]]) -> list[DetectionRow]:
        if self._judge is None or not samples:
            return []
        started = time.perf_counter()
        try:
            found = self._judge(samples)
        except Exception:  # the samples are taken all the same; the engine's failure is logged and counted
            log.exception("the detection engine failed on a batch")
            self._metrics.task_restarts.labels("detection").inc()
            return []
        self._metrics.detection_lag.set(time.perf_counter() - started)
        return found

    def _show(self, account: WatchedAccount, outcome: _Outcome) -> None:
        if outcome.sample is not None:
            self._board.record_sample(outcome.sample)
        if outcome.error_kind is not None:
            self._metrics.poll_errors.labels(account.ref.platform, outcome.error_kind).inc()
        update = outcome.update
        if update is None:  # held back by the rate gate: the account's state has nothing new to say
            return
        before = self._board.record_state(account.ref, update.state, update.error, update.polled_at)
        _remember(account, update)
        if before not in (None, update.state) and not (
            before is AccountState.PENDING and update.state is AccountState.ACTIVE
        ):
            _log_state_change(account, update)


def _remember(account: WatchedAccount, update: AccountUpdate) -> None:
    """The daemon's copy of the account follows what the poll learned (no re-read of the watchlist)."""
    account.state, account.last_error, account.last_polled_at = update.state, update.error, update.polled_at
    account.next_poll_at, account.backoff_step = update.next_poll_at, update.backoff_step
    if update.platform_id:
        account.platform_id = update.platform_id
    if update.platform_handle:
        account.platform_handle = update.platform_handle


def _problem_for_all(exc: SourceError) -> AccountProblem:
    return AccountProblem(
        AccountState.ERRORING,
        exc.message,
        permanent=exc.permanent,
        kind=exc.kind,
        deferred=exc.deferred,
        retry_at=exc.retry_at if not exc.deferred else None,
    )


def _outcome(account: WatchedAccount, result: FetchResult | None, polled_at: datetime) -> _Outcome:
    if result is None:
        result = AccountProblem(
            AccountState.ERRORING, "the platform gave no answer for this account", kind="missing"
        )
    if isinstance(result, Observation):
        return _observed(account, result, polled_at)
    if result.deferred:
        return _Outcome(None, None, result.kind)
    step = account.backoff_step + 1 if result.permanent and result.state in PERMANENT_STATES else 0
    next_poll = (
        polled_at + PERMANENT_BACKOFF[min(step, len(PERMANENT_BACKOFF)) - 1] if step else result.retry_at
    )
    update = AccountUpdate(
        account.id,
        polled_at,
        result.state,
        clean(result.message, "error"),
        _changed(clean(result.platform_id, "platform_id"), account.platform_id),
        None,
        next_poll,
        step,
    )
    return _Outcome(None, update, result.kind)


def _observed(account: WatchedAccount, seen: Observation, polled_at: datetime) -> _Outcome:
    counts = (seen.followers, seen.following, seen.posts, seen.followers_step)
    if any(c is not None and not (isinstance(c, int) and 0 <= c < MAX_COUNT) for c in counts):
        problem = AccountProblem(
            AccountState.ERRORING, "malformed answer: a count out of range", kind="invalid_response"
        )
        return _outcome(account, problem, polled_at)
    sample = Sample(
        account.ref, polled_at, seen.followers, seen.following, seen.posts, max(seen.followers_step, 1)
    )
    update = AccountUpdate(
        account.id,
        polled_at,
        AccountState.ACTIVE,
        None,
        _changed(clean(seen.platform_id, "platform_id"), account.platform_id),
        _changed(clean(seen.handle, "handle"), account.platform_handle),
    )
    return _Outcome(sample, update, None)


def _changed(value: str | None, known: str | None) -> str | None:
    """Only what differs from what the account row already holds goes to the database."""
    return value if value and value != known else None


def clean(value: str | None, field: str) -> str | None:
    """Text from a platform, fit for any database: no NUL or other control characters, no lone
    surrogates, at most the length the column holds."""
    if value is None:
        return None
    if not value.isprintable() or any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        value = "".join(
            ch if ch.isprintable() and not 0xD800 <= ord(ch) <= 0xDFFF else "\N{REPLACEMENT CHARACTER}"
            for ch in value
        )
    value = unicodedata.normalize("NFC", value)
    limit = MAX_TEXT[field]
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _log_state_change(account: WatchedAccount, update: AccountUpdate) -> None:
    fields = {"account": str(account.ref), "state": update.state.value}
    if update.state is AccountState.ACTIVE:
        log.info("account recovered", extra=fields)
    else:
        log.warning("account poll failed", extra={**fields, "reason": update.error})
