"""Mastodon: ``/api/v1/accounts/lookup`` and ``/api/v1/accounts/:id``, ``X-RateLimit-Reset`` as ISO 8601."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from service.config import SETTINGS, PlatformConfig
from tests.fakes.server import FakeAccount, FakePlatform

DOMAIN = "example.social"


class FakeMastodon(FakePlatform):
    platform = "mastodon"
    per_account = True

    def settings(self) -> PlatformConfig:
        return SETTINGS["mastodon"](base_url=self.url, token=SecretStr(self.secret))

    def written(self, handle: str) -> str:
        return f"{handle}@{DOMAIN}"

    def budget_headers(self, remaining: int, reset_at: datetime) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": reset_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }

    def unauthorized(self) -> web.Response:
        return self.json({"error": "This API requires an authenticated user"}, 401)

    async def answer(self, request: web.Request, extra: bool) -> web.Response:
        if request.path == "/api/v1/accounts/lookup":
            user, _, domain = request.query.get("acct", "").partition("@")
            account = self.find(user) if domain in ("", DOMAIN) else None
        elif request.path.startswith("/api/v1/accounts/"):
            account = self.by_id(request.path.rsplit("/", 1)[1])
        else:
            return self.json({"error": "Not found"}, 404)
        if account is None:
            return self.json({"error": "Record not found"}, 404)
        return self.json(_account(self.intruder() if extra else account))


def _account(account: FakeAccount) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": account.id,
        "username": account.handle,
        "acct": account.handle,  # local accounts are written without the domain at their home instance
        "display_name": account.handle.title(),
        "locked": False,
        "bot": False,
        "following_count": account.following,
        "statuses_count": account.posts,
    }
    if account.followers is not None:
        body["followers_count"] = account.followers
    if account.suspended:
        body.update(suspended=True, followers_count=0, following_count=0, statuses_count=0)
    return body
