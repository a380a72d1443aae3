"""Hostile answers from every platform's fake (issue 11): each stays the problem of the account or the
request it came with. ``fetch`` raises nothing but ``SourceError``, and what it returns fits the database."""

from __future__ import annotations

import asyncio

import pytest

from service.samples import AccountState
from service.sources.base import AccountProblem, Observation, SourceError, Target
from service.sources.fields import MAX_TEXT, storable
from service.sources.ratelimit import BACKOFF_CAP
from tests.fakes.server import METADATA_URL, Fault
from tests.sources.world import World, failure_kind, observation, problem

HOSTILE_HANDLES = {
    "300 characters": "a" * 300,
    "NUL": "ali\x00ce",
    "lone surrogate": "ali\ud800ce",
    "newline": "ali\nce",
}


def fits_the_database(result: object) -> bool:
    if isinstance(result, Observation):
        return storable(result.handle, 255) and storable(result.platform_id, 255)
    assert isinstance(result, AccountProblem)
    return len(result.message) <= MAX_TEXT and (result.message == "" or storable(result.message, MAX_TEXT))


async def learnt(world: World, *names: str) -> list[Target]:
    """Targets for new accounts, with the ids a first poll learnt."""
    accounts = [world.fake.add(name, 100 + i) for i, name in enumerate(names)]
    answer = await world.fetch(*(world.fake.target(a) for a in accounts))
    assert all(observation(answer, world.fake.target(a)).platform_id == a.id for a in accounts)
    return [world.fake.target(a, known_id=True) for a in accounts]


@pytest.mark.parametrize("handle", HOSTILE_HANDLES.values(), ids=HOSTILE_HANDLES.keys())
async def test_a_handle_the_database_cannot_hold_is_that_accounts_problem(world: World, handle: str) -> None:
    alice, bob = await learnt(world, "alice", "bob")
    world.fake.accounts[0].handle = world.fake.stored_handle(handle)

    answer = await world.fetch(alice, bob)

    assert problem(answer, alice).kind == "invalid_response"
    assert observation(answer, bob).followers == world.fake.expected_followers(world.fake.accounts[1])
    assert all(fits_the_database(result) for result in answer.values())  # type: ignore[union-attr]


async def test_an_answered_id_not_of_the_platforms_form_is_never_kept(world: World) -> None:
    if not world.fake.string_ids:
        pytest.skip("this platform's ids are JSON numbers")
    alice = world.fake.add("alice", 100)
    alice.id += "\n"
    target = world.fake.target(alice)

    result = problem(await world.fetch(target), target)

    assert result.kind == "invalid_response"
    assert result.platform_id is None


async def test_a_stored_id_not_of_the_platforms_form_is_not_used_and_the_handle_heals_it(
    world: World,
) -> None:
    alice = world.fake.add("alice", 100)
    stored = Target(world.fake.target(alice).handle, alice.id + "\n")

    seen = observation(await world.fetch(stored), stored)

    assert seen.platform_id == alice.id
    assert all("\n" not in request.path + str(request.query) for request in world.fake.requests)


async def test_json_nested_beyond_the_recursion_limit_is_an_invalid_answer(world: World) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(Fault.NESTED_JSON)

    assert failure_kind(await world.fetch(target), target) == "invalid_response"


async def test_rate_limit_headers_that_say_nonsense_are_ignored(world: World) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(Fault.ODD_HEADERS)

    assert observation(await world.fetch(target), target).followers == world.fake.expected_followers(alice)
    assert observation(await world.fetch(target), target).platform_id == alice.id


async def test_a_trickling_answer_ends_at_the_deadline_for_its_request_only(world: World) -> None:
    targets = await learnt(world, "alice", "bob", "carol")  # known ids: batched wherever the API can
    world.fake.fail_next(Fault.TRICKLE)

    answer = await asyncio.wait_for(world.fetch(*targets), timeout=30)  # the guard of this test, not the fix

    kinds = [failure_kind(answer, t) for t in targets]
    assert kinds.count("timeout") == (1 if world.fake.per_account else 3)
    assert set(kinds) <= {"timeout", "observed"}


@pytest.mark.parametrize(
    ("fault", "kind"), [(Fault.GZIP_BOMB, "invalid_response"), (Fault.ENDLESS, "invalid_response")]
)
async def test_bodies_beyond_the_cap_are_refused_whatever_their_encoding(
    world: World, fault: Fault, kind: str
) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(fault)

    assert failure_kind(await world.fetch(target), target) == kind
    world.clock.advance(BACKOFF_CAP)
    assert observation(await world.fetch(target), target).followers == world.fake.expected_followers(alice)


async def test_a_redirect_is_never_followed_off_the_platform(world: World) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(Fault.REDIRECT)

    answer = await world.fetch(target)

    assert failure_kind(answer, target) not in (None, "observed")
    assert METADATA_URL not in str(answer)


async def test_nul_and_lone_surrogates_in_error_text_never_reach_a_message(world: World) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(Fault.NUL_ERROR)

    answer = await world.fetch(target)

    message = answer.message if isinstance(answer, SourceError) else problem(answer, target).message
    assert "\x00" not in message and "\ud800" not in message
    assert storable(message, MAX_TEXT)


async def test_a_source_that_raises_leaves_each_account_a_problem_and_the_next_poll_works(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)

    async def raising(targets: object) -> object:
        raise KeyError("a parser's bug")

    with monkeypatch.context() as patched:
        patched.setattr(world.source._inner, "fetch", raising)  # type: ignore[attr-defined]
        result = problem(await world.fetch(target), target)

    assert (result.state, result.kind) == (AccountState.ERRORING, "internal")
    assert observation(await world.fetch(target), target).followers == world.fake.expected_followers(alice)
