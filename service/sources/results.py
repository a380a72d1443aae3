"""Helpers that turn many small answers into one result per target."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from service.samples import AccountState
from service.sources.base import AccountProblem, FetchResult, SourceError, Target
from service.sources.fields import malformed

Results = dict[Target, FetchResult]


async def fetch_each(
    targets: Sequence[Target], one: Callable[[Target], Awaitable[FetchResult]], *, concurrency: int
) -> Results:
    """One request per target, a few at a time.

    A target whose own request failed as a whole (rate limit, 5xx, network) gets that failure as its
    problem; when every request failed, the first failure is raised so the caller learns ``retry_at``.
    """
    import asyncio  # here, not at the top: platform declarations import this module on the backtest path

    limit = asyncio.Semaphore(concurrency)

    async def guarded(target: Target) -> FetchResult | SourceError:
        async with limit:
            try:
                return await one(target)
            except SourceError as exc:
                return exc

    answers = await asyncio.gather(*(guarded(target) for target in targets))
    failures = [a for a in answers if isinstance(a, SourceError)]
    if failures and len(failures) == len(answers):
        raise failures[0]
    return {t: failed(a) if isinstance(a, SourceError) else a for t, a in zip(targets, answers, strict=True)}


Part = tuple[Sequence[Target], Callable[[], Awaitable[Results]]]


async def fetch_parts(parts: Sequence[Part]) -> Results:
    """Several lookups of one ``fetch`` (users and repositories, ids and names), one after the other.

    A part that failed as a whole gives its targets that failure; when every part failed, the first
    failure is raised, as ``fetch`` would for one request.
    """
    results: Results = {}
    failures: list[SourceError] = []
    for targets, answer in parts:
        try:
            results.update(await answer())
        except SourceError as exc:
            failures.append(exc)
            results.update((t, failed(exc)) for t in targets)
    if failures and len(failures) == len(parts):
        raise failures[0]
    return results


def failed(error: SourceError) -> AccountProblem:
    """A failed request for one account, as that account's problem."""
    return AccountProblem(
        AccountState.ERRORING,
        error.message,
        permanent=error.permanent,
        kind=error.kind,
        deferred=error.deferred,
        retry_at=error.retry_at,
    )


def unaskable(targets: Sequence[Target], askable: Callable[[Target], bool], message: str) -> Results:
    """Names the platform cannot have are not found without a request: one would spoil the whole batch."""
    return {
        t: AccountProblem(AccountState.NOT_FOUND, message, permanent=True) for t in targets if not askable(t)
    }


def fill_unanswered(targets: Sequence[Target], results: Results) -> Results:
    """A batch answer that neither lists nor rejects a target is broken for that target, not proof of absence."""
    for target in targets:
        results.setdefault(target, malformed("the answer does not mention this account", target.platform_id))
    return results
