"""Follower-count scenarios: each a deterministic function of simulated time since the demo began.

Organic growth is over-dispersed (day-to-day gains vary far more than a Poisson count would) with a weekly
rhythm; bought growth is unnaturally regular. Within a day, counts move linearly from one day's total to
the next, as a platform's count would when many follows arrive through the day.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

DailyGain = Callable[[int], float]
Extra = Callable[[float], float]  # followers added or removed at a moment, on top of the daily gains


def _rng(name: str, day: int) -> random.Random:
    return random.Random(f"{name}:{day}")


def organic(name: str, mean: float, spread: float) -> DailyGain:
    """Gains with a weekly rhythm (weekends slower) and gamma-distributed, over-dispersed noise."""

    def gain(day: int) -> float:
        weekly = 1 + 0.25 * math.sin(2 * math.pi * day / 7)
        shape = 1 / max(spread, 0.05) ** 2
        noise = _rng(name, day).gammavariate(shape, 1 / shape) if mean > 0 else 1
        drift = _rng(name + ":drift", day).gauss(0, abs(mean) * spread * 0.3)
        return mean * weekly * noise + drift

    return gain


def drip(
    start_day: int, days: int, per_day: float, then: DailyGain, jitter: float = 0.0, name: str = ""
) -> DailyGain:
    """Bought followers delivered at a fixed daily rate (optionally jittered), with ``then`` outside that phase."""

    def gain(day: int) -> float:
        if start_day <= day < start_day + days:
            return per_day * (1 + _rng(name, day).uniform(-jitter, jitter)) if jitter else per_day
        return then(day)

    return gain


def fall(start_day: int, low: float, high: float, before: DailyGain, name: str) -> DailyGain:
    """A daily loss between ``low`` and ``high`` followers from ``start_day`` on."""

    def gain(day: int) -> float:
        return -_rng(name, day).uniform(low, high) if day >= start_day else before(day)

    return gain


def step(at_day: float, size: float, hours: float) -> Extra:
    """``size`` followers arriving within ``hours`` (a bought burst when positive, a purge when negative)."""

    def extra(days: float) -> float:
        progress = (days - at_day) * 24 / hours
        return size * min(max(progress, 0.0), 1.0)

    return extra


def viral(at_day: float, size: float, decay_days: float) -> Extra:
    """An organic spike: a fast ramp then gains decaying over days (total ``size``)."""

    def extra(days: float) -> float:
        elapsed = days - at_day
        return 0.0 if elapsed <= 0 else size * (1 - math.exp(-elapsed / decay_days))

    return extra


@dataclass
class Scenario:
    """One simulated account: followers = start + the daily gains so far + extras; following and posts drift."""

    handle: str
    description: str
    start: int
    gain: DailyGain
    extras: tuple[Extra, ...] = ()
    following: Callable[[float], int] | None = None
    posts_per_day: float = 1.0
    posts_start: int = 40
    _totals: list[float] = field(default_factory=lambda: [0.0], repr=False)

    def followers(self, days: float) -> int:
        whole = max(math.floor(days), 0)
        base = self._cumulative(whole) + (days - whole) * self.gain(whole) if days > 0 else 0.0
        value = self.start + base + sum(extra(days) for extra in self.extras)
        return max(round(value), 0)

    def following_count(self, days: float) -> int:
        if self.following is not None:
            return self.following(days)
        return 150 + int(days / 3)

    def posts(self, days: float) -> int:
        return self.posts_start + int(max(days, 0) * self.posts_per_day)

    def _cumulative(self, whole_days: int) -> float:
        while len(self._totals) <= whole_days:
            day = len(self._totals) - 1
            self._totals.append(self._totals[-1] + self.gain(day))
        return self._totals[whole_days]


def linear(start: int, per_day: float) -> Callable[[float], int]:
    """A count growing steadily (a repository's watchers)."""

    def value(days: float) -> int:
        return start + int(max(days, 0) * per_day)

    return value


def seesaw(base: int, amplitude: int, period_days: float, start_day: float) -> Callable[[float], int]:
    """Following count of a follow/unfollow farmer: mass follows, then mass unfollows, over and over."""

    def following(days: float) -> int:
        if days < start_day:
            return base
        phase = ((days - start_day) % period_days) / period_days
        return base + int(amplitude * (1 - abs(2 * phase - 1)))

    return following


def demo_scenarios(domain: str = "demo.example") -> list[Scenario]:
    """The demo's accounts. Day 0 is when the demo starts. Drips begin on day 2 and a purge comes on day 4;
    the burst (day 8) and the viral spike (day 9) come after the week of history the burst detector needs."""

    def s(user: str, description: str, start: int, gain: DailyGain, *extras: Extra, **kw: object) -> Scenario:
        return Scenario(f"{user}@{domain}", description, start, gain, extras, **kw)  # type: ignore[arg-type]

    steady = organic("founding", 12, 0.8)
    return [
        s(
            "founding",
            "the founding case: +768/day for 36 days, then a daily fall of 100-150",
            9_500,
            fall(38, 100, 150, drip(2, 36, 768, steady), "founding:fall"),
        ),
        s(
            "jittered",
            "a drip randomised by ±30% (327 here, 781 there)",
            20_000,
            drip(2, 40, 550, organic("jittered", 25, 0.9), jitter=0.3, name="jittered"),
        ),
        s(
            "burst",
            "organic, then 5,000 bought followers within two hours on day 8",
            48_000,
            organic("burst", 120, 0.7),
            step(8.2, 5_000, 2),
        ),
        s(
            "purge",
            "a purge: 9% of followers removed within a day on day 4",
            210_000,
            organic("purge", 400, 0.6),
            step(4.0, -19_000, 20),
        ),
        s(
            "viral",
            "organic and a viral spike on day 9 with a slow decay (not bought)",
            31_000,
            organic("viral", 60, 0.9),
            viral(9.5, 12_000, 2.5),
        ),
        s("smallorganic", "a small organic account", 2_100, organic("small", 6, 1.0)),
        s("midorganic", "a mid-sized organic account", 85_000, organic("mid", 300, 0.7)),
        s("bigorganic", "a large organic account", 1_200_000, organic("big", 4_000, 0.6), posts_per_day=6),
        s("stagnant", "an account that neither grows nor shrinks", 5_300, organic("stagnant", 0.5, 3.0)),
        s("declining", "an account slowly losing followers", 64_000, organic("declining", -90, 0.8)),
        s(
            "churner",
            "follow/unfollow churn: following count seesaws",
            12_000,
            organic("churner", 40, 0.8),
            following=seesaw(300, 4_500, 2.0, 2.0),
        ),
    ]


def demo_repositories() -> list[Scenario]:
    """The demo's GitHub repositories (``owner/name``; followers are stars, following watchers, posts forks):
    one bought up a staircase of fake stars, whose watchers do not follow, next to one growing organically."""
    return [
        Scenario(
            "star-farm/rocket",
            "a fake-star staircase: 150, 200, then 250 stars within an hour on days 3, 6 and 9",
            60,
            organic("rocket", 2, 1.0),
            (step(3.3, 150, 1), step(6.3, 200, 1), step(9.3, 250, 1)),
            following=linear(4, 0.1),
            posts_per_day=0.2,
            posts_start=3,
        ),
        Scenario(
            "octo-org/hello",
            "a repository starred organically, about 8 a day",
            45,
            organic("hello", 8, 0.8),
            following=linear(6, 0.7),
            posts_per_day=0.9,
            posts_start=5,
        ),
    ]
