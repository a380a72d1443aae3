"""GitHub: users (``github:torvalds``) and repositories (``github:owner/name``, whose count is their stars).

Users go through REST: ``/users/{login}``, then ``/user/{id}`` once the numeric id is known, so a renamed
user keeps their history. Repositories, with a token, go through GraphQL, 100 to a query (aliases on
``repository(owner:, name:, followRenames: true)``, one point of the 5,000 an hour); a repository GraphQL
does not answer (not found, blocked, or another repository under a known one's old name) is asked once
more through REST, whose status says what became of it. Without a token repositories go through REST
alone, ``/repos/{owner}/{name}`` then ``/repositories/{id}``, at 60 requests an hour shared with users.
A renamed or transferred repository answers REST with a 301 to its new location, followed once and only
on the same server. Over the limit REST answers 403 or 429 with ``x-ratelimit-remaining: 0`` (wait for
``x-ratelimit-reset``) or, for secondary limits, ``retry-after``; GraphQL answers 200 with an error of
type ``RATE_LIMITED`` and the same headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from service.samples import AccountState
from service.sources.base import AccountProblem, FetchResult, Observation, SourceError, Target
from service.sources.fields import as_dict, as_list, count, per_account, required_count, text
from service.sources.platform import (
    NUMERIC_ID,
    Batching,
    Counts,
    Credential,
    Platform,
    RateBudget,
    Subject,
)
from service.sources.ratelimit import Budget, next_batch, parse_reset
from service.sources.results import Part, Results, failed, fetch_each, fetch_parts

if TYPE_CHECKING:
    import httpx

    from service.sources.api import Api
    from service.sources.registry import Wiring

LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")
REPOSITORY = re.compile(r"(?P<owner>[A-Za-z0-9][A-Za-z0-9-]{0,38})/(?P<name>(?!\.\.?$)[A-Za-z0-9._-]{1,100})")
HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
GRAPHQL = "/graphql"
PER_QUERY = 100  # aliases per GraphQL query; scalar fields and one totalCount each cost 1 point per 100
FIELDS = "databaseId nameWithOwner stargazerCount forkCount watchers { totalCount }"
REDIRECTS = frozenset({301, 302, 307, 308})
HOUR = timedelta(hours=1)


def build(wiring: Wiring) -> GithubSource:
    graphql = wiring.api() if wiring.credential("token") else None  # GraphQL needs a token
    return GithubSource(wiring.api(), graphql)


def _headers(credentials: Mapping[str, str]) -> dict[str, str]:
    token = credentials.get("token")
    return {**HEADERS, **({"Authorization": f"Bearer {token}"} if token else {})}


def is_repository(handle: str) -> bool:
    return "/" in handle


PLATFORM = Platform(
    name="github",
    title="GitHub",
    base_url="https://api.github.com",
    subjects=(
        Subject(
            kind="repository",
            handle=REPOSITORY,
            help="a GitHub repository is owner/name, e.g. github:octo-org/hello",
            platform_id=NUMERIC_ID,
            states=frozenset({AccountState.NOT_FOUND, AccountState.SUSPENDED}),
            counts=Counts("stars", "watchers", "forks"),
            batching=Batching(per_request=PER_QUERY, budget="graphql"),
            anonymous=Batching(per_request=1),
            claims=is_repository,
        ),
        Subject(
            platform_id=NUMERIC_ID,
            states=frozenset({AccountState.NOT_FOUND}),  # suspended users answer 404 like unknown ones
            counts=Counts(posts="public repositories"),
        ),
    ),
    credentials=(Credential("token", "a personal access token", required=False),),
    headers=_headers,
    budgets={"": RateBudget(5000, HOUR), "graphql": RateBudget(5000, HOUR)},
    anonymous_budgets={"": RateBudget(60, HOUR)},
    rate_headers=("x-ratelimit-",),
    batch_size=PER_QUERY,
    build=build,
)


class GithubSource:
    platform = PLATFORM.name
    batch_size = PLATFORM.batch_size

    def __init__(self, rest: Api, graphql: Api | None = None) -> None:
        self._rest = rest
        self._graphql = graphql

    async def fetch(self, targets: Sequence[Target]) -> Mapping[Target, FetchResult]:
        batch = next_batch()
        users = [t for t in targets if not is_repository(t.handle)]
        repositories = [t for t in targets if is_repository(t.handle)]
        parts: list[Part] = []
        if users:
            parts.append((users, lambda: fetch_each(users, lambda t: self._user(t, batch), concurrency=4)))
        if repositories:
            parts.append((repositories, lambda: self._repositories(repositories, batch)))
        return await fetch_parts(parts)

    async def aclose(self) -> None:
        await self._rest.aclose()

    # --- users -------------------------------------------------------------------------------------------
    async def _user(self, target: Target, batch: int) -> FetchResult:
        path = _path(target, "/user/{}", "/users/{}", LOGIN)
        if path is None:
            return AccountProblem(AccountState.NOT_FOUND, "not a valid GitHub login", permanent=True)
        response, body = await self._rest.get(path, batch=batch)
        if response.status_code == 404:
            self._rest.succeeded(batch)  # an unknown user is an answer, not a failure of GitHub
            return _unknown("user", target)
        if response.status_code != 200:
            raise _refused(self._rest, response, body)
        return parse_user(body, target)

    # --- repositories ------------------------------------------------------------------------------------
    async def _repositories(self, targets: Sequence[Target], batch: int) -> Results:
        """GraphQL for all when there is a token, then REST for those it did not answer."""
        results: Results = {}
        if self._graphql is not None:
            for start in range(0, len(targets), PER_QUERY):
                results.update(await self._query(self._graphql, targets[start : start + PER_QUERY], batch))
        rest = [t for t in targets if t not in results]
        try:
            results.update(await fetch_each(rest, lambda t: self._repository(t, batch), concurrency=4))
        except SourceError as exc:
            if len(rest) == len(targets):
                raise
            results.update((t, failed(exc)) for t in rest)  # GraphQL's answers still count
        return results

    async def _query(self, api: Api, targets: Sequence[Target], batch: int) -> Results:
        """The repositories one GraphQL query answers; a target it does not answer is left out."""
        response, body = await api.post(GRAPHQL, graphql_query(targets), batch=batch)
        if response.status_code != 200:
            raise _refused(api, response, body)
        data = _data(api, response, body)
        if "x-ratelimit-remaining" not in response.headers:
            api.gate.record(_points(data.get("rateLimit"), api.gate.now()))
        results: Results = {}
        for i, target in enumerate(targets):
            node = data.get(f"r{i}")
            seen = parse_repository(node, target, renamed=True) if isinstance(node, dict) else None
            if seen is not None and not _another(seen, target):
                results[target] = seen
        return results

    async def _repository(self, target: Target, batch: int) -> FetchResult:
        path = _path(target, "/repositories/{}", "/repos/{}", REPOSITORY)
        if path is None:
            return AccountProblem(AccountState.NOT_FOUND, "not a valid GitHub repository", permanent=True)
        response, body = await self._rest.get(path, batch=batch)
        renamed = response.status_code in REDIRECTS
        if renamed:
            location = self._rest.path_of(response.headers.get("location", ""), response)
            if location is None:
                return AccountProblem(AccountState.ERRORING, "github redirected elsewhere", kind="http_other")
            response, body = await self._rest.get(location, batch=batch)
        return self._repository_answer(response, body, target, renamed, batch)

    def _repository_answer(
        self, response: httpx.Response, body: Any, target: Target, renamed: bool, batch: int
    ) -> FetchResult:
        status = response.status_code
        if status == 200:
            return parse_repository(body, target, renamed=renamed)
        blocked = _message(body) == "Repository access blocked"
        if status in (404, 451) or (status == 403 and blocked):
            self._rest.succeeded(batch)  # an answer about one repository: GitHub itself is fine
            return _blocked(body, target) if status != 404 else _unknown("repository", target)
        raise _refused(self._rest, response, body)


def _path(target: Target, by_id: str, by_name: str, name: re.Pattern[str]) -> str | None:
    """REST by the stable id once known, else by a name GitHub can have; None for a name it cannot."""
    if target.platform_id:
        return by_id.format(target.platform_id)
    return by_name.format(target.handle) if name.fullmatch(target.handle) else None


def _another(seen: FetchResult, target: Target) -> bool:
    """Another repository now answers to a known one's old name (GraphQL follows names, not ids)."""
    return isinstance(seen, Observation) and target.platform_id not in (None, seen.platform_id)


