"""YouTube Data API v3 ``channels.list``: ids (50) or one ``forHandle``, counts as rounded decimal strings,
``hiddenSubscriberCount``, the key in ``X-Goog-Api-Key``, 403 ``quotaExceeded`` and 429 with ``Retry-After``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from service.config import SETTINGS, PlatformConfig
from service.samples import AccountState
from tests.fakes.server import FakeAccount, FakePlatform

CHANNELS = "/youtube/v3/channels"


class FakeYoutube(FakePlatform):
    platform = "youtube"
    suspended_state = AccountState.NOT_FOUND  # terminated channels are silently left out

    def settings(self) -> PlatformConfig:
        return SETTINGS["youtube"](base_url=self.url, api_key=SecretStr(self.secret))

    def new_id(self) -> str:
        return "UC" + super().new_id().rjust(22, "x")

    def written(self, handle: str) -> str:
        return f"@{handle}"

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("X-Goog-Api-Key") == self.secret

    def expected_followers(self, account: FakeAccount) -> int:
        return rounded(int(account.followers))

    def budget_headers(self, remaining: int, reset_at: datetime) -> dict[str, str]:
        return {}  # the Data API announces no budget; its quota is daily

    def rate_limited(self) -> web.Response:
        seconds = str(int(self.rate_limit_wait.total_seconds()))
        return self.json(_error(429, "rateLimitExceeded", "Too many requests"), 429, {"Retry-After": seconds})

    def quota(self) -> web.Response:
        return self.json(
            _error(
                403, "quotaExceeded", "The request cannot be completed because you have exceeded your quota."
            ),
            403,
        )

    def unauthorized(self) -> web.Response:
        body = _error(400, "badRequest", "API key not valid. Please pass a valid API key.")
        body["error"]["details"] = [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        ]
        return self.json(body, 400)

    async def answer(self, request: web.Request, extra: bool) -> web.Response:
        if request.path != CHANNELS or "statistics" not in request.query.get("part", ""):
            return self.json(_error(400, "invalidPart", "bad part"), 400)
        if "forHandle" in request.query:
            account = self.find(request.query["forHandle"].lstrip("@"))
            found = [account] if account is not None else []
        else:
            ids = request.query.get("id", "").split(",")
            if len(ids) > 50:
                return self.json(_error(400, "invalidFilters", "too many ids"), 400)
            found = [self.by_id(channel_id) for channel_id in ids]
        items = [_channel(a) for a in found if a is not None and not a.suspended]
        if extra:
            items.append(_channel(self.intruder()))
        body: dict[str, Any] = {
            "kind": "youtube#channelListResponse",
            "etag": "e",
            "pageInfo": {"totalResults": len(items), "resultsPerPage": 5},
        }
        if items:
            body["items"] = items
        return self.json(body)


def rounded(count: int) -> int:
    """Three significant figures, rounded down, as the public API shows subscriber counts."""
    if count < 1000:
        return count
    step = 10 ** (len(str(count)) - 3)
    return count // step * step


def _channel(account: FakeAccount) -> dict[str, Any]:
    statistics: dict[str, Any] = {
        "viewCount": "123456",
        "hiddenSubscriberCount": account.hidden,
        "videoCount": str(account.posts),
    }
    followers = account.followers
    if followers is not None and not account.hidden:
        statistics["subscriberCount"] = str(
            rounded(followers) if isinstance(followers, int) and followers > 0 else followers
        )
    return {
        "kind": "youtube#channel",
        "etag": "e",
        "id": account.id,
        "snippet": {"title": account.handle.title(), "customUrl": f"@{account.handle.lower()}"},
        "statistics": statistics,
    }


def _error(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [
                {
                    "message": message,
                    "domain": "youtube.quota" if reason == "quotaExceeded" else "global",
                    "reason": reason,
                }
            ],
        }
    }
