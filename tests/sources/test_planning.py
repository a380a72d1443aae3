"""Stretching the poll cycle evenly when the watchlist outgrows a platform's rate limit."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client import CollectorRegistry

from service.accounts import AccountRef
from service.clock import ManualClock
from service.config import Config
from service.sources.metrics import SourceMetrics
from service.sources.planning import (
    BATCH_SIZES,
    DEFAULT_BUDGETS,
    CyclePlanner,
    RateBudget,
    plan_cycle,
    requests_per_cycle,
)
from service.sources.ratelimit import RateGate
from service.sources.registry import BUILDERS

MINUTE = timedelta(minutes=1)


def test_a_watchlist_inside_the_budget_keeps_its_interval() -> None:
    plan = plan_cycle(100, 15 * MINUTE, RateBudget(300, 15 * MINUTE))
    assert plan.interval == 15 * MINUTE
    assert not plan.stretched


def test_a_watchlist_beyond_the_budget_is_stretched_to_fit() -> None:
    budget = RateBudget(60, timedelta(hours=1))
    plan = plan_cycle(540, 15 * MINUTE, budget)  # 540 requests per 15 min against 54 usable per hour
    assert plan.stretched
    assert plan.interval == timedelta(hours=10)
    per_window = plan.requests_per_cycle * (budget.window / plan.interval)
    assert per_window <= budget.requests * 0.9


@pytest.mark.parametrize(
    ("platform", "accounts", "requests"),
    [("x", 250, 3), ("youtube", 50, 1), ("github", 7, 7), ("twitch", 150, 152)],
)
def test_requests_per_cycle_follow_each_api_batch_size(platform: str, accounts: int, requests: int) -> None:
    assert requests_per_cycle(platform, accounts) == requests


def test_planning_batch_sizes_match_the_sources() -> None:
    for platform in ("x", "bluesky", "youtube"):
        assert BATCH_SIZES[platform] == BUILDERS[platform].batch_size  # type: ignore[attr-defined]


def test_the_planner_says_so_once_and_sets_the_gauge(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    planner = CyclePlanner(SourceMetrics(registry))
    config = Config()
    many = [(AccountRef("github", f"user{i}"), MINUTE) for i in range(100)]

    with caplog.at_level(logging.INFO):
        planner.plan(config, many)
        planner.plan(config, many)
    assert sum("too large" in r.message for r in caplog.records) == 1
    assert registry.get_sample_value("flockwatch_poll_cycle_stretched", {"platform": "github"}) == 1
    stretched = planner.stretch("github", MINUTE)
    assert stretched > timedelta(hours=1)  # 100 anonymous requests per cycle against 60 per hour

    planner.plan(config, [(AccountRef("github", "torvalds"), 15 * MINUTE)])
    assert registry.get_sample_value("flockwatch_poll_cycle_stretched", {"platform": "github"}) == 0
    assert planner.stretch("github", 15 * MINUTE) == 15 * MINUTE


def test_mastodon_instances_have_budgets_of_their_own() -> None:
    planner = CyclePlanner()
    spread = [(AccountRef("mastodon", f"u@host{i}.example"), MINUTE) for i in range(400)]
    assert planner.plan(Config(), spread)["mastodon"] == 1.0
    crowded = [(AccountRef("mastodon", f"u{i}@one.example"), MINUTE) for i in range(400)]
    assert planner.plan(Config(), crowded)["mastodon"] > 1


def test_default_budgets_cover_every_platform() -> None:
    assert (
        set(DEFAULT_BUDGETS)
        == set(BATCH_SIZES)
        == {"x", "mastodon", "bluesky", "youtube", "twitch", "github"}
    )


def test_a_configured_rate_limit_replaces_the_published_default() -> None:
    watchlist = [f"mastodon:user{i}@one.example" for i in range(100)]
    default = Config.model_validate({"watchlist": watchlist})
    generous = Config.model_validate(
        {
            "watchlist": watchlist,
            "platforms": {"mastodon": {"rate_limit": {"requests": 10_000, "window": "5m"}}},
        }
    )
    pairs = [(entry.account, timedelta(seconds=10)) for entry in default.watchlist]
    assert CyclePlanner().plan(default, pairs)["mastodon"] > 1
    assert CyclePlanner().plan(generous, pairs)["mastodon"] == 1


def _reporting(limit: int) -> SourceMetrics:
    """Source metrics after X answered with its rate-limit headers (through the real gate)."""
    metrics = SourceMetrics(CollectorRegistry())
    now = datetime(2026, 5, 31, tzinfo=UTC)
    gate = RateGate("x", ManualClock(now), listener=metrics)
    reset = str(int((now + 15 * MINUTE).timestamp()))
    headers = {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": "70", "x-rate-limit-reset": reset}
    gate.observe(httpx.Response(200, headers=headers))
    return metrics


def test_the_limit_the_headers_report_replaces_the_published_request_count() -> None:
    accounts = [(AccountRef("x", f"user{i}"), 15 * MINUTE) for i in range(9000)]  # 90 requests a cycle
    assert CyclePlanner().plan(Config(), accounts)["x"] == 1.0  # 300 per 15 min published: it fits
    reported = CyclePlanner(_reporting(75)).plan(Config(), accounts)["x"]
    assert reported == pytest.approx(90 / (75 * 0.9))  # the account's own 75 per 15 min does not


def test_a_configured_rate_limit_wins_over_the_reported_one() -> None:
    accounts = [(AccountRef("x", f"user{i}"), 15 * MINUTE) for i in range(9000)]
    config = Config.model_validate({"platforms": {"x": {"rate_limit": {"requests": 1000, "window": "15m"}}}})
    assert CyclePlanner(_reporting(75)).plan(config, accounts)["x"] == 1.0
