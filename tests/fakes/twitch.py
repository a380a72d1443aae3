"""Twitch Helix: ``/helix/users`` (100 logins or ids) and ``/helix/channels/followers`` (``total``),
``Client-Id`` plus bearer token, ``Ratelimit-*`` headers with an epoch reset."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from service.config import SETTINGS, PlatformConfig
from service.samples import AccountState
from tests.fakes.server import FakeAccount, FakePlatform

CLIENT_ID = "fakeclientid0123"


class FakeTwitch(FakePlatform):
    platform = "twitch"
    suspended_state = AccountState.NOT_FOUND  # banned users are left out of /helix/users
    limit = 800

    def settings(self) -> PlatformConfig:
        return SETTINGS["twitch"](base_url=self.url, client_id=CLIENT_ID, token=SecretStr(self.secret))

    def authorized(self, request: web.Request) -> bool:
        return (
            request.headers.get("Client-Id") == CLIENT_ID
            and request.headers.get("Authorization") == f"Bearer {self.secret}"
        )

    def budget_headers(self, remaining: int, reset_at: datetime) -> dict[str, str]:
        return {
            "Ratelimit-Limit": str(self.limit),
            "Ratelimit-Remaining": str(remaining),
            "Ratelimit-Reset": str(int(reset_at.timestamp())),
        }

    def rate_limited(self) -> web.Response:
        headers = self.budget_headers(0, self.clock.now() + self.rate_limit_wait)
        return self.json(
            {"error": "Too Many Requests", "status": 429, "message": "Too Many Requests"}, 429, headers
        )

    def unauthorized(self) -> web.Response:
        return self.json({"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"}, 401)

    async def answer(self, request: web.Request, extra: bool) -> web.Response:
        if request.path == "/helix/users":
            wanted = [self.by_id(i) for i in request.query.getall("id", [])]
            wanted += [self.find(login) for login in request.query.getall("login", [])]
            if len(wanted) > 100:
                return self.json({"error": "Bad Request", "status": 400, "message": "too many"}, 400)
            users = [_user(a) for a in wanted if a is not None and not a.suspended]
            if extra:
                users.append(_user(self.intruder()))
            return self.json({"data": users})
        if request.path == "/helix/channels/followers":
            account = self.by_id(request.query.get("broadcaster_id", ""))
            if account is None:
                return self.json(
                    {"error": "Bad Request", "status": 400, "message": "invalid broadcaster"}, 400
                )
            body: dict[str, Any] = {"data": [], "pagination": {}}
            if account.followers is not None:
                body["total"] = account.followers
            return self.json(body)
        return self.json({"error": "Not Found", "status": 404, "message": ""}, 404)


def _user(account: FakeAccount) -> dict[str, Any]:
    return {
        "id": account.id,
        "login": account.handle.lower(),
        "display_name": account.handle,
        "type": "",
        "broadcaster_type": "",
        "description": "",
        "created_at": "2016-12-14T20:32:28Z",
    }
