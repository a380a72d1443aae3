"""Bluesky through the public AppView: ``getProfiles`` takes 25 handles or DIDs per request.

Missing and taken-down accounts are silently left out of ``getProfiles``; each one left out is asked
once more with ``getProfile``, whose error code tells a takedown from an unknown account. No credential.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from service.samples import AccountState
from service.sources.base import AccountProblem, ApiSource, FetchResult, Observation, SourceError, Target
from service.sources.fields import as_dict, as_list, count, malformed, per_account, required_count, text
from service.sources.platform import Batching, Platform, RateBudget, Subject
from service.sources.ratelimit import next_batch
from service.sources.results import Results, failed, fetch_each, unaskable

if TYPE_CHECKING:
    import httpx

    from service.sources.registry import Wiring

PROFILES = "/xrpc/app.bsky.actor.getProfiles"
PROFILE = "/xrpc/app.bsky.actor.getProfile"
HANDLE = re.compile(
    r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
DID = re.compile(r"did:[a-z]+:[A-Za-z0-9._:%-]{1,240}")  # the spec allows 2 kB; the database holds 255


def build(wiring: Wiring) -> BlueskySource:
    return BlueskySource(wiring.api())


PLATFORM = Platform(
    name="bluesky",
    title="Bluesky",
    base_url="https://public.api.bsky.app",
    subjects=(
        Subject(
            platform_id=DID,
            states=frozenset({AccountState.NOT_FOUND, AccountState.SUSPENDED}),
            batching=Batching(per_request=25),
        ),
    ),
    budgets={"": RateBudget(3000, timedelta(minutes=5))},  # assumed: the public AppView publishes none
    rate_headers=("ratelimit-",),
    batch_size=25,
    build=build,
)


class BlueskySource(ApiSource):
    declared = PLATFORM

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        # One malformed actor makes the AppView reject the whole batch, so such handles never leave.
        results = unaskable(targets, _askable, "not a valid Bluesky handle or DID")
        asked = [t for t in targets if t not in results]
        if not asked:
            return results
        batch = next_batch()
        results.update(await self._profiles(asked, batch))
        missing = [t for t in asked if t not in results]
        try:
            results.update(await fetch_each(missing, lambda t: self._profile(t, batch), concurrency=4))
        except SourceError as exc:  # the found accounts still count
            results.update((t, failed(exc)) for t in missing)
        return results

    async def _profiles(self, targets: Sequence[Target], batch: int) -> Results:
        query = {"actors": [_actor(t) for t in targets]}
        response, body = await self._api.get(PROFILES, query, batch=batch)
        if response.status_code != 200:
            raise self._refused(response, body)
        try:
            profiles = as_list(as_dict(body, "the answer").get("profiles"), "profiles")
        except ValueError as exc:
            raise self._api.failed(f"bluesky: unexpected answer: {exc}", kind="invalid_response") from None
        found: dict[str, Any] = {}
        for profile in profiles:
            if isinstance(profile, dict):
                for key in ("did", "handle"):
                    if isinstance(profile.get(key), str):
                        found[profile[key].lower()] = profile
        return {t: _observation(found[_actor(t).lower()]) for t in targets if _actor(t).lower() in found}

    async def _profile(self, target: Target, batch: int) -> FetchResult:
        response, body = await self._api.get(PROFILE, {"actor": _actor(target)}, batch=batch)
        if response.status_code == 200:
            if not isinstance(body, dict) or _actor(target).lower() not in _keys(body):
                return malformed("the answer is about a different account", target.platform_id)
            return _observation(body)
        if response.status_code != 400:
            raise self._refused(response, body)
        self._api.succeeded(batch)  # an error about one account: the AppView itself is fine
        return _account_error(body, target.platform_id)

    def _refused(self, response: httpx.Response, body: Any) -> SourceError:
        status = response.status_code
        error = _error_code(body) or f"HTTP {status}"
        kind = "auth" if status in (401, 403) else "http_other"
        return self._api.failed(f"bluesky refused the request: {error}", kind=kind, permanent=kind == "auth")


def _askable(target: Target) -> bool:
    return bool(HANDLE.fullmatch(_actor(target)) or DID.fullmatch(_actor(target)))


def _actor(target: Target) -> str:
    return target.platform_id or target.handle.lstrip("@")


def _keys(profile: dict[str, Any]) -> set[str]:
    return {value.lower() for key in ("did", "handle") if isinstance(value := profile.get(key), str)}


@per_account
def _observation(profile: dict[str, Any]) -> FetchResult:
    # A profile without followersCount has an unknown count, which is never stored as 0.
    return Observation(
        platform_id=text(profile, "did"),
        handle=text(profile, "handle"),
        followers=required_count(profile, "followersCount"),
        following=count(profile, "followsCount", required=False),
        posts=count(profile, "postsCount", required=False),
    )


def _account_error(body: Any, platform_id: str | None) -> AccountProblem:
    code = _error_code(body)
    if code == "AccountTakedown":
        return AccountProblem(
            AccountState.SUSPENDED, "the account was taken down", permanent=True, platform_id=platform_id
        )
    if (
        code == "AccountDeactivated"
    ):  # its owner may come back: the slow re-checks of a permanent state will see it
        return AccountProblem(
            AccountState.NOT_FOUND, "the account is deactivated", permanent=True, platform_id=platform_id
        )
    return AccountProblem(
        AccountState.NOT_FOUND, "bluesky does not know this account", permanent=True, platform_id=platform_id
    )


def _error_code(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error[:80] if isinstance(error, str) else None
