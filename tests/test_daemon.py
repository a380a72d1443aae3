"""The whole daemon on real sockets: scheduler, simulated platform, database, /metrics, graceful stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from service.accounts import AccountRef
from service.clock import FastClock
from service.daemon import Daemon
from service.demo import demo_config
from service.scheduler import PollScheduler
from service.simulator.scenarios import demo_scenarios
from service.simulator.server import SimulatedPlatform
from service.store.repository import WatchedAccount


async def eventually(check: Callable[[], object], within: float = 10.0) -> None:
    """Wait until ``check`` passes (no AssertionError), at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)


@pytest.fixture
async def platform() -> AsyncIterator[SimulatedPlatform]:
    simulated = SimulatedPlatform(demo_scenarios(), FastClock(datetime.now(UTC), 3600))
    await simulated.start()
    yield simulated
    await simulated.stop()


@pytest.fixture
async def daemon(platform: SimulatedPlatform, db_url: str) -> AsyncIterator[Daemon]:
    config = demo_config(platform, db_url, "127.0.0.1:0", timedelta(seconds=0.2))
    running = Daemon(config, clock=platform.clock, registry=CollectorRegistry())
    await running.start()
    yield running
    await running.stop()


def followers_on_page(page: str) -> dict[str, float]:
    families = {f.name: f for f in text_string_to_metric_families(page)}
    return {s.labels["account"]: s.value for s in families["flockwatch_followers"].samples}


async def test_metrics_show_every_account_and_the_database_holds_samples(daemon: Daemon) -> None:
    async with httpx.AsyncClient() as client:
        pages: list[str] = []

        async def fetch() -> None:
            pages.append((await client.get(daemon.metrics_url)).text)

        async def wait_for_accounts() -> None:
            for _ in range(200):
                await fetch()
                if len(followers_on_page(pages[-1])) == 11:
                    return
                await asyncio.sleep(0.05)

        await wait_for_accounts()
        followers = followers_on_page(pages[-1])
        assert len(followers) == 11 and followers["founding@demo.example"] >= 9_500
        assert (
            'flockwatch_account_state{account="ghost@demo.example",platform="mastodon",state="not_found"} 1.0'
            in pages[-1]
        )
        base = daemon.metrics_url.removesuffix("/metrics")
        assert (await client.get(f"{base}/healthz")).status_code == 200
        ready = await client.get(f"{base}/readyz")
        assert ready.status_code == 200 and ready.json() == {"ready": True, "problems": []}
    await eventually(lambda: _assert_samples_stored(daemon))


def _assert_samples_stored(daemon: Daemon) -> None:
    assert daemon.store.sample_count() >= 11


async def test_an_account_removed_from_the_watchlist_disappears_from_metrics(daemon: Daemon) -> None:
    await eventually(lambda: _assert_has_sample(daemon, "viral@demo.example"))
    daemon.store.unwatch(AccountRef("mastodon", "viral@demo.example"))
    await daemon.refresh_watchlist()
    async with httpx.AsyncClient() as client:
        page = (await client.get(daemon.metrics_url)).text
    assert "viral@demo.example" not in page
    assert "founding@demo.example" in page


def _assert_has_sample(daemon: Daemon, handle: str) -> None:
    view = daemon.board.view(AccountRef("mastodon", handle))
    assert view.latest is not None


async def test_stopping_finishes_the_poll_under_way_and_writes_its_samples(
    platform: SimulatedPlatform, db_url: str
) -> None:
    platform.slow_seconds = 1.0
    platform.set_fault("burst@demo.example", "slow")
    config = demo_config(platform, db_url, "127.0.0.1:0", timedelta(seconds=30))
    daemon = Daemon(config, clock=platform.clock, registry=CollectorRegistry())
    await daemon.start()
    await eventually(lambda: _assert_requested(platform, "burst@demo.example"))
    await daemon.stop()  # while the slow answer is still on its way
    burst = daemon.store.history(AccountRef("mastodon", "burst@demo.example"))
    assert len(burst) == 1
    assert daemon.writer.buffered == 0
    assert daemon.store.sample_count() == 11
    daemon.engine.dispose()  # the reads above reopened the pool that stop() closed


def _assert_requested(platform: SimulatedPlatform, acct: str) -> None:
    assert any(requested == acct for _, requested in platform.requests)


async def test_a_group_poll_never_overlaps_itself() -> None:
    running = 0
    most = 0
    runs = 0

    async def slow_poll(_platform: str, _accounts: object, _deadline: float) -> list[WatchedAccount]:
        nonlocal running, most, runs
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.4)
        running -= 1
        runs += 1
        return []

    account = WatchedAccount(1, AccountRef("github", "torvalds"), None, None, "active")  # type: ignore[arg-type]
    scheduler = PollScheduler(slow_poll, timedelta(0), lambda _a: timedelta(seconds=0.1))
    scheduler.start()
    scheduler.plan([account])
    await asyncio.sleep(1.5)
    await scheduler.drain()
    assert runs >= 2
    assert most == 1


async def test_readyz_says_why_when_not_ready(daemon: Daemon) -> None:
    await daemon.scheduler.drain()
    base = daemon.metrics_url.removesuffix("/metrics")
    async with httpx.AsyncClient() as client:
        ready = await client.get(f"{base}/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"ready": False, "problems": ["scheduler: not running"]}
