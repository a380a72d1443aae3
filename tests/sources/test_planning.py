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
from service.sources.planning import CyclePlanner, plan_cycle
from service.sources.platform import RateBudget, declaration, declarations
from service.sources.ratelimit import RateGate

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
    ("account", "accounts", "credentialed", "requests"),
    [
        ("x:jack", 250, True, 3),
        ("youtube:@tseries", 50, True, 1),
        ("github:torvalds", 7, True, 7),
        ("twitch:shroud", 150, True, 152),  # one name lookup per 100, then one request each
        ("github:octo-org/hello", 250, True, 3),  # GraphQL: 100 repositories a query
        ("github:octo-org/hello", 250, False, 250),  # REST without a token: one each
    ],
)
def test_requests_per_cycle_follow_each_subjects_batching(
    account: str, accounts: int, credentialed: bool, requests: int
) -> None:
    ref = AccountRef.parse(account)
    batching = declaration(ref.platform).subject(ref.handle).batched(credentialed)
    assert batching.requests(accounts) == requests


def test_no_subject_is_batched_beyond_what_one_fetch_takes() -> None:
    for platform in declarations():
        assert all(s.batching.per_request <= platform.batch_size for s in platform.subjects)


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


def test_every_platform_declares_a_main_budget_for_each_of_its_subjects() -> None:
    assert {p.name for p in declarations()} == {"x", "mastodon", "bluesky", "youtube", "twitch", "github"}
    for platform in declarations():
        for subject in platform.subjects:
            for credentialed in (True, False):
                assert platform.budget(subject.batched(credentialed).budget, credentialed).requests > 0


def _github(token: bool) -> Config:
    return Config.model_validate({"platforms": {"github": {"token": "t"} if token else {}}})


def test_repositories_with_a_token_spend_graphql_points_not_the_rest_budget() -> None:
    repositories = [(AccountRef("github", f"o/r{i}"), 15 * MINUTE) for i in range(2000)]
    # 20 queries per 15 minutes against 4,500 usable points an hour: no stretch
    assert CyclePlanner().plan(_github(token=True), repositories)["github"] == 1.0
    # 2,000 REST requests per 15 minutes against 54 usable an hour
    assert CyclePlanner().plan(_github(token=False), repositories)["github"] == pytest.approx(8000 / 54)


def test_users_and_repositories_without_a_token_share_one_budget() -> None:
    mixed = [(AccountRef("github", "torvalds"), timedelta(hours=1))] * 30 + [
        (AccountRef("github", "o/r"), timedelta(hours=1))
    ] * 30
    assert CyclePlanner().plan(_github(token=False), mixed)["github"] == pytest.approx(60 / 54)


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
