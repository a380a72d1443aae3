"""The demo's simulated platform speaks GitHub's REST format for its repositories: the real GitHub source,
without a token, reads a fake-star staircase and an organically starred repository from it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from service.accounts import AccountRef
from service.clock import ManualClock
from service.demo import demo_config
from service.simulator.scenarios import demo_repositories, demo_scenarios
from service.simulator.server import SimulatedPlatform
from service.sources.base import Observation, Source, Target
from service.sources.registry import build_source

START = datetime(2026, 3, 2, tzinfo=UTC)
ROCKET, HELLO = Target("star-farm/rocket"), Target("octo-org/hello")


@pytest.fixture
async def simulated() -> AsyncIterator[SimulatedPlatform]:
    platform = SimulatedPlatform([*demo_scenarios(), *demo_repositories()], ManualClock(START))
    await platform.start()
    yield platform
    await platform.stop()


@pytest.fixture
async def github(simulated: SimulatedPlatform) -> AsyncIterator[Source]:
    config = demo_config(simulated, "sqlite://", "127.0.0.1:0", timedelta(seconds=1))
    async with httpx.AsyncClient(timeout=5) as client:
        yield build_source("github", config.platforms.of("github"), client, simulated.clock)


async def stars(github: Source, clock: ManualClock, day: float) -> dict[str, int]:
    clock.set(START + timedelta(days=day))
    answer = await github.fetch([ROCKET, HELLO])
    seen = {t.handle: answer[t] for t in (ROCKET, HELLO)}
    assert all(isinstance(s, Observation) for s in seen.values()), seen
    return {handle: s.followers for handle, s in seen.items() if isinstance(s, Observation)}


async def test_the_demo_watches_its_repositories_on_github_without_a_token(
    simulated: SimulatedPlatform,
) -> None:
    config = demo_config(simulated, "sqlite://", "127.0.0.1:0", timedelta(seconds=1))
    watched = [entry.account for entry in config.watchlist]
    assert (
        AccountRef("github", "star-farm/rocket") in watched
        and AccountRef("github", "octo-org/hello") in watched
    )
    assert config.platforms.of("github").credential("token") is None


async def test_a_fake_star_staircase_next_to_organic_growth(
    github: Source, simulated: SimulatedPlatform
) -> None:
    clock = simulated.clock
    assert isinstance(clock, ManualClock)
    before = await stars(github, clock, 3.2)
    after = await stars(github, clock, 3.4)  # the first step: 150 stars within the hour from day 3.3

    assert after["star-farm/rocket"] - before["star-farm/rocket"] >= 150
    assert abs(after["octo-org/hello"] - before["octo-org/hello"]) < 20
    later = await stars(github, clock, 9.5)
    assert later["star-farm/rocket"] - after["star-farm/rocket"] >= 450  # two more steps
