"""One contract for every source, each pointed at its own fake platform over real sockets."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.clock import ManualClock
from service.samples import AccountState
from service.sources.base import AccountProblem, Observation, SourceError
from service.sources.platform import declaration, declarations
from service.sources.ratelimit import BACKOFF_CAP
from tests.fakes.catalog import FAKES
from tests.fakes.server import Fault
from tests.sources.world import START, World, failure_kind, no_sample, observation, problem


def test_every_platform_and_every_kind_of_subject_has_a_fake() -> None:
    cases = {
        (fake.platform, declaration(fake.platform).subject(fake(ManualClock(START)).target("a").handle).kind)
        for fake in FAKES.values()
    }
    declared = {(p.name, s.kind) for p in declarations() for s in p.subjects}
    assert cases == declared


async def test_counts_are_recorded_with_the_stable_id(world: World) -> None:
    alice = world.fake.add("alice", 12_345, following=7, posts=99)

    seen = observation(await world.fetch(world.fake.target(alice)), world.fake.target(alice))

    assert seen.platform_id == alice.id
    assert seen.followers == world.fake.expected_followers(alice)
    assert seen.handle.lower() == world.fake.expected_handle(alice).lower()
    assert world.metric("flockwatch_source_requests_total") >= 1
    assert world.metric("flockwatch_source_up") == 1


async def test_a_known_id_is_looked_up_by_id(world: World) -> None:
    alice = world.fake.add("alice", 500)
    target = world.fake.target(alice, known_id=True)

    seen = observation(await world.fetch(target), target)

    assert seen.platform_id == alice.id
    assert seen.followers == 500


async def test_one_batch_mixes_found_unknown_and_suspended_accounts(world: World) -> None:
    alice, bob = world.fake.add("alice", 100), world.fake.add("bob", 200)
    mallory = world.fake.add("mallory", 300, suspended=True)
    ghost = world.fake.target("ghost")
    targets = [world.fake.target(a) for a in (alice, mallory, bob)] + [ghost]

    answer = await world.fetch(*targets)

    assert observation(answer, targets[0]).followers == 100
    assert observation(answer, targets[2]).followers == 200
    assert problem(answer, ghost).state is AccountState.NOT_FOUND
    assert problem(answer, targets[1]).state is world.fake.suspended_state
    assert problem(answer, ghost).permanent and problem(answer, targets[1]).permanent
    declared = declaration(world.platform).subject(ghost.handle).states
    assert {problem(answer, ghost).state, problem(answer, targets[1]).state} <= declared


async def test_a_rename_keeps_the_id_and_reports_the_new_handle(world: World) -> None:
    alice = world.fake.add("alice", 100)
    first = observation(await world.fetch(world.fake.target(alice)), world.fake.target(alice))
    target = world.fake.target(alice, known_id=True)
    world.fake.rename(alice, "alicia")

    seen = observation(await world.fetch(target), target)

    assert seen.platform_id == first.platform_id
    assert seen.handle.lower() == world.fake.written(world.fake.stored_handle("alicia")).lower()


async def test_a_429_is_obeyed_until_the_reset(world: World) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(Fault.RATE_LIMIT)
    reset_at = world.clock.now() + world.fake.rate_limit_wait

    answer = await world.fetch(target)

    assert no_sample(answer, target)
    if isinstance(answer, SourceError):
        assert answer.kind == "rate_limited"
        assert answer.retry_at == reset_at
    else:  # a per-account wait (Mastodon: one instance's budget)
        assert (problem(answer, target).kind, problem(answer, target).retry_at) == ("rate_limited", reset_at)
    asked = len(world.fake.requests)
    for _ in range(3):
        world.clock.advance(timedelta(seconds=20))
        assert no_sample(await world.fetch(target), target)
    assert len(world.fake.requests) == asked, "a request went out before the reset"

    world.clock.set(reset_at)
    assert observation(await world.fetch(target), target).followers == 100
    assert all(seen.at >= reset_at for seen in world.fake.requests[asked:])
    assert world.metric("flockwatch_source_request_failures_total", kind="rate_limited") == 1


async def test_a_spent_quota_stops_requests_until_it_refills(world: World) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(Fault.QUOTA)

    answer = await world.fetch(target)

    assert no_sample(answer, target)
    assert failure_kind(answer, target) in {"quota", "rate_limited"}
    asked = len(world.fake.requests)
    world.clock.advance(timedelta(seconds=30))
    assert no_sample(await world.fetch(target), target)
    assert len(world.fake.requests) == asked
    world.clock.advance(timedelta(days=1))
    assert observation(await world.fetch(target), target).followers == 100


async def test_5xx_backs_off_this_platform_then_recovers(world: World) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(Fault.SERVER_ERROR)

    answer = await world.fetch(target)

    assert failure_kind(answer, target) == "http_5xx"
    assert world.metric("flockwatch_source_up") == 0
    asked = len(world.fake.requests)
    assert no_sample(await world.fetch(target), target)
    assert len(world.fake.requests) == asked, "retried at once instead of backing off"

    world.clock.advance(BACKOFF_CAP)
    assert observation(await world.fetch(target), target).followers == 100
    assert world.metric("flockwatch_source_up") == 1


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.INVALID_JSON, "invalid_response"),
        (Fault.HUGE_BODY, "invalid_response"),
        (Fault.TRUNCATED, "connection"),
        (Fault.SLOW, "timeout"),
    ],
)
async def test_broken_answers_record_nothing_and_the_source_recovers(
    world: World, fault: Fault, kind: str
) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(fault)

    answer = await world.fetch(target)

    assert failure_kind(answer, target) == kind
    world.clock.advance(BACKOFF_CAP)
    assert observation(await world.fetch(target), target).followers == 100


@pytest.mark.parametrize("followers", [None, -5, 10**11, 10**20, "12", "1e3", 1.5, True])
async def test_a_missing_or_impossible_count_is_an_error_never_a_sample(
    world: World, followers: object
) -> None:
    if world.platform == "youtube" and followers in ("12", True):
        pytest.skip("YouTube sends every count as a string: '12' is valid there")
    alice = world.fake.add("alice", followers)
    bob = world.fake.add("bob", 4321)
    targets = [world.fake.target(alice), world.fake.target(bob)]

    answer = await world.fetch(*targets)

    broken = problem(answer, targets[0])
    assert broken.state is AccountState.ERRORING
    assert broken.kind == "invalid_response"
    assert observation(answer, targets[1]).followers == world.fake.expected_followers(bob)


async def test_an_account_nobody_asked_for_is_never_recorded(world: World) -> None:
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(Fault.EXTRA_ACCOUNT)

    answer = await world.fetch(target)

    assert not isinstance(answer, SourceError)
    assert set(answer) == {target}
    result = answer[target]
    if world.fake.per_account:  # the answer was about someone else entirely
        assert isinstance(result, AccountProblem) and result.kind == "invalid_response"
    else:
        assert isinstance(result, Observation) and result.platform_id == alice.id


async def test_a_bad_credential_is_not_retried_in_a_tight_loop(world: World) -> None:
    if world.platform == "bluesky":
        pytest.skip("the public AppView takes no credential")
    alice = world.fake.add("alice", 100)
    target = world.fake.target(alice)
    world.fake.fail_next(Fault.UNAUTHORIZED)

    answer = await world.fetch(target)

    assert failure_kind(answer, target) == "auth"
    asked = len(world.fake.requests)
    for _ in range(5):
        await world.fetch(target)
    assert len(world.fake.requests) == asked
