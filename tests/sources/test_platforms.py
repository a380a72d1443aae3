"""What only some platforms do: batch sizes, YouTube rounding and hidden counts, quotas, name checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from service.samples import AccountState
from service.sources.base import AccountProblem, SourceError
from service.sources.platforms.youtube import next_quota_reset, rounding_step
from tests.fakes.server import Fault
from tests.sources.world import World, observation, open_world, problem

FULL_BATCH = {"x": 100, "bluesky": 25, "youtube": 50, "twitch": 100, "github-repositories": 100}


@pytest.mark.parametrize("platform", sorted(FULL_BATCH))
async def test_a_full_batch_is_one_request(platform: str) -> None:
    async with open_world(platform) as world:
        accounts = [world.fake.add(f"user{i}", 1000 + i) for i in range(FULL_BATCH[platform])]
        targets = [world.fake.target(a, known_id=True) for a in accounts]
        assert world.source.batch_size == FULL_BATCH[platform]

        answer = await world.fetch(*targets)

        assert all(observation(answer, t).platform_id == a.id for t, a in zip(targets, accounts, strict=True))
        lookups = [r for r in world.fake.requests if "followers" not in r.path]
        assert len(lookups) == 1


@pytest.mark.parametrize(
    ("subscribers", "step"),
    [(0, 1), (999, 1), (1000, 10), (12_300, 100), (1_230_000, 10_000), (245_000_000, 1_000_000)],
)
def test_youtube_rounding_step_is_the_third_significant_figure(subscribers: int, step: int) -> None:
    assert rounding_step(subscribers) == step


async def test_youtube_samples_carry_their_rounding_step() -> None:
    async with open_world("youtube") as world:
        big, small = world.fake.add("tseries", 1_234_567), world.fake.add("tiny", 321)
        targets = [world.fake.target(big), world.fake.target(small)]

        answer = await world.fetch(*targets)

        assert (
            observation(answer, targets[0]).followers,
            observation(answer, targets[0]).followers_step,
        ) == (
            1_230_000,
            10_000,
        )
        assert observation(answer, targets[1]).followers_step == 1


async def test_youtube_hidden_count_is_protected_not_zero() -> None:
    async with open_world("youtube") as world:
        shy = world.fake.add("shy", 50_000, hidden=True)
        target = world.fake.target(shy)

        result = problem(await world.fetch(target), target)

        assert result.state is AccountState.PROTECTED
        assert result.platform_id == shy.id


async def test_youtube_quota_waits_for_midnight_pacific() -> None:
    async with open_world("youtube") as world:
        alice = world.fake.add("alice", 10)
        world.fake.fail_next(Fault.QUOTA)

        answer = await world.fetch(world.fake.target(alice))

        assert isinstance(answer, SourceError) and answer.kind == "quota"
        assert answer.retry_at == datetime(2026, 1, 6, 8, 0, tzinfo=UTC)  # 00:00 PST


def test_quota_reset_follows_daylight_saving_time() -> None:
    summer = datetime(2026, 7, 1, 20, 0, tzinfo=UTC)
    assert next_quota_reset(summer) == datetime(2026, 7, 2, 7, 0, tzinfo=UTC)  # 00:00 PDT


async def test_youtube_key_travels_in_a_header_never_the_url() -> None:
    async with open_world("youtube") as world:
        alice = world.fake.add("alice", 10)
        await world.fetch(world.fake.target(alice))
        request = world.fake.requests[0]
        assert all(world.fake.secret not in value for _, value in request.query)
        assert request.headers["X-Goog-Api-Key"] == world.fake.secret


async def test_x_usage_cap_pauses_for_an_hour() -> None:
    async with open_world("x") as world:
        alice = world.fake.add("alice", 10)
        world.fake.fail_next(Fault.QUOTA)

        answer = await world.fetch(world.fake.target(alice))

        assert isinstance(answer, SourceError) and answer.kind == "quota"
        assert answer.retry_at == world.clock.now() + timedelta(hours=1)


@pytest.mark.parametrize(
    ("platform", "bad"),
    [("x", "not.valid"), ("twitch", "no-dashes"), ("github", "-lead"), ("bluesky", "no_underscores.example")],
)
async def test_an_impossible_name_is_not_found_and_never_spoils_the_batch(platform: str, bad: str) -> None:
    async with open_world(platform) as world:
        alice = world.fake.add("alice", 10)
        good, wrong = world.fake.target(alice), world.fake.target(bad)

        answer = await world.fetch(good, wrong)

        assert observation(answer, good).followers == 10
        assert problem(answer, wrong).state is AccountState.NOT_FOUND
        assert all(bad not in str(r.query) and bad not in r.path for r in world.fake.requests)


async def test_bluesky_tells_a_takedown_from_an_unknown_actor() -> None:
    async with open_world("bluesky") as world:
        gone = world.fake.add("gone", 10, suspended=True)
        targets = [world.fake.target(gone), world.fake.target(world.fake.stored_handle("nobody"))]

        answer = await world.fetch(*targets)

        assert problem(answer, targets[0]).state is AccountState.SUSPENDED
        assert problem(answer, targets[1]).state is AccountState.NOT_FOUND
        assert [r.path.rsplit(".", 1)[1] for r in world.fake.requests] == [
            "getProfiles",
            "getProfile",
            "getProfile",
        ]


async def test_github_secondary_limit_retry_after_is_obeyed() -> None:
    async with open_world("github") as world:
        alice = world.fake.add("alice", 10)
        target = world.fake.target(alice)

        async def secondary(request: object, extra: bool) -> object:
            return world.fake.json(
                {"message": "You have exceeded a secondary rate limit."}, 403, {"Retry-After": "120"}
            )

        world.fake.answer = secondary  # type: ignore[method-assign,assignment]
        answer = await world.fetch(target)
        assert isinstance(answer, SourceError) and answer.kind == "rate_limited"
        assert answer.retry_at == world.clock.now() + timedelta(seconds=120)


async def test_twitch_asks_followers_per_broadcaster_after_one_users_lookup() -> None:
    async with open_world("twitch") as world:
        accounts = [world.fake.add(f"streamer{i}", 100 * i) for i in range(3)]
        answer = await world.fetch(*(world.fake.target(a) for a in accounts))

        assert [observation(answer, world.fake.target(a)).followers for a in accounts] == [0, 100, 200]
        paths = [r.path for r in world.fake.requests]
        assert paths.count("/helix/users") == 1
        assert paths.count("/helix/channels/followers") == 3


async def test_a_refused_request_costs_nothing_and_says_when(world: World) -> None:
    alice = world.fake.add("alice", 10)
    world.fake.fail_next(Fault.RATE_LIMIT)
    await world.fetch(world.fake.target(alice))
    sent = world.metric("flockwatch_source_requests_total")

    await world.fetch(world.fake.target(alice))

    assert world.metric("flockwatch_source_requests_total") == sent


@pytest.mark.parametrize("platform", ["mastodon", "github"])
async def test_one_accounts_5xx_does_not_stall_the_others(platform: str) -> None:
    async with open_world(platform) as world:
        accounts = [world.fake.add(f"user{i}", 10 + i) for i in range(3)]
        targets = [world.fake.target(a) for a in accounts]
        world.fake.fail_next(Fault.SERVER_ERROR)

        first = await world.fetch(*targets)
        assert not isinstance(first, SourceError)
        assert sum(1 for t in targets if isinstance(first[t], AccountProblem)) == 1
        asked = len(world.fake.requests)

        second = await world.fetch(*targets)
        assert len(world.fake.requests) == asked + 3, "the platform answered the others: no backoff"
        assert [observation(second, t).followers for t in targets] == [10, 11, 12]
