"""GitHub REST: ``/users/{login}`` and ``/user/{id}``, ``x-ratelimit-*`` epoch headers, 403/429 with
``x-ratelimit-remaining: 0`` when the primary limit is spent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from service.config import GithubConfig, PlatformConfig
from service.samples import AccountState
from tests.fakes.server import FakeAccount, FakePlatform

DOCS = "https://docs.github.com/rest"


class FakeGithub(FakePlatform):
    platform = "github"
    suspended_state = AccountState.NOT_FOUND  # suspended users answer 404 to the public
    per_account = True
    limit = 5000

    def settings(self) -> PlatformConfig:
        return GithubConfig(base_url=self.url, token=SecretStr(self.secret))

    def authorized(self, request: web.Request) -> bool:
        given = request.headers.get("Authorization")
        return given is None or given == f"Bearer {self.secret}"

    def budget_headers(self, remaining: int, reset_at: datetime) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-used": str(self.limit - remaining),
            "x-ratelimit-reset": str(int(reset_at.timestamp())),
            "x-ratelimit-resource": "core",
        }

    def rate_limited(self) -> web.Response:
        headers = self.budget_headers(0, self.clock.now() + self.rate_limit_wait)
        return self.json(
            {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS}, 429, headers
        )

    def quota(self) -> web.Response:
        headers = self.budget_headers(0, self.clock.now() + self.rate_limit_wait)
        return self.json(
            {"message": "API rate limit exceeded for 127.0.0.1.", "documentation_url": DOCS}, 403, headers
        )

    def unauthorized(self) -> web.Response:
        return self.json({"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}, 401)

    async def answer(self, request: web.Request, extra: bool) -> web.Response:
        prefix, _, key = request.path.rpartition("/")
        if prefix == "/users":
            account = self.find(key)
        elif prefix == "/user":
            account = self.by_id(key)
        else:
            return self.json({"message": "Not Found", "documentation_url": DOCS}, 404)
        if account is None or account.suspended:
            return self.json({"message": "Not Found", "documentation_url": DOCS, "status": "404"}, 404)
        return self.json(_user(self.intruder() if extra else account))


def _user(account: FakeAccount) -> dict[str, Any]:
    body: dict[str, Any] = {
        "login": account.handle,
        "id": int(account.id),
        "type": "User",
        "site_admin": False,
        "public_repos": account.posts,
        "following": account.following,
    }
    if account.followers is not None:
        body["followers"] = account.followers
    return body
