"""Mastodon (and other servers speaking its API): one lookup per account at the account's home instance.

``GET /api/v1/accounts/lookup?acct=user`` is public; once the account id is known, ``/api/v1/accounts/:id``
follows it through renames. A remote instance knows only a cached copy of an account, so by default each
account is asked of the instance in its handle, after the SSRF guard has checked that host; ``base_url``
sends every lookup to one trusted server instead (a self-hosted relay, or the demo's simulated platform).
Each instance gets its own rate gate, and the token is sent only to ``base_url``: it belongs to one
server, never to whatever host a watchlist entry names.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any, ClassVar

import httpx

from service.clock import Clock, SystemClock
from service.samples import AccountState
from service.sources.api import Api
from service.sources.base import AccountProblem, FetchResult, Observation, SourceError, Target
from service.sources.hosts import HostRefused, check_host
from service.sources.http import count, required_count
from service.sources.metrics import SourceMetrics
from service.sources.ratelimit import RateGate, next_batch

CONCURRENT_LOOKUPS = 8
ACCOUNT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # numeric on Mastodon, flake ids elsewhere; never a path


class MastodonSource:
    platform: ClassVar[str] = "mastodon"
    batch_size: ClassVar[int] = 40

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str | None = None,
        token: str | None = None,
        *,
        clock: Clock | None = None,
        metrics: SourceMetrics | None = None,
        allow_hosts: Collection[str] = (),
    ) -> None:
        self._client = client
        self._base_url = base_url.rstrip("/") if base_url else None
        self._token = token
        self._clock = clock or SystemClock()
        self._metrics = metrics
        self._allow_hosts = frozenset(host.lower() for host in allow_hosts)
        self._apis: dict[str, Api] = {}
        self._limit = asyncio.Semaphore(CONCURRENT_LOOKUPS)

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        batch = next_batch()
        results = await asyncio.gather(*(self._fetch_one(target, batch) for target in targets))
        return dict(zip(targets, results, strict=True))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _fetch_one(self, target: Target, batch: int) -> FetchResult:
        """The account's result; a failure of its instance (down, rate limiting us) is its problem alone."""
        user, _, host = target.handle.lstrip("@").partition("@")
        host = host.lower()
        if self._base_url is None:
            try:
                await check_host(host, 443, self._allow_hosts)
            except HostRefused as exc:
                return AccountProblem(AccountState.ERRORING, str(exc), permanent=True, kind="refused_host")
        api = self._api_for(host)
        if target.platform_id and ACCOUNT_ID.match(target.platform_id):
            path, params = f"/api/v1/accounts/{target.platform_id}", None
        else:
            path, params = "/api/v1/accounts/lookup", {"acct": f"{user}@{host}" if self._base_url else user}
        async with self._limit:
            try:
                response, body = await api.get(path, params, batch=batch)
            except HostRefused as exc:  # the connection's own check (GuardedBackend): DNS changed its answer
                return AccountProblem(AccountState.ERRORING, str(exc), permanent=True, kind="refused_host")
            except SourceError as exc:
                message = f"{host}: {exc.message}"
                return AccountProblem(AccountState.ERRORING, message, kind=exc.kind, deferred=exc.deferred)
        return _checked(_result(api, response, body, batch), target, host)

    def _api_for(self, host: str) -> Api:
        key = "" if self._base_url else host
        if key not in self._apis:
            headers = {"Authorization": f"Bearer {self._token}"} if self._token and self._base_url else {}
            gate = RateGate(self.platform, self._clock, listener=self._metrics)
            self._apis[key] = Api(
                self.platform,
                self._client,
                self._base_url or f"https://{host}",
                gate,
                headers=headers,
                metrics=self._metrics,
            )
        return self._apis[key]


def _result(api: Api, response: httpx.Response, body: Any, batch: int) -> FetchResult:
    status = response.status_code
    if status in (404, 410):
        api.succeeded(batch)  # an answer about one account: the instance itself is fine
        if status == 404:
            return AccountProblem(
                AccountState.NOT_FOUND, "the instance does not know this account", permanent=True
            )
        return AccountProblem(AccountState.SUSPENDED, "the account is gone (HTTP 410)", permanent=True)
    if status in (401, 403):
        reason = _error_text(body) or f"HTTP {status}"
        error = api.failed(f"the instance refuses lookups: {reason}", kind="auth", batch=batch)
        return AccountProblem(AccountState.ERRORING, error.message, kind="auth")
    if status != 200:
        error = api.failed(f"unexpected HTTP {status}", kind="http_other", batch=batch)
        return AccountProblem(AccountState.ERRORING, error.message, kind="http_other")
    return parse_account(body)


def _checked(result: FetchResult, target: Target, host: str) -> FetchResult:
    """The answer must be about the account asked for; its handle is always written ``user@host``."""
    if not isinstance(result, Observation):
        return result
    handle = result.handle if "@" in result.handle else f"{result.handle}@{host}"
    asked_user = target.handle.lstrip("@").partition("@")[0]
    if target.platform_id:
        same = result.platform_id == target.platform_id
    else:
        same = handle.partition("@")[0].lower() == asked_user.lower()
    if not same:
        return AccountProblem(
            AccountState.ERRORING,
            "malformed answer: it is about a different account",
            kind="invalid_response",
            platform_id=target.platform_id,
        )
    return Observation(
        platform_id=result.platform_id,
        handle=handle,
        followers=result.followers,
        following=result.following,
        posts=result.posts,
    )


def parse_account(body: Any) -> FetchResult:
    """An Account entity into an observation; anything off the documented shape is an error, never a sample."""
    try:
        if not isinstance(body, dict):
            raise ValueError("the answer is not an Account object")
        account_id, acct = body.get("id"), body.get("acct")
        if not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id):
            raise ValueError("id is missing or malformed")
        if not isinstance(acct, str) or not acct or len(acct) > 300:
            raise ValueError("acct is missing")
        if body.get("suspended") is True:
            return AccountProblem(
                AccountState.SUSPENDED, "the account is suspended", permanent=True, platform_id=account_id
            )
        return Observation(
            platform_id=account_id,
            handle=acct,
            followers=required_count(body, "followers_count"),
            following=count(body, "following_count", required=False),
            posts=count(body, "statuses_count", required=False),
        )
    except ValueError as exc:
        return AccountProblem(AccountState.ERRORING, f"malformed answer: {exc}", kind="invalid_response")


def _error_text(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error[:200] if isinstance(error, str) else None
