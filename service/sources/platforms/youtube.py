"""YouTube Data API v3 ``channels.list``: 50 channel ids per request, or one ``forHandle`` to learn an id.

Subscriber counts are public only rounded down to three significant figures, so each observation carries
the step its count moves in (10,000 at 1.23M); a channel may hide its count altogether. The API key goes
in the ``X-Goog-Api-Key`` header, never the URL. Each call costs one unit of a daily quota that refills at
midnight Pacific time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.samples import AccountState
from service.sources.base import AccountProblem, ApiSource, FetchResult, Observation, SourceError, Target
from service.sources.fields import as_dict, as_list, in_range, malformed, per_account, text
from service.sources.platform import (
    Batching,
    Counts,
    Credential,
    Platform,
    RateBudget,
    Subject,
)
from service.sources.ratelimit import next_batch
from service.sources.results import Results, fetch_each

if TYPE_CHECKING:
    import httpx

    from service.sources.registry import Wiring

CHANNELS = "/youtube/v3/channels"
CHANNEL_ID = re.compile(r"UC[A-Za-z0-9_-]{22}")
PART = "snippet,statistics"
FIELDS = "items(id,snippet/customUrl,statistics)"  # snippet carries the handle; the rest is dropped
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


def build(wiring: Wiring) -> YoutubeSource:
    return YoutubeSource(wiring.api())


def _headers(credentials: Mapping[str, str]) -> dict[str, str]:
    return {"X-Goog-Api-Key": credentials["api_key"]}


PLATFORM = Platform(
    name="youtube",
    title="YouTube",
    base_url="https://www.googleapis.com",
    subjects=(
        Subject(
            platform_id=CHANNEL_ID,
            states=frozenset({AccountState.NOT_FOUND, AccountState.PROTECTED}),
            counts=Counts(following=None, posts="videos"),
            batching=Batching(per_request=50),
        ),
    ),
    credentials=(Credential("api_key", "YouTube needs a Data API v3 key"),),
    headers=_headers,
    budgets={"": RateBudget(10_000, timedelta(days=1))},  # quota units; one per channels.list call
    batch_size=50,
    build=build,
)


class YoutubeSource(ApiSource):
    declared = PLATFORM

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        known = [t for t in targets if _channel_id(t)]
        unknown = [t for t in targets if not _channel_id(t)]
        results: Results = {}
        batch = next_batch()
        if known:
            results.update(await self._by_ids(known, batch))
        if unknown:
            results.update(await fetch_each(unknown, lambda t: self._by_handle(t, batch), concurrency=4))
        return results

    async def _by_ids(self, targets: Sequence[Target], batch: int) -> Results:
        ids = ",".join(_channel_id(t) or "" for t in targets)
        items = await self._channels({"id": ids, "maxResults": "50"}, batch)
        found = {
            item["id"]: item for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)
        }
        # channels.list silently leaves out ids of deleted and terminated channels
        return {
            t: _observation(found[cid], t) if (cid := _channel_id(t)) in found else _gone(cid)
            for t in targets
        }

    async def _by_handle(self, target: Target, batch: int) -> FetchResult:
        handle = "@" + target.handle.lstrip("@")
        items = [
            item for item in await self._channels({"forHandle": handle}, batch) if isinstance(item, dict)
        ]
        if len(items) > 1:  # only one channel can own a handle; keep the one that says it does
            items = [item for item in items if _custom_url(item) == handle.lower()]
        if not items:
            return AccountProblem(AccountState.NOT_FOUND, "no channel has this handle", permanent=True)
        if len(items) > 1:
            return malformed("several channels claim this handle")
        return _observation(items[0], target)

    async def _channels(self, query: dict[str, str], batch: int) -> list[Any]:
        response, body = await self._api.get(CHANNELS, {"part": PART, "fields": FIELDS, **query}, batch=batch)
        if response.status_code != 200:
            raise self._refused(response, body)
        try:
            return as_list(as_dict(body, "the answer").get("items", []), "items")
        except ValueError as exc:
            raise self._api.failed(f"youtube: unexpected answer: {exc}", kind="invalid_response") from None

    def _refused(self, response: httpx.Response, body: Any) -> SourceError:
        status, reasons = response.status_code, _reasons(body)
        if reasons & QUOTA_REASONS:
            until = next_quota_reset(self._api.gate.now())
            return self._api.failed("youtube: the daily API quota is spent", kind="quota", retry_at=until)
        if reasons & RATE_REASONS:
            return self._api.failed("youtube is rate limiting us", kind="rate_limited")
        if status in (400, 401, 403):
            reason = ", ".join(sorted(reasons))[:80] or f"HTTP {status}"
            return self._api.failed(f"youtube refused the API key: {reason}", kind="auth", permanent=True)
        return self._api.failed(f"youtube answered HTTP {status}", kind="http_other")


def rounding_step(subscribers: int) -> int:
    """The step of a count shown with three significant figures; counts below 1,000 are exact."""
    return 1 if subscribers < 1000 else 10 ** (len(str(subscribers)) - 3)


def next_quota_reset(now: datetime) -> datetime:
    """The next midnight in Pacific time, when the daily quota refills."""
    try:
        pacific: ZoneInfo | timezone = ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        pacific = timezone(timedelta(hours=-8))
    tomorrow = now.astimezone(pacific).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=pacific).astimezone(UTC)


def _channel_id(target: Target) -> str | None:
    if target.platform_id:
        return target.platform_id
    return target.handle if CHANNEL_ID.fullmatch(target.handle) else None


def _gone(channel_id: str | None) -> AccountProblem:
    return AccountProblem(
        AccountState.NOT_FOUND, "youtube no longer lists this channel", permanent=True, platform_id=channel_id
    )


def _custom_url(item: dict[str, Any]) -> str | None:
    snippet = item.get("snippet")
    url = snippet.get("customUrl") if isinstance(snippet, dict) else None
    return url.lower() if isinstance(url, str) else None


@per_account
def _observation(item: dict[str, Any], target: Target) -> FetchResult:
    channel_id = text(item, "id")
    statistics = as_dict(item.get("statistics"), "statistics")
    if statistics.get("hiddenSubscriberCount") is True:
        return AccountProblem(
            AccountState.PROTECTED, "the channel hides its subscriber count", platform_id=channel_id
        )
    subscribers = _string_count(statistics, "subscriberCount")
    if subscribers is None:
        raise ValueError("subscriberCount is missing")
    return Observation(
        platform_id=channel_id,
        handle=_custom_url(item) or target.handle,
        followers=subscribers,
        following=None,
        posts=_string_count(statistics, "videoCount"),
        followers_step=rounding_step(subscribers),
    )


def _string_count(statistics: dict[str, Any], key: str) -> int | None:
    """YouTube sends counts as decimal strings ("1230000")."""
    value = statistics.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 12:
        raise ValueError(f"{key} is not a decimal count: {value!r:.40}")
    return in_range(key, int(value))


def _reasons(body: Any) -> set[str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return set()
    entries = [*(error.get("errors") or []), *(error.get("details") or [])]
    return {
        entry["reason"]
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("reason"), str)
    }
