"""The sources inside the running daemon: their metrics on its registry, and cycles stretched to the budget."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from service.clock import ManualClock, SystemClock
from service.config import Config
from service.daemon import Daemon
from tests.fakes.github import FakeGithub
from tests.sources.world import START


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "the condition never came true"
        await asyncio.sleep(0.05)


async def test_a_watchlist_beyond_the_budget_is_stretched_and_the_sources_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeGithub(ManualClock(START))
    await fake.start()
    for i in range(100):
        fake.add(f"user{i}", 1000 + i)
    config = Config.model_validate(
        {
            "database": {"url": f"sqlite:///{tmp_path / 'flockwatch.db'}"},
            "http": {"listen": "127.0.0.1:0"},
            "poll": {"interval": "1m", "jitter": "0.1s"},
            "platforms": {"github": {"base_url": fake.url}},  # no token: 60 requests an hour
            "watchlist": [f"github:user{i}" for i in range(100)],
        }
    )
    registry = CollectorRegistry()
    daemon = Daemon(config, clock=SystemClock(), registry=registry)
    try:
        with caplog.at_level(logging.WARNING, logger="service.sources.planning"):
            await daemon.start()
            await eventually(lambda: registry.get_sample_value("flockwatch_samples_written_total") == 100)
            groups = daemon.scheduler.groups()
    finally:
        await daemon.stop()
        await fake.stop()

    assert registry.get_sample_value("flockwatch_source_requests_total", {"platform": "github"}) == 100
    assert registry.get_sample_value("flockwatch_poll_cycle_stretched", {"platform": "github"}) == 1
    assert registry.get_sample_value("flockwatch_source_up", {"platform": "github"}) == 1
    assert registry.get_sample_value("flockwatch_ratelimit_remaining", {"platform": "github"}) is not None
    assert [r.getMessage() for r in caplog.records].count(
        "watchlist too large for the interval within the rate limit: polls spread out"
    ) == 1
    ((_, seconds),) = groups
    assert seconds >= timedelta(hours=1).total_seconds()  # 100 requests a cycle against 54 usable an hour
