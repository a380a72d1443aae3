"""X (Twitter) API v2 user lookup: up to 100 accounts per request, by username until the numeric id is known.

Partial failures come with HTTP 200: ``data[]`` holds the users found, ``errors[]`` the others. Both kinds of
error share one problem ``type``, so suspension is told from absence by the ``detail`` text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from service.samples import AccountState
from service.sources.base import AccountProblem, ApiSource, FetchResult, Observation, SourceError, Target
from service.sources.fields import as_dict, as_list, count, per_account, required_count, text
from service.sources.platform import (
    NUMERIC_ID,
    Batching,
    Credential,
    Platform,
    RateBudget,
    Subject,
)
from service.sources.ratelimit import parse_reset
from service.sources.results import Results, fill_unanswered, unaskable

if TYPE_CHECKING:
    import httpx

    from service.sources.registry import Wiring

USERNAME = re.compile(r"[A-Za-z0-9_]{1,15}")  # one bad name makes X reject the whole batch with HTTP 400
USAGE_CAP_PAUSE = timedelta(hours=1)  # the monthly cap names no reset time


def build(wiring: Wiring) -> XSource:
    return XSource(wiring.api())


def _headers(credentials: Mapping[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {credentials['bearer_token']}"}


PLATFORM = Platform(
    name="x",
    title="X",
    base_url="https://api.x.com",
    subjects=(
        Subject(
            platform_id=NUMERIC_ID,
            states=frozenset({AccountState.NOT_FOUND, AccountState.SUSPENDED, AccountState.PROTECTED}),
            batching=Batching(per_request=100),
        ),
    ),
    credentials=(Credential("bearer_token", "X needs an app bearer token"),),
    headers=_headers,
    budgets={"": RateBudget(300, timedelta(minutes=15))},
    rate_headers=("x-rate-limit-", "x-app-limit-24hour-"),
    batch_size=100,
    build=build,
)


class XSource(ApiSource):
    declared = PLATFORM

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        results = unaskable(targets, _askable, "not a valid X username")
        by_id = [t for t in targets if t.platform_id]
        by_name = [t for t in targets if not t.platform_id and t not in results]
        if by_id:
            results.update(await self._lookup("/2/users", "ids", by_id, lambda t: t.platform_id or ""))
        if by_name:
            results.update(
                await self._lookup("/2/users/by", "usernames", by_name, lambda t: t.handle.lower())
            )
        return results

    async def _lookup(
        self, path: str, param: str, targets: Sequence[Target], key: Callable[[Target], str]
    ) -> Results:
        query = {param: ",".join(key(t) for t in targets), "user.fields": "public_metrics"}
        response, body = await self._api.get(path, query)
        if response.status_code != 200:
            raise self._refused(response, body)
        try:
            envelope = as_dict(body, "the answer")
            users = as_list(envelope.get("data", []), "data")
            errors = as_list(envelope.get("errors", []), "errors")
        except ValueError as exc:
            raise self._api.failed(
                f"x answered with an unexpected shape: {exc}", kind="invalid_response"
            ) from None
        wanted = {key(t): t for t in targets}
        results: Results = {}
        for user in users:
            target = wanted.get(_user_key(user, param))
            if target is not None:  # users nobody asked for are ignored
                results[target] = _observation(user)
        for error in errors:
            value = error.get("value") if isinstance(error, dict) else None
            target = wanted.get(value.lower() if isinstance(value, str) else "")
            if target is not None and target not in results:
                results[target] = _problem(error)
        return fill_unanswered(targets, results)

    def _refused(self, response: httpx.Response, body: Any) -> SourceError:
        status = response.status_code
        title = str(body.get("title", "")) if isinstance(body, dict) else ""
        if status == 403 and "usagecap" in title.replace(" ", "").lower():
            now = self._api.gate.now()
            reset = parse_reset(response.headers.get("x-app-limit-24hour-reset"), now)
            return self._api.failed(
                "x: the app's usage cap is exhausted", kind="quota", retry_at=reset or now + USAGE_CAP_PAUSE
            )
        if status in (401, 403):
            return self._api.failed(
                f"x refused the bearer token (HTTP {status} {title[:80]})".rstrip(),
                kind="auth",
                permanent=True,
            )
        return self._api.failed(f"x answered HTTP {status}", kind="http_other")


def _askable(target: Target) -> bool:
    return bool(target.platform_id) or USERNAME.fullmatch(target.handle) is not None


def _user_key(user: Any, param: str) -> str:
    if not isinstance(user, dict):
        return ""
    value = user.get("id" if param == "ids" else "username")
    return value.lower() if isinstance(value, str) else ""


@per_account
def _observation(user: dict[str, Any]) -> FetchResult:
    metrics = as_dict(user.get("public_metrics"), "public_metrics")
    return Observation(
        platform_id=text(user, "id"),
        handle=text(user, "username"),
        followers=required_count(metrics, "followers_count"),
        following=count(metrics, "following_count", required=False),
        posts=count(metrics, "tweet_count", required=False),
    )


@per_account
def _problem(error: dict[str, Any]) -> FetchResult:
    detail = str(error.get("detail", ""))[:200]
    title = str(error.get("title", ""))
    if "suspended" in detail.lower():
        return AccountProblem(AccountState.SUSPENDED, "the account is suspended", permanent=True)
    if title == "Not Found Error":
        return AccountProblem(AccountState.NOT_FOUND, "x does not know this account", permanent=True)
    if "protected" in detail.lower() or title == "Authorization Error":
        return AccountProblem(AccountState.PROTECTED, "the account is protected")
    return AccountProblem(AccountState.ERRORING, f"x: {title} {detail}".strip(), kind="account")
