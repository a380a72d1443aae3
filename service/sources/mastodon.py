"""Mastodon (and other servers speaking its API): one lookup per account at the account's home instance.

``GET /api/v1/accounts/lookup?acct=user`` is public. A remote instance knows only a cached copy of an
account, so by default each account is asked of the instance in its handle; ``base_url`` sends every
lookup to one server instead (a self-hosted relay, or the demo's simulated platform).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from service.samples import AccountState
from service.sources.base import AccountProblem, FetchResult, Observation, SourceError, Target
from service.sources.http import count, get_json

CONCURRENT_LOOKUPS = 8


class MastodonSource:
    platform: ClassVar[str] = "mastodon"
    batch_size: ClassVar[int] = 40

    def __init__(
        self, client: httpx.AsyncClient, base_url: str | None = None, token: str | None = None
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/") if base_url else None
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._limit = asyncio.Semaphore(CONCURRENT_LOOKUPS)

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        results = await asyncio.gather(*(self._fetch_one(target) for target in targets))
        return dict(zip(targets, results, strict=True))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _fetch_one(self, target: Target) -> FetchResult:
        user, _, host = target.handle.lstrip("@").partition("@")
        base = self._base_url or f"https://{host}"
        acct = target.handle.lstrip("@") if self._base_url else user
        async with self._limit:
            try:
                response, body = await get_json(
                    self._client,
                    f"{base}/api/v1/accounts/lookup",
                    params={"acct": acct},
                    headers=self._headers,
                )
            except SourceError as exc:
                return AccountProblem(AccountState.ERRORING, exc.message, kind=exc.kind)
        return _result(response, body)


def _result(response: httpx.Response, body: Any) -> FetchResult:
    status = response.status_code
    if status == 404:
        return AccountProblem(
            AccountState.NOT_FOUND, "the instance does not know this account", permanent=True
        )
    if status == 410:
        return AccountProblem(AccountState.SUSPENDED, "the account is gone (HTTP 410)", permanent=True)
    if status in (401, 403):
        reason = _error_text(body) or f"HTTP {status}"
        return AccountProblem(AccountState.ERRORING, f"the instance refuses lookups: {reason}", kind="auth")
    if status == 429:
        return AccountProblem(AccountState.ERRORING, "the instance is rate limiting us", kind="rate_limited")
    if status >= 500:
        return AccountProblem(
            AccountState.ERRORING, f"the instance failed with HTTP {status}", kind="http_5xx"
        )
    if status != 200:
        return AccountProblem(AccountState.ERRORING, f"unexpected HTTP {status}", kind="http_other")
    return parse_account(body)


def parse_account(body: Any) -> FetchResult:
    """An Account entity into an observation; anything off the documented shape is an error, never a sample."""
    try:
        if not isinstance(body, dict):
            raise ValueError("the answer is not an Account object")
        account_id, acct = body.get("id"), body.get("acct")
        if not isinstance(account_id, str) or not account_id or not isinstance(acct, str):
            raise ValueError("id or acct is missing")
        if body.get("suspended") is True:
            return AccountProblem(
                AccountState.SUSPENDED, "the account is suspended", permanent=True, platform_id=account_id
            )
        return Observation(
            platform_id=account_id,
            handle=acct,
            followers=count(body, "followers_count", required=True) or 0,
            following=count(body, "following_count", required=False),
            posts=count(body, "statuses_count", required=False),
        )
    except ValueError as exc:
        return AccountProblem(AccountState.ERRORING, f"malformed answer: {exc}", kind="invalid_response")


def _error_text(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error[:200] if isinstance(error, str) else None
