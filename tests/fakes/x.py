"""X API v2 user lookup: ``/2/users/by`` and ``/2/users``, partial ``errors[]``, ``x-rate-limit-*`` epoch resets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from service.config import SETTINGS, PlatformConfig
from tests.fakes.server import FakeAccount, FakePlatform

PROBLEM_TYPE = "https://api.twitter.com/2/problems/resource-not-found"


class FakeX(FakePlatform):
    platform = "x"

    def settings(self) -> PlatformConfig:
        return SETTINGS["x"](base_url=self.url, bearer_token=SecretStr(self.secret))

    def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.secret}"

    def budget_headers(self, remaining: int, reset_at: datetime) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(self.limit),
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(int(reset_at.timestamp())),
        }

    def rate_limited(self) -> web.Response:
        body = {
            "title": "Too Many Requests",
            "detail": "Too Many Requests",
            "type": "about:blank",
            "status": 429,
        }
        return self.json(body, 429, self.budget_headers(0, self.clock.now() + self.rate_limit_wait))

    def quota(self) -> web.Response:
        body = {
            "title": "UsageCapExceeded",
            "detail": "Usage cap exceeded: Monthly product cap",
            "type": "https://api.twitter.com/2/problems/usage-capped",
            "period": "Monthly",
            "scope": "Product",
        }
        return self.json(body, 403)

    def unauthorized(self) -> web.Response:
        body = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
        return self.json(body, 401)

    async def answer(self, request: web.Request, extra: bool) -> web.Response:
        if request.path == "/2/users/by":
            param, values = "usernames", request.query.get("usernames", "").split(",")
            lookup = self.find
        elif request.path == "/2/users":
            param, values = "ids", request.query.get("ids", "").split(",")
            lookup = self.by_id
        else:
            return self.json({"title": "Not Found"}, 404)
        if "public_metrics" not in request.query.get("user.fields", ""):
            return self.json({"title": "Invalid Request"}, 400)
        data, errors = [], []
        for value in values:
            account = lookup(value)
            if account is None:
                errors.append(
                    _error(param, value, "Not Found Error", f"Could not find user with {param}: [{value}].")
                )
            elif account.suspended:
                errors.append(_error(param, value, "Forbidden", f"User has been suspended: [{value}]."))
            else:
                data.append(_user(account))
        if extra:
            data.append(_user(self.intruder()))
        body: dict[str, Any] = {}
        if data:
            body["data"] = data
        if errors:
            body["errors"] = errors
        return self.json(body)


def _user(account: FakeAccount) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "following_count": account.following,
        "tweet_count": account.posts,
        "listed_count": 3,
    }
    if account.followers is not None:
        metrics["followers_count"] = account.followers
    return {
        "id": account.id,
        "name": account.handle.title(),
        "username": account.handle,
        "public_metrics": metrics,
    }


def _error(param: str, value: str, title: str, detail: str) -> dict[str, str]:
    return {
        "value": value,
        "detail": detail,
        "title": title,
        "resource_type": "user",
        "parameter": param,
        "resource_id": value,
        "type": PROBLEM_TYPE,
    }
