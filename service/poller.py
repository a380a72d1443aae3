"""One poll of a group of accounts on one platform: source → samples and states → writer, board, listeners.

A failure is contained to the accounts it concerns: a problem with one account changes its state; a failed
request changes the state of the accounts in that batch; other batches and platforms go on. A batch the
rate gate holds back (a spent budget, a Retry-After, a backoff) is not sent and changes no state. No
sample is ever made up: only an ``Observation`` becomes a sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from service.board import Board
from service.clock import Clock
from service.metrics import ServiceMetrics
from service.samples import AccountState, Sample
from service.sources.base import AccountProblem, FetchResult, Observation, Source, SourceError, Target
from service.store.repository import AccountUpdate, WatchedAccount
from service.writer import SampleWriter

log = logging.getLogger(__name__)


class SampleListener(Protocol):
    """Something that wants every new sample after it is handed to the writer (the detection engine)."""

    async def on_samples(self, samples: Sequence[Sample]) -> None: ...


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
        listeners: Sequence[SampleListener] = (),
    ) -> None:
        self.source = source
        self._writer = writer
        self._board = board
        self._metrics = metrics
        self._clock = clock
        self._listeners = listeners

    async def poll(self, accounts: Sequence[WatchedAccount]) -> None:
        size = max(self.source.batch_size, 1)
        for start in range(0, len(accounts), size):
            await self._poll_batch(accounts[start : start + size])

    async def _poll_batch(self, batch: Sequence[WatchedAccount]) -> None:
        platform = self.source.platform
        targets = {account.id: Target(account.ref.handle, account.platform_id) for account in batch}
        started = time.perf_counter()
        try:
            results: Mapping[Target, FetchResult] = await self.source.fetch(list(targets.values()))
        except SourceError as exc:
            results = {target: _problem_for_all(exc) for target in targets.values()}
        if not all(isinstance(r, AccountProblem) and r.deferred for r in results.values()):
            # Counted when a request went out; a batch the rate gate held back entirely was not sent.
            self._metrics.polls.labels(platform).inc()
            self._metrics.poll_duration.labels(platform).observe(time.perf_counter() - started)
        now = self._clock.now()
        outcomes = [(account, _outcome(account, results.get(targets[account.id]), now)) for account in batch]
        await self._deliver(outcomes)

    async def _deliver(self, outcomes: Sequence[tuple[WatchedAccount, _Outcome]]) -> None:
        samples = [(account.id, o.sample) for account, o in outcomes if o.sample is not None]
        self._writer.submit(samples, [o.update for _, o in outcomes if o.update is not None])
        for account, outcome in outcomes:
            self._show(account, outcome)
        new = [sample for _, sample in samples]
        answered = time.perf_counter()
        for listener in self._listeners:
            try:
                await listener.on_samples(new)
            except Exception:  # a listener's failure must not stop polling; its own state says what it lost
                log.exception("sample listener failed", extra={"listener": type(listener).__name__})
        if new and self._listeners:
            self._metrics.detection_lag.set(time.perf_counter() - answered)

    def _show(self, account: WatchedAccount, outcome: _Outcome) -> None:
        if outcome.sample is not None:
            self._board.record_sample(outcome.sample)
        if outcome.error_kind is not None:
            self._metrics.poll_errors.labels(account.ref.platform, outcome.error_kind).inc()
        update = outcome.update
        if update is None:  # held back by the rate gate: the account's state has nothing new to say
            return
        before = self._board.record_state(account.ref, update.state, update.error, update.polled_at)
        if before not in (None, update.state) and not (
            before is AccountState.PENDING and update.state is AccountState.ACTIVE
        ):
            _log_state_change(account, update)


def _problem_for_all(exc: SourceError) -> AccountProblem:
    return AccountProblem(
        AccountState.ERRORING, exc.message, permanent=exc.permanent, kind=exc.kind, deferred=exc.deferred
    )


def _outcome(account: WatchedAccount, result: FetchResult | None, polled_at: datetime) -> _Outcome:
    if result is None:
        result = AccountProblem(
            AccountState.ERRORING, "the platform gave no answer for this account", kind="missing"
        )
    if isinstance(result, Observation):
        sample = Sample(
            account.ref, polled_at, result.followers, result.following, result.posts, result.followers_step
        )
        update = AccountUpdate(
            account.id, polled_at, AccountState.ACTIVE, None, result.platform_id, result.handle
        )
        return _Outcome(sample, update, None)
    if result.deferred:
        return _Outcome(None, None, result.kind)
    update = AccountUpdate(account.id, polled_at, result.state, result.message, result.platform_id)
    return _Outcome(None, update, result.kind)


def _log_state_change(account: WatchedAccount, update: AccountUpdate) -> None:
    fields = {"account": str(account.ref), "state": update.state.value}
    if update.state is AccountState.ACTIVE:
        log.info("account recovered", extra=fields)
    else:
        log.warning("account poll failed", extra={**fields, "reason": update.error})