def graphql_query(targets: Sequence[Target]) -> dict[str, Any]:
    """One query for ``targets``: alias ``r<i>`` for the i-th, owner and name passed as variables."""
    declared = ", ".join(f"$o{i}: String!, $n{i}: String!" for i in range(len(targets)))
    aliases = " ".join(
        f"r{i}: repository(owner: $o{i}, name: $n{i}, followRenames: true) {{ {FIELDS} }}"
        for i in range(len(targets))
    )
    variables: dict[str, str] = {}
    for i, target in enumerate(targets):
        variables[f"o{i}"], _, variables[f"n{i}"] = target.handle.partition("/")
    query = f"query({declared}) {{ {aliases} rateLimit {{ limit cost remaining resetAt }} }}"
    return {"query": query, "variables": variables}


def _data(api: Api, response: httpx.Response, body: Any) -> dict[str, Any]:
    """The ``data`` of a GraphQL answer; an answer without it (rate limited, refused) fails as a whole."""
    try:
        envelope = as_dict(body, "the answer")
        errors = [e for e in as_list(envelope.get("errors") or [], "errors") if isinstance(e, dict)]
    except ValueError as exc:
        raise api.failed(f"github: unexpected answer: {exc}", kind="invalid_response") from None
    if any(e.get("type") == "RATE_LIMITED" for e in errors):
        reset = parse_reset(response.headers.get("x-ratelimit-reset"), api.gate.now())
        raise api.failed(
            "github rate limit: the GraphQL points are spent", kind="rate_limited", retry_at=reset
        )
    data = envelope.get("data")
    if not isinstance(data, dict):
        detail = next((str(e.get("message"))[:120] for e in errors), "no data")
        raise api.failed(f"github GraphQL failed: {detail}", kind="invalid_response")
    return data


