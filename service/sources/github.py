"""GitHub REST: ``/users/{login}`` per account, then ``/user/{id}`` once the numeric id is known, so a
renamed user keeps their history.

Works without a token at 60 requests an hour; a token raises that to 5,000. Over the limit GitHub answers
403 or 429 with ``x-ratelimit-remaining: 0`` (wait for ``x-ratelimit-reset``) or, for its secondary
limits, with ``retry-after``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from service.samples import AccountState
from service.sources.api import Api
from service.sources.base import AccountProblem, FetchResult, Observation, SourceError, Target
from service.sources.http import count, required_count
from service.sources.ratelimit import next_batch, parse_reset
from service.sources.results import as_dict, fetch_each, malformed, text

LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
NUMERIC_ID = re.compile(r"^[0-9]{1,20}$")
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}


class GithubSource:
    platform: ClassVar[str] = "github"
    batch_size: ClassVar[int] = 20

    def __init__(self, api: Api) -> None:
        self._api = api

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        batch = next_batch()
        return await fetch_each(targets, lambda target: self._user(target, batch), concurrency=4)

    async def aclose(self) -> None:
        await self._api.aclose()

    async def _user(self, target: Target, batch: int) -> FetchResult:
        if target.platform_id and NUMERIC_ID.match(target.platform_id):
            path = f"/user/{target.platform_id}"
        elif LOGIN.match(target.handle):
            path = f"/users/{target.handle}"
        else:
            return AccountProblem(AccountState.NOT_FOUND, "not a valid GitHub login", permanent=True)
        response, body = await self._api.get(path, batch=batch)
        if response.status_code == 404:
            self._api.succeeded(batch)  # an unknown user is an answer, not a failure of GitHub
            return AccountProblem(
                AccountState.NOT_FOUND,
                "github does not know this user",
                permanent=True,
                platform_id=target.platform_id,
            )
        if response.status_code != 200:
            raise self._refused(response, body)
        return _observation(body, target)

    def _refused(self, response: httpx.Response, body: Any) -> SourceError:
        status = response.status_code
        message = body.get("message") if isinstance(body, dict) else None
        detail = message[:120] if isinstance(message, str) else f"HTTP {status}"
        if status in (403, 429) and _rate_limited(response, detail):
            reset = parse_reset(response.headers.get("x-ratelimit-reset"), self._api.gate.now())
            spent = response.headers.get("x-ratelimit-remaining") == "0"
            return self._api.failed(
                f"github rate limit: {detail}", kind="rate_limited", retry_at=reset if spent else None
            )
        if status in (401, 403):
            return self._api.failed(f"github refused the token: {detail}", kind="auth", permanent=True)
        return self._api.failed(f"github answered HTTP {status}: {detail}", kind="http_other")


def _rate_limited(response: httpx.Response, detail: str) -> bool:
    return (
        response.headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in response.headers
        or "rate limit" in detail.lower()
    )


def _observation(body: Any, target: Target) -> FetchResult:
    try:
        user = as_dict(body, "the answer")
        user_id = user.get("id")
        if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
            raise ValueError("id is missing or not a number")
        login = text(user, "login")
        if target.platform_id and str(user_id) != target.platform_id:
            raise ValueError("the answer is about a different user")
        if not target.platform_id and login.lower() != target.handle.lower():
            raise ValueError("the answer is about a different user")
        return Observation(
            platform_id=str(user_id),
            handle=login,
            followers=required_count(user, "followers"),
            following=count(user, "following", required=False),
            posts=count(user, "public_repos", required=False),
        )
    except ValueError as exc:
        return malformed(str(exc), target.platform_id)
