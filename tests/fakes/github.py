"""GitHub: users through REST (``/users/{login}``, ``/user/{id}``) and repositories through REST
(``/repos/{owner}/{name}``, ``/repositories/{id}``, 301 after a rename, 451 when blocked) and GraphQL
(``POST /graphql``: aliased ``repository(owner:, name:)`` lookups with variables, ``null`` plus an error
with ``type`` and ``path`` for a repository it cannot give, ``RATE_LIMITED`` with HTTP 200). Rate-limit
headers are ``x-ratelimit-*`` with epoch resets; REST over the limit is 403/429 with remaining 0."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, ClassVar

from aiohttp import web
from pydantic import SecretStr

from service.config import SETTINGS, PlatformConfig
from service.samples import AccountState
from tests.fakes.server import FakeAccount, FakePlatform

DOCS = "https://docs.github.com/rest"
ALIAS = re.compile(r"(\w+): repository\(owner: \$(\w+), name: \$(\w+)(?:, followRenames: (true|false))?\)")


class FakeGithub(FakePlatform):
    platform = "github"
    suspended_state = AccountState.NOT_FOUND  # suspended users answer 404 to the public
    per_account = True
    string_ids = False
    limit = 5000

    def settings(self) -> PlatformConfig:
        return SETTINGS["github"](base_url=self.url, token=SecretStr(self.secret))

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
            return not_found()
        if account is None or account.suspended:
            return not_found()
        return self.json(_user(self.intruder() if extra else account))


class FakeGithubRepositories(FakeGithub):
    """Repositories, asked through GraphQL (a token is set) with REST for what GraphQL cannot say."""

    case = "github-repositories"
    suspended_state = AccountState.SUSPENDED  # 451: blocked for legal reasons
    per_account = False
    token: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.former: dict[str, FakeAccount] = {}  # old names, answered with a redirect

    def settings(self) -> PlatformConfig:
        token = {"token": SecretStr(self.secret)} if self.token else {}
        return SETTINGS["github"](base_url=self.url, **token)

    def stored_handle(self, name: str) -> str:
        return name if "/" in name else f"{name}-org/{name}"

    def written(self, handle: str) -> str:
        return self.stored_handle(handle)

    def rename(self, account: FakeAccount, new_name: str) -> None:
        self.former[account.handle.lower()] = account
        super().rename(account, new_name)

    def intruder(self) -> FakeAccount:
        return FakeAccount(id=self.new_id(), handle="intruder-org/intruder", followers=666_000)

    def rate_limited(self) -> web.Response:
        if not self.token:
            return super().rate_limited()
        headers = {
            **self.budget_headers(0, self.clock.now() + self.rate_limit_wait),
            "x-ratelimit-resource": "graphql",
        }
        message = "API rate limit already exceeded for user ID 1."
        return self.json(
            {"data": None, "errors": [{"type": "RATE_LIMITED", "message": message}]}, 200, headers
        )

    def quota(self) -> web.Response:
        return self.rate_limited() if self.token else super().quota()

    async def answer(self, request: web.Request, extra: bool) -> web.Response:
        if request.path == "/graphql":
            return self._graphql(await request.json(), request, extra)
        owner_name = request.path.removeprefix("/repos/")
        if owner_name != request.path:
            return self._by_name(owner_name, extra)
        if request.path.startswith("/repositories/"):
            return self._rest(self.by_id(request.path.rpartition("/")[2]), extra)
        return not_found()

    def _by_name(self, name: str, extra: bool) -> web.Response:
        moved = self.former.get(name.lower())
        if self.find(name) is None and moved is not None:
            location = f"{self.url}/repositories/{moved.id}"
            body = {"message": "Moved Permanently", "url": location, "documentation_url": DOCS}
            return self.json(body, 301, {"Location": location})
        return self._rest(self.find(name), extra)

    def _rest(self, account: FakeAccount | None, extra: bool) -> web.Response:
        if account is None:
            return not_found()
        if account.suspended:
            block = {"reason": "dmca", "created_at": "2026-01-01T00:00:00Z", "html_url": DOCS}
            return self.json({"message": "Repository access blocked", "block": block}, 451)
        return self.json(_repository(self.intruder() if extra else account))

    def _graphql(self, payload: Any, request: web.Request, extra: bool) -> web.Response:
        if "Authorization" not in request.headers:
            return self.json({"message": "This endpoint requires you to be authenticated."}, 401)
        query, variables = payload["query"], payload["variables"]
        data: dict[str, Any] = {"rateLimit": {"limit": self.limit, "cost": 1, "remaining": self.remaining}}
        errors: list[dict[str, Any]] = []
        for alias, owner, name, follow in ALIAS.findall(query):
            asked = f"{variables[owner]}/{variables[name]}"
            account = self.find(asked) or (self.former.get(asked.lower()) if follow != "false" else None)
            data[alias] = _graphql_repository(account) if account and not account.suspended else None
            if data[alias] is None:
                errors.append(_graphql_error(alias, asked, blocked=account is not None))
        if extra:
            data["r999"] = _graphql_repository(self.intruder())
        return self.json({"data": data, **({"errors": errors} if errors else {})})


class FakeGithubRepositoriesRest(FakeGithubRepositories):
    """Repositories without a token: REST alone, one repository per request."""

    case = "github-repositories-rest"
    per_account = True
    token = False


def not_found() -> web.Response:
    return FakePlatform.json({"message": "Not Found", "documentation_url": DOCS, "status": "404"}, 404)


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


def _repository(account: FakeAccount) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": int(account.id),
        "node_id": f"R_fake{account.id}",
        "name": account.handle.partition("/")[2],
        "full_name": account.handle,
        "private": False,
        "watchers_count": account.followers,  # the star count, under its historical name
        "subscribers_count": account.following,
        "forks_count": account.posts,
    }
    if account.followers is not None:
        body["stargazers_count"] = account.followers
    return body


def _graphql_repository(account: FakeAccount) -> dict[str, Any]:
    body: dict[str, Any] = {
        "databaseId": int(account.id),
        "nameWithOwner": account.handle,
        "forkCount": account.posts,
        "watchers": {"totalCount": account.following},
    }
    if account.followers is not None:
        body["stargazerCount"] = account.followers
    return body


def _graphql_error(alias: str, asked: str, *, blocked: bool) -> dict[str, Any]:
    # A blocked repository's GraphQL answer is not documented; FORBIDDEN is this fake's guess.
    kind, message = (
        ("FORBIDDEN", "Repository access blocked")
        if blocked
        else ("NOT_FOUND", f"Could not resolve to a Repository with the name '{asked}'.")
    )
    return {"type": kind, "path": [alias], "locations": [{"line": 1, "column": 1}], "message": message}