def _points(rate_limit: Any, now: datetime) -> Budget:
    """GraphQL's own ``rateLimit`` report, for when the headers are missing."""
    if not isinstance(rate_limit, dict):
        return Budget(None, None, None)
    limit, remaining = rate_limit.get("limit"), rate_limit.get("remaining")
    reset_at = rate_limit.get("resetAt")
    return Budget(
        limit if isinstance(limit, int) and not isinstance(limit, bool) else None,
        remaining if isinstance(remaining, int) and not isinstance(remaining, bool) else None,
        parse_reset(reset_at, now) if isinstance(reset_at, str) else None,
    )


def _refused(api: Api, response: httpx.Response, body: Any) -> SourceError:
    status = response.status_code
    detail = (_message(body) or f"HTTP {status}")[:120]
    if status in (403, 429) and _rate_limited(response, detail):
        reset = parse_reset(response.headers.get("x-ratelimit-reset"), api.gate.now())
        spent = response.headers.get("x-ratelimit-remaining") == "0"
        return api.failed(
            f"github rate limit: {detail}", kind="rate_limited", retry_at=reset if spent else None
        )
    if status in (401, 403):
        return api.failed(f"github refused the token: {detail}", kind="auth", permanent=True)
    return api.failed(f"github answered HTTP {status}: {detail}", kind="http_other")


def _rate_limited(response: httpx.Response, detail: str) -> bool:
    return (
        response.headers.get("x-ratelimit-remaining") == "0"
        or "retry-after" in response.headers
        or "rate limit" in detail.lower()
    )


def _message(body: Any) -> str | None:
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else None


def _unknown(what: str, target: Target) -> AccountProblem:
    return AccountProblem(
        AccountState.NOT_FOUND,
        f"github does not know this {what}",
        permanent=True,
        platform_id=target.platform_id,
    )


def _blocked(body: Any, target: Target) -> AccountProblem:
    """A repository GitHub blocks: 451 for legal reasons (a DMCA takedown), 403 for its terms of service."""
    block = body.get("block") if isinstance(body, dict) else None
    reason = block.get("reason") if isinstance(block, dict) else None
    why = f" ({reason[:40]})" if isinstance(reason, str) else ""
    return AccountProblem(
        AccountState.SUSPENDED,
        f"github blocks this repository{why}",
        permanent=True,
        platform_id=target.platform_id,
    )


@per_account
def parse_user(body: Any, target: Target) -> FetchResult:
    user = as_dict(body, "the answer")
    user_id, login = user.get("id"), text(user, "login")
    if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
        raise ValueError("id is missing or not a number")
    if str(user_id) != (target.platform_id or str(user_id)) or (
        not target.platform_id and login.lower() != target.handle.lower()
    ):
        raise ValueError("the answer is about a different user")
    return Observation(
        platform_id=str(user_id),
        handle=login,
        followers=required_count(user, "followers"),
        following=count(user, "following", required=False),
        posts=count(user, "public_repos", required=False),
    )


@per_account
def parse_repository(body: Any, target: Target, *, renamed: bool) -> FetchResult:
    """A repository from REST (``id``, ``full_name``, ``stargazers_count`` …) or GraphQL (``databaseId``,
    ``nameWithOwner``, ``stargazerCount`` …). Its name may differ from the one asked only after a rename."""
    repository = as_dict(body, "the answer")
    graphql = "databaseId" in repository
    repository_id = repository.get("databaseId" if graphql else "id")
    name = text(repository, "nameWithOwner" if graphql else "full_name")
    if isinstance(repository_id, bool) or not isinstance(repository_id, int) or repository_id <= 0:
        raise ValueError("id is missing or not a number")
    if target.platform_id and str(repository_id) != target.platform_id and not graphql:
        raise ValueError("the answer is about a different repository")
    if not target.platform_id and not renamed and name.lower() != target.handle.lower():
        raise ValueError("the answer is about a different repository")
    return Observation(
        platform_id=str(repository_id),
        handle=name,
        followers=required_count(repository, "stargazerCount" if graphql else "stargazers_count"),
        following=_watchers(repository)
        if graphql
        else count(repository, "subscribers_count", required=False),
        posts=count(repository, "forkCount" if graphql else "forks_count", required=False),
    )


def _watchers(repository: dict[str, Any]) -> int | None:
    watchers = repository.get("watchers")
    return count(watchers, "totalCount", required=False) if isinstance(watchers, dict) else None
