"""How long one pass over a platform's watchlist must take to stay inside the platform's rate limit.

The daemon asks whenever the watchlist is (re)loaded (every 30 s). Each platform declares how its kinds of
subject are batched and from which budget (``Subject.batching``: GitHub repositories spend GraphQL points,
100 to a request, with a token, and the REST budget one by one without) and its published budgets. A
platform's main budget is the configured one, else the request limit its headers last reported over the
published window, else the published default. When the wanted intervals would spend more than the budget, every interval on that platform is
stretched by the same factor, so polls stay evenly spread instead of running the budget dry at the start
of each window and failing for the rest of it. Saying so happens once, when a platform starts (or stops)
being stretched: a log line and a gauge.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from service.accounts import AccountRef
from service.config import Config, PlatformConfig
from service.sources.metrics import SourceMetrics
from service.sources.platform import Batching, Platform, RateBudget, declaration

log = logging.getLogger(__name__)

SHARE = 0.9  # leave a tenth of the budget for retries, name lookups and other clients of the same credential


@dataclass(frozen=True)
class CyclePlan:
    interval: timedelta  # the interval to use: the wanted one, or longer when the budget cannot carry it
    stretched: bool
    requests_per_cycle: int


def credentialed(declared: Platform, settings: PlatformConfig) -> bool:
    """Whether every credential the platform declares is set (GitHub's budget is larger with its token)."""
    return all(settings.credential(c.field) is not None for c in declared.credentials)


def plan_cycle(requests: int, interval: timedelta, budget: RateBudget, *, share: float = SHARE) -> CyclePlan:
    """The interval that spends at most ``share`` of the budget per window, for one group of accounts."""
    factor = stretch_factor([(requests, interval)], budget, share=share)
    return CyclePlan(stretch(interval, factor), stretched=factor > 1, requests_per_cycle=requests)


def stretch_factor(
    groups: Iterable[tuple[int, timedelta]], budget: RateBudget, *, share: float = SHARE
) -> float:
    """How much every interval must grow so that groups of (requests per cycle, interval) fit the budget."""
    wanted = sum(requests / interval.total_seconds() for requests, interval in groups)
    affordable = budget.requests * share / budget.window.total_seconds()
    return max(1.0, wanted / affordable)


def stretch(interval: timedelta, factor: float) -> timedelta:
    if factor <= 1:
        return interval
    return timedelta(seconds=math.ceil(interval.total_seconds() * factor))


class CyclePlanner:
    """Each platform's stretch factor for the current watchlist; reports a change of state once."""

    def __init__(self, metrics: SourceMetrics | None = None) -> None:
        self._metrics = metrics
        self._factors: dict[str, float] = {}

    def stretch(self, platform: str, interval: timedelta) -> timedelta:
        return stretch(interval, self._factors.get(platform, 1.0))

    def plan(
        self, config: Config, accounts: Iterable[tuple[AccountRef, timedelta]], fraction: float = 1.0
    ) -> dict[str, float]:
        """Recompute every platform's factor from (account, wanted interval) pairs. ``fraction`` is this
        replica's share of the watchlist: replicas sharing one credential split its budget by it."""
        pools: dict[tuple[str, str, str], dict[tuple[Batching, timedelta], int]] = defaultdict(
            lambda: defaultdict(int)
        )
        for ref, interval in accounts:
            declared, settings = declaration(ref.platform), config.platforms.of(ref.platform)
            batching = declared.subject(ref.handle).batched(credentialed(declared, settings))
            pools[(ref.platform, _scope(declared, settings, ref), batching.budget)][(batching, interval)] += 1
        factors: dict[str, float] = defaultdict(lambda: 1.0)
        for (platform, _, budget_name), counts in pools.items():
            groups = [(batching.requests(n), interval) for (batching, interval), n in counts.items()]
            budget = _share(self._budget(config, platform, budget_name), fraction)
            factors[platform] = max(factors[platform], stretch_factor(groups, budget))
        for platform in set(self._factors) | set(factors):
            self._report(platform, factors.get(platform, 1.0))
        self._factors = dict(factors)
        return self._factors

    def _budget(self, config: Config, platform: str, name: str) -> RateBudget:
        """The platform's main budget is the configured one; else the published window with the request
        limit the platform's headers reported (a different plan, an instance's own limit); else the
        published default. Other budgets (GitHub's GraphQL points) are the published ones."""
        declared, settings = declaration(platform), config.platforms.of(platform)
        published = declared.budget(name, credentialed(declared, settings))
        if name:
            return published
        if settings.rate_limit is not None:
            return RateBudget(settings.rate_limit.requests, settings.rate_limit.window)
        reported = self._metrics.reported_limits.get(platform) if self._metrics is not None else None
        # A per-instance platform's limits all report under one name: only one base_url is one instance.
        one_budget = declared.instance is None or bool(settings.base_url)
        if reported is not None and one_budget:
            return RateBudget(reported, published.window)
        return published

    def _report(self, platform: str, factor: float) -> None:
        was = self._factors.get(platform, 1.0) > 1
        if factor > 1 and not was:
            log.warning(
                "watchlist too large for the interval within the rate limit: polls spread out",
                extra={"platform": platform, "stretch": round(factor, 2)},
            )
        elif was and factor <= 1:
            log.info("watchlist fits the rate limit again", extra={"platform": platform})
        if self._metrics is not None:
            self._metrics.stretched(platform, factor > 1)


def _scope(declared: Platform, settings: PlatformConfig, ref: AccountRef) -> str:
    """Which budget of a platform with one per server (Mastodon instances) the account spends from."""
    if declared.instance is None or settings.base_url:
        return ""
    return declared.instance(ref.handle)


def _share(budget: RateBudget, fraction: float) -> RateBudget:
    """A replica's part of a budget it shares with others (by its share of the watchlist)."""
    if fraction >= 1.0:
        return budget
    return RateBudget(max(1, math.floor(budget.requests * max(fraction, 0.0))), budget.window)
