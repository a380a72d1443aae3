"""How long one pass over a platform's watchlist must take to stay inside the platform's rate limit.

The daemon asks whenever the watchlist is (re)loaded (every 30 s). The budget is the configured one, else
the request limit the platform's headers last reported over the published window, else the published
default. When the wanted intervals would spend more than the budget, every interval on that platform is
stretched by the same factor, so polls stay evenly spread instead of running the budget dry at the start
of each window and failing for the rest of it. Saying so happens once, when a platform starts (or stops)
being stretched: a log line and a gauge.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from service.accounts import AccountRef
from service.config import Config
from service.sources.metrics import SourceMetrics

log = logging.getLogger(__name__)

SHARE = 0.9  # leave a tenth of the budget for retries, name lookups and other clients of the same credential


@dataclass(frozen=True)
class RateBudget:
    requests: int
    window: timedelta


# Published or commonly observed defaults (see docs/platforms.md).
DEFAULT_BUDGETS: dict[str, RateBudget] = {
    "x": RateBudget(300, timedelta(minutes=15)),
    "mastodon": RateBudget(300, timedelta(minutes=5)),  # per instance
    "bluesky": RateBudget(3000, timedelta(minutes=5)),
    "youtube": RateBudget(10_000, timedelta(days=1)),
    "twitch": RateBudget(800, timedelta(minutes=1)),
    "github": RateBudget(5000, timedelta(hours=1)),
}
GITHUB_ANONYMOUS = RateBudget(60, timedelta(hours=1))
# Accounts one request covers (the most ``fetch`` sends per request, not per call).
BATCH_SIZES = {"x": 100, "bluesky": 25, "youtube": 50, "mastodon": 1, "github": 1, "twitch": 1}


@dataclass(frozen=True)
class CyclePlan:
    interval: timedelta  # the interval to use: the wanted one, or longer when the budget cannot carry it
    stretched: bool
    requests_per_cycle: int


def budget_for(platform: str, *, has_credential: bool) -> RateBudget:
    if platform == "github" and not has_credential:
        return GITHUB_ANONYMOUS
    return DEFAULT_BUDGETS[platform]


def requests_per_cycle(platform: str, accounts: int) -> int:
    """Requests one pass over ``accounts`` costs (Twitch adds one name lookup per 100 to its per-account calls)."""
    if accounts <= 0:
        return 0
    extra = math.ceil(accounts / 100) if platform == "twitch" else 0
    return math.ceil(accounts / BATCH_SIZES[platform]) + extra


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
        per_budget: dict[tuple[str, str], list[timedelta]] = defaultdict(list)
        for ref, interval in accounts:
            per_budget[(ref.platform, _budget_key(ref, config))].append(interval)
        factors: dict[str, float] = defaultdict(lambda: 1.0)
        for (platform, _), intervals in per_budget.items():
            budget = _share(self._budget(config, platform), fraction)
            groups = [(requests_per_cycle(platform, n), i) for i, n in _counts(intervals).items()]
            factors[platform] = max(factors[platform], stretch_factor(groups, budget))
        for platform in set(self._factors) | set(factors):
            self._report(platform, factors.get(platform, 1.0))
        self._factors = dict(factors)
        return self._factors

    def _budget(self, config: Config, platform: str) -> RateBudget:
        """The configured budget; else the published window with the request limit the platform's headers
        reported (a different plan, an instance's own limit); else the published default."""
        configured = _configured_budget(config, platform)
        if configured is not None:
            return configured
        published = budget_for(platform, has_credential=_has_token(config, platform))
        reported = self._metrics.reported_limits.get(platform) if self._metrics is not None else None
        # Mastodon's limits are per instance and all report under one name: only one base_url is one instance.
        one_budget = platform != "mastodon" or bool(config.platforms.mastodon.base_url)
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


def _share(budget: RateBudget, fraction: float) -> RateBudget:
    if fraction >= 1.0:
        return budget
    return RateBudget(max(1, math.floor(budget.requests * max(fraction, 0.0))), budget.window)


def _budget_key(ref: AccountRef, config: Config) -> str:
    """Mastodon budgets are per instance unless every lookup goes to one ``base_url``."""
    if ref.platform == "mastodon" and not config.platforms.mastodon.base_url:
        return ref.handle.rpartition("@")[2].lower()
    return ""


def _configured_budget(config: Config, platform: str) -> RateBudget | None:
    limit = config.platforms.of(platform).rate_limit
    return RateBudget(limit.requests, limit.window) if limit else None


def _has_token(config: Config, platform: str) -> bool:
    try:
        return config.platforms.of(platform).secret("token") is not None
    except OSError:
        return False


def _counts(intervals: Sequence[timedelta]) -> dict[timedelta, int]:
    counts: dict[timedelta, int] = defaultdict(int)
    for interval in intervals:
        counts[interval] += 1
    return counts
