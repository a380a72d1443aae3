"""Twitch Helix: ``/helix/users`` turns up to 100 logins or ids into users, then one
``/helix/channels/followers`` request per broadcaster reads its ``total``.

Banned and deleted users are left out of ``/helix/users``, so they read as not found. Needs the app's
``Client-Id`` and a user access token; without moderator scope ``data`` is empty but ``total`` is valid.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from service.samples import AccountState
from service.sources.base import AccountProblem, ApiSource, FetchResult, Observation, SourceError, Target
from service.sources.fields import as_dict, as_list, malformed, required_count, text
from service.sources.platform import (
    NUMERIC_ID,
    Batching,
    Counts,
    Credential,
    Platform,
    RateBudget,
    Subject,
)
from service.sources.ratelimit import next_batch
from service.sources.results import fetch_each, unaskable

if TYPE_CHECKING:
    import httpx

    from service.sources.registry import Wiring

LOGIN = re.compile(r"[A-Za-z0-9_]{1,25}")  # one bad login makes Helix reject the whole lookup


def build(wiring: Wiring) -> TwitchSource:
    return TwitchSource(wiring.api())


def _headers(credentials: Mapping[str, str]) -> dict[str, str]:
    return {"Client-Id": credentials["client_id"], "Authorization": f"Bearer {credentials['token']}"}


PLATFORM = Platform(
    name="twitch",
    title="Twitch",
    base_url="https://api.twitch.tv",
    subjects=(
        Subject(
            platform_id=NUMERIC_ID,
            states=frozenset({AccountState.NOT_FOUND}),
            counts=Counts(following=None, posts=None),
            batching=Batching(per_request=1, lookups=100),  # /helix/users for 100, then one per account
        ),
    ),
    credentials=(
        Credential("client_id", "Twitch needs the app's client id", secret=False),
        Credential("token", "Twitch needs a user access token"),
    ),
    headers=_headers,
    budgets={"": RateBudget(800, timedelta(minutes=1))},  # points; reported, not published
    rate_headers=("ratelimit-",),
    batch_size=100,
    build=build,
)


class TwitchSource(ApiSource):
    declared = PLATFORM

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        results = unaskable(targets, _askable, "not a valid Twitch login")
        asked = [t for t in targets if t not in results]
        if not asked:
            return results
        batch = next_batch()
        users = await self._users(asked, batch)
        found = [t for t in asked if isinstance(users.get(t), dict)]
        for target in asked:
            if target not in users:
                results[target] = _absent(target)
            elif not isinstance(users[target], dict):
                results[target] = users[target]
        if found:
            followers = await fetch_each(found, lambda t: self._followers(users[t], batch), concurrency=8)
            results.update(followers)
        return results

    async def _users(self, targets: Sequence[Target], batch: int) -> dict[Target, Any]:
        """Each found target's user object (a malformed one as its problem); absent targets are left out."""
        query = {
            "id": [t.platform_id for t in targets if t.platform_id],
            "login": [t.handle.lower() for t in targets if not t.platform_id],
        }
        data = await self._data("/helix/users", {k: v for k, v in query.items() if v}, batch)
        by_key: dict[str, dict[str, Any]] = {}
        for user in data:
            if isinstance(user, dict):
                for key in ("id", "login"):
                    if isinstance(user.get(key), str):
                        by_key[f"{key}:{user[key].lower()}"] = user
        found: dict[Target, Any] = {}
        for target in targets:
            key = f"id:{target.platform_id}" if target.platform_id else f"login:{target.handle.lower()}"
            if key in by_key:
                found[target] = _checked_user(by_key[key])
        return found

    async def _followers(self, user: dict[str, Any], batch: int) -> FetchResult:
        query = {"broadcaster_id": user["id"], "first": "1"}
        response, body = await self._api.get("/helix/channels/followers", query, batch=batch)
        if response.status_code != 200:
            raise self._refused(response, body)
        try:
            total = required_count(as_dict(body, "the answer"), "total")
        except ValueError as exc:
            return malformed(str(exc), user["id"])
        return Observation(platform_id=user["id"], handle=user["login"], followers=total)

    async def _data(self, path: str, query: Mapping[str, list[str]], batch: int) -> list[Any]:
        response, body = await self._api.get(path, query, batch=batch)
        if response.status_code != 200:
            raise self._refused(response, body)
        try:
            return as_list(as_dict(body, "the answer").get("data"), "data")
        except ValueError as exc:
            raise self._api.failed(f"twitch: unexpected answer: {exc}", kind="invalid_response") from None

    def _refused(self, response: httpx.Response, body: Any) -> SourceError:
        status = response.status_code
        message = body.get("message") if isinstance(body, dict) else None
        detail = message[:120] if isinstance(message, str) else f"HTTP {status}"
        if status in (401, 403):
            return self._api.failed(
                f"twitch refused the client id or token: {detail}", kind="auth", permanent=True
            )
        return self._api.failed(f"twitch answered HTTP {status}: {detail}", kind="http_other")


def _askable(target: Target) -> bool:
    return bool(target.platform_id) or LOGIN.fullmatch(target.handle) is not None


def _checked_user(user: dict[str, Any]) -> dict[str, Any] | AccountProblem:
    try:
        if not NUMERIC_ID.fullmatch(text(user, "id")) or not LOGIN.fullmatch(text(user, "login")):
            raise ValueError("id or login is malformed")
    except ValueError as exc:
        return malformed(str(exc))
    return user


def _absent(target: Target) -> AccountProblem:
    return AccountProblem(
        AccountState.NOT_FOUND,
        "twitch does not list this user (unknown, banned or deleted)",
        permanent=True,
        platform_id=target.platform_id,
    )
