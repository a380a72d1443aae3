"""GitHub repositories: batched GraphQL with a token, REST without one, and a repository's identity
through renames, transfers, a name taken over, and blocks."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp import web

from service.samples import AccountState
from service.sources.base import Target
from service.sources.platforms.github import graphql_query
from tests.fakes.server import Fault
from tests.sources.world import World, observation, open_world, problem


def paths(world: World) -> list[str]:
    return [f"{'POST' if r.body is not None else 'GET'} {r.path}" for r in world.fake.requests]


async def test_with_a_token_a_hundred_repositories_are_one_graphql_query() -> None:
    async with open_world("github-repositories") as world:
        repositories = [world.fake.add(f"repo{i}", i, following=i % 7, posts=i % 5) for i in range(100)]
        targets = [world.fake.target(r) for r in repositories]

        answer = await world.fetch(*targets)

        seen = [observation(answer, t) for t in targets]
        assert [(s.followers, s.following, s.posts) for s in seen] == [(i, i % 7, i % 5) for i in range(100)]
        assert paths(world) == ["POST /graphql"]
        variables = world.fake.requests[0].body["variables"]
        assert (variables["o0"], variables["n0"]) == ("repo0-org", "repo0")


async def test_without_a_token_each_repository_is_one_rest_request() -> None:
    async with open_world("github-repositories-rest") as world:
        alice = world.fake.add("alice", 10, following=2, posts=3)
        target = world.fake.target(alice)

        first = observation(await world.fetch(target), target)
        known = world.fake.target(alice, known_id=True)
        second = observation(await world.fetch(known), known)

        assert (first.followers, first.following, first.posts) == (10, 2, 3)  # stars, watchers, forks
        assert second.platform_id == alice.id
        assert paths(world) == ["GET /repos/alice-org/alice", f"GET /repositories/{alice.id}"]
        assert "Authorization" not in world.fake.requests[0].headers


async def test_a_renamed_repository_is_followed_through_its_redirect_without_a_token() -> None:
    async with open_world("github-repositories-rest") as world:
        alice = world.fake.add("alice", 10)
        world.fake.rename(alice, "alicia")
        target = world.fake.target("alice")  # the old name, as the watchlist still spells it

        seen = observation(await world.fetch(target), target)

        assert (seen.platform_id, seen.handle) == (alice.id, "alicia-org/alicia")
        assert paths(world) == ["GET /repos/alice-org/alice", f"GET /repositories/{alice.id}"]


async def test_graphql_follows_a_renamed_repository_by_its_old_name() -> None:
    async with open_world("github-repositories") as world:
        alice = world.fake.add("alice", 10)
        world.fake.rename(alice, "alicia")
        target = world.fake.target("alice")

        seen = observation(await world.fetch(target), target)

        assert (seen.platform_id, seen.handle) == (alice.id, "alicia-org/alicia")
        assert "followRenames: true" in world.fake.requests[0].body["query"]


async def test_a_name_taken_over_by_another_repository_is_followed_by_id() -> None:
    async with open_world("github-repositories") as world:
        alice = world.fake.add("alice", 10)
        target = world.fake.target(alice, known_id=True)
        world.fake.rename(alice, "alicia")
        impostor = world.fake.add("alice", 99_999)  # a new repository under the old name

        seen = observation(await world.fetch(target), target)

        assert (seen.platform_id, seen.followers, seen.handle) == (alice.id, 10, "alicia-org/alicia")
        assert impostor.id != alice.id
        assert paths(world) == ["POST /graphql", f"GET /repositories/{alice.id}"]


async def test_a_repository_graphql_cannot_give_is_asked_of_rest_once() -> None:
    async with open_world("github-repositories") as world:
        alice, gone = world.fake.add("alice", 10), world.fake.target("gone")
        blocked = world.fake.add("blocked", 10, suspended=True)
        targets = [world.fake.target(alice), gone, world.fake.target(blocked)]

        answer = await world.fetch(*targets)

        assert observation(answer, targets[0]).followers == 10
        assert problem(answer, gone).state is AccountState.NOT_FOUND and problem(answer, gone).permanent
        suspended = problem(answer, targets[2])
        assert (suspended.state, suspended.permanent) == (AccountState.SUSPENDED, True)
        assert "dmca" in suspended.message
        assert sorted(paths(world)) == [
            "GET /repos/blocked-org/blocked",
            "GET /repos/gone-org/gone",
            "POST /graphql",
        ]


async def test_a_repository_blocked_for_its_terms_of_service_is_suspended() -> None:
    async with open_world("github-repositories-rest") as world:
        target = world.fake.target("abuse")

        async def blocked(request: web.Request, extra: bool) -> web.Response:
            body = {"message": "Repository access blocked", "block": {"reason": "tos"}}
            return world.fake.json(body, 403)

        world.fake.answer = blocked  # type: ignore[method-assign]
        result = problem(await world.fetch(target), target)

        assert (result.state, result.permanent, result.message) == (
            AccountState.SUSPENDED,
            True,
            "github blocks this repository (tos)",
        )


async def test_a_redirect_to_another_server_is_not_followed() -> None:
    async with open_world("github-repositories-rest") as world:
        target = world.fake.target("alice")

        async def elsewhere(request: web.Request, extra: bool) -> web.Response:
            headers = {"Location": "http://169.254.169.254/repositories/1"}
            return world.fake.json({"message": "Moved Permanently"}, 301, headers)

        world.fake.answer = elsewhere  # type: ignore[method-assign]
        result = problem(await world.fetch(target), target)

        assert result.state is AccountState.ERRORING
        assert len(world.fake.requests) == 1


async def test_the_graphql_rate_limit_report_counts_when_the_headers_are_missing() -> None:
    async with open_world("github-repositories") as world:
        alice = world.fake.add("alice", 10)
        target = world.fake.target(alice)
        reset = world.clock.now() + timedelta(minutes=10)
        real = world.fake.answer

        async def headerless(request: web.Request, extra: bool) -> web.Response:
            body: dict[str, Any] = json.loads((await real(request, extra)).text or "{}")
            body["data"]["rateLimit"] = {
                "limit": 5000,
                "cost": 1,
                "remaining": 0,
                "resetAt": reset.isoformat(),
            }
            return world.fake.json(body)

        world.fake.answer = headerless  # type: ignore[method-assign]
        world.fake.budget_headers = lambda remaining, reset_at: {}  # type: ignore[method-assign]
        assert observation(await world.fetch(target), target).followers == 10
        asked = len(world.fake.requests)

        refused = await world.fetch(target)
        assert len(world.fake.requests) == asked and not isinstance(refused, dict)
        world.clock.set(reset)
        assert observation(await world.fetch(target), target).followers == 10


async def test_repositories_keep_their_answers_when_the_users_requests_fail() -> None:
    async with open_world("github-repositories") as world:
        repository = world.fake.target(world.fake.add("hello", 5))
        user = Target("torvalds")
        world.fake.fail_next(Fault.SERVER_ERROR)  # users are asked first, through REST

        answer = await world.fetch(repository, user)

        assert problem(answer, user).kind == "http_5xx"
        assert observation(answer, repository).followers == 5


def test_owners_and_names_travel_as_variables_never_inside_the_query() -> None:
    payload = graphql_query([Target('o/n"){x}'), Target("octo-org/hello")])
    assert '"' not in payload["query"]
    assert payload["variables"] == {"o0": "o", "n0": 'n"){x}', "o1": "octo-org", "n1": "hello"}
