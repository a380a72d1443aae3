"""Mastodon (and other servers speaking its API): one lookup per account at the account's home instance.

``GET /api/v1/accounts/lookup?acct=user`` is public; once the account id is known, ``/api/v1/accounts/:id``
follows it through renames. A remote instance knows only a cached copy of an account, so by default each
account is asked of the instance in its handle, after the SSRF guard has checked that host; ``base_url``
sends every lookup to one trusted server instead (a self-hosted relay, or the demo's simulated platform).
Each instance gets its own rate gate, and the token is sent only to ``base_url``: it belongs to one
server, never to whatever host a watchlist entry names.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from service.clock import Clock, SystemClock
from service.samples import AccountState
from service.sources.base import AccountProblem, FetchResult, Observation, SourceError, Target
from service.sources.fields import count, malformed, per_account, required_count, text
from service.sources.platform import Batching, Credential, Platform, RateBudget, Subject
from service.sources.ratelimit import next_batch
from service.sources.results import fetch_each

if TYPE_CHECKING:
    import httpx

    from service.sources.api import Api
    from service.sources.metrics import SourceMetrics
    from service.sources.registry import Wiring

CONCURRENT_LOOKUPS = 8
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # numeric on Mastodon, flake ids elsewhere; never a path
# user@instance: a user name as the fediverse writes them, and a DNS name with at least one dot.
HANDLE = re.compile(r"(?=.{3,253}$)@?[A-Za-z0-9_.-]{1,64}@([A-Za-z0-9-]{1,63}\.)+[A-Za-z0-9-]{2,63}")


def build(wiring: Wiring) -> MastodonSource:
    settings = wiring.settings
    return MastodonSource(
        wiring.client,
        settings.base_url,
        wiring.credential("token"),
        clock=wiring.clock,
        metrics=wiring.metrics,
        allow_hosts=settings.allow_hosts,
    )


def instance(handle: str) -> str:
    """The instance an account lives on: its budget is that instance's."""
    return handle.rpartition("@")[2].lower()


PLATFORM = Platform(
    name="mastodon",
    title="Mastodon",
    base_url="",  # none: each account's own instance, unless platforms.mastodon.base_url names one
    subjects=(
        Subject(
            handle=HANDLE,
            help="a Mastodon handle is user@instance, e.g. mastodon:Gargron@mastodon.social",
            platform_id=ACCOUNT_ID,
            states=frozenset({AccountState.NOT_FOUND, AccountState.SUSPENDED}),
            batching=Batching(per_request=1),
        ),
    ),
    credentials=(Credential("token", "an access token for base_url", required=False),),
    budgets={"": RateBudget(300, timedelta(minutes=5))},  # per instance
    rate_headers=("x-ratelimit-",),
    instance=instance,
    # one wave of concurrent lookups: a batch is taken into the spool as soon as its answers are in, instead of
    # holding its first answers while four more waves go out
    batch_size=CONCURRENT_LOOKUPS,
    build=build,
)


class MastodonSource:
    platform = PLATFORM.name
    batch_size = PLATFORM.batch_size

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

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        batch = next_batch()
        return await fetch_each(targets, lambda t: self._fetch_one(t, batch), concurrency=CONCURRENT_LOOKUPS)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _fetch_one(self, target: Target, batch: int) -> FetchResult:
        """The account's result; a failure of its instance (down, rate limiting us) is its problem alone."""
        from service.sources.hosts import HostRefused, check_host  # the guard needs httpx: not at import
        from service.sources.http import deadline_of

        user, _, host = target.handle.lstrip("@").partition("@")
        host = host.lower()
        try:
            if self._base_url is None:
                await check_host(host, 443, self._allow_hosts, deadline=deadline_of(self._client))
            response, body = await self._ask(target, user, host, batch)
        except HostRefused as exc:  # also from the connection's own check (GuardedBackend): DNS changed
            return AccountProblem(AccountState.ERRORING, str(exc), permanent=True, kind="refused_host")
        except SourceError as exc:
            message = f"{host}: {exc.message}"
            return AccountProblem(
                AccountState.ERRORING, message, kind=exc.kind, deferred=exc.deferred, retry_at=exc.retry_at
            )
        return _checked(_result(self._api_for(host), response, body, batch), target, host)

    async def _ask(self, target: Target, user: str, host: str, batch: int) -> tuple[httpx.Response, Any]:
        if target.platform_id and ACCOUNT_ID.fullmatch(target.platform_id):
            path, params = f"/api/v1/accounts/{target.platform_id}", None
        else:
            path, params = "/api/v1/accounts/lookup", {"acct": f"{user}@{host}" if self._base_url else user}
        return await self._api_for(host).get(path, params, batch=batch)

    def _api_for(self, host: str) -> Api:
        key = "" if self._base_url else host
        if key not in self._apis:
            self._apis[key] = self._new_api(self._base_url or f"https://{host}")
        return self._apis[key]

    def _new_api(self, base_url: str) -> Api:
        from service.sources.api import Api
        from service.sources.ratelimit import RateGate

        headers = {"Authorization": f"Bearer {self._token}"} if self._token and self._base_url else {}
        gate = RateGate(self.platform, self._clock, listener=self._metrics, prefixes=PLATFORM.rate_headers)
        return Api(self.platform, self._client, base_url, gate, headers=headers, metrics=self._metrics)


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
        return AccountProblem(AccountState.ERRORING, error.message, kind="auth", retry_at=error.retry_at)
    if status != 200:
        error = api.failed(f"unexpected HTTP {status}", kind="http_other", batch=batch)
        return AccountProblem(
            AccountState.ERRORING, error.message, kind="http_other", retry_at=error.retry_at
        )
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
        return malformed("it is about a different account", target.platform_id)
    return Observation(
        platform_id=result.platform_id,
        handle=handle,
        followers=result.followers,
        following=result.following,
        posts=result.posts,
    )


@per_account
def parse_account(body: Any) -> FetchResult:
    """An Account entity into an observation; anything off the documented shape is an error, never a sample."""
    if not isinstance(body, dict):
        raise ValueError("the answer is not an Account object")
    account_id, acct = text(body, "id"), text(body, "acct")
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


def _error_text(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error[:200] if isinstance(error, str) else None
