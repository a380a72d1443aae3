"""How long one pass over a platform's watchlist must take to stay inside the platform's rate limit.

The scheduler asks once per platform (at start and when the watchlist changes). When the wanted interval
would spend more than the budget, the cycle is stretched evenly instead of running dry at the end of each
window and failing the rest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

SHARE = 0.9  # leave a tenth of the budget for retries, name lookups and other clients of the same credential


@dataclass(frozen=True)
class RateBudget:
    requests: int
    window: timedelta


# Published or commonly observed defaults; the platform's own headers say more once it answers.
DEFAULT_BUDGETS: dict[str, RateBudget] = {
    "x": RateBudget(300, timedelta(minutes=15)),
    "mastodon": RateBudget(300, timedelta(minutes=5)),  # per instance
    "bluesky": RateBudget(3000, timedelta(minutes=5)),
    "youtube": RateBudget(10_000, timedelta(days=1)),
    "twitch": RateBudget(800, timedelta(minutes=1)),
    "github": RateBudget(5000, timedelta(hours=1)),
}
GITHUB_ANONYMOUS = RateBudget(60, timedelta(hours=1))
PER_ACCOUNT_PLATFORMS = frozenset({"mastodon", "github", "twitch"})  # no batch form: a request per account


@dataclass(frozen=True)
class CyclePlan:
    interval: timedelta  # the interval to use: the wanted one, or longer when the budget cannot carry it
    stretched: bool
    requests_per_cycle: int


def budget_for(platform: str, *, has_credential: bool) -> RateBudget:
    if platform == "github" and not has_credential:
        return GITHUB_ANONYMOUS
    return DEFAULT_BUDGETS[platform]


def requests_per_cycle(platform: str, accounts: int, batch_size: int) -> int:
    """Requests one pass over ``accounts`` costs (Twitch adds one name lookup per 100 to its per-account calls)."""
    if accounts <= 0:
        return 0
    if platform == "twitch":
        return accounts + math.ceil(accounts / 100)
    if platform in PER_ACCOUNT_PLATFORMS:
        return accounts
    return math.ceil(accounts / batch_size)


def plan_cycle(requests: int, interval: timedelta, budget: RateBudget, *, share: float = SHARE) -> CyclePlan:
    """The interval that spends at most ``share`` of the budget per window."""
    affordable = budget.requests * share * (interval / budget.window)
    if requests <= affordable:
        return CyclePlan(interval, stretched=False, requests_per_cycle=requests)
    stretched = timedelta(seconds=math.ceil(interval.total_seconds() * requests / affordable))
    return CyclePlan(stretched, stretched=True, requests_per_cycle=requests)
