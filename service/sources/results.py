"""Helpers that turn many small answers into one result per target."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from service.samples import AccountState
from service.sources.base import AccountProblem, FetchResult, SourceError, Target


async def fetch_each(
    targets: Sequence[Target], one: Callable[[Target], Awaitable[FetchResult]], *, concurrency: int
) -> dict[Target, FetchResult]:
    """One request per target, a few at a time.

    A target whose own request failed as a whole (rate limit, 5xx, network) gets that failure as its
    problem; when every request failed, the first failure is raised so the caller learns ``retry_at``.
    """
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


def failed(error: SourceError) -> AccountProblem:
    """A failed request for one account, as that account's problem."""
    return AccountProblem(
        AccountState.ERRORING,
        error.message,
        permanent=error.permanent,
        kind=error.kind,
        deferred=error.deferred,
    )


def malformed(reason: str, platform_id: str | None = None) -> AccountProblem:
    return AccountProblem(
        AccountState.ERRORING, f"malformed answer: {reason}", kind="invalid_response", platform_id=platform_id
    )


def fill_unanswered(
    targets: Sequence[Target], results: dict[Target, FetchResult]
) -> dict[Target, FetchResult]:
    """A batch answer that neither lists nor rejects a target is broken for that target, not proof of absence."""
    for target in targets:
        results.setdefault(target, malformed("the answer does not mention this account", target.platform_id))
    return results


def text(data: Mapping[str, Any], key: str) -> str:
    """A required non-empty string field."""
    value = data.get(key)
    if not isinstance(value, str) or not value or len(value) > 300:
        raise ValueError(f"{key} is missing or not text")
    return value


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object")
    return value


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} is not a list")
    return value
