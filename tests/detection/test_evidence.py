"""Verdicts from evidence, not size: each change is judged against what the account's own process makes
plausible, from a repository that gains a star a week to an account that gains thousands a day."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from service.accounts import AccountRef
from service.detection.base import Severity
from service.detection.detectors import all_detectors
from service.detection.evidence import log_nb_tail

from .helpers import START, of_kind, run, series

QUARTER = timedelta(minutes=15)
HOUR = timedelta(hours=1)


def _poisson_gains(rng: random.Random, steps: int, per_step: float) -> list[int]:
    """Poisson arrivals per sample (Knuth's method: small rates only)."""
    out = []
    for _ in range(steps):
        k, p, limit = 0, 1.0, math.exp(-per_step)
        while True:
            p *= rng.random()
            if p < limit:
                break
            k += 1
        out.append(k)
    return out


def _alarms(detections: list, kind: str) -> list:  # type: ignore[type-arg]
    return [d for d in of_kind(detections, kind) if d.severity is not Severity.INFO]


def test_25_stars_within_minutes_on_a_repository_that_gains_one_a_week_is_critical() -> None:
    rng = random.Random(1)
    gains = _poisson_gains(rng, 21 * 96, 1 / 7 / 96)  # three weeks of 15-minute polls, a star a week
    gains += [25, *_poisson_gains(rng, 96, 1 / 7 / 96)]
    found = _alarms(run(series("github:octo-org/quiet", gains, every=QUARTER, first=12)), "burst")

    assert len(found) == 1 and found[0].severity is Severity.CRITICAL
    assert found[0].detected_at - (START + 21 * 96 * QUARTER) <= timedelta(hours=6)
    assert found[0].summary.startswith("inauthentic inflow: +25 stars")
    assert "consistent with bought stars" in found[0].summary and "followers" not in found[0].summary


def test_25_more_within_minutes_on_an_account_gaining_2000_a_day_is_nothing() -> None:
    rng = random.Random(2)
    gains = [round(rng.gauss(2000 / 96, math.sqrt(2000 / 96))) for _ in range(22 * 96)]
    gains[21 * 96] += 25

    assert _alarms(run(series("x:busy", gains, every=QUARTER, first=400_000)), "burst") == []


def test_a_repository_watched_from_its_first_hour_gets_a_verdict_on_its_first_wave() -> None:
    # A new repository: one star in its first three hours, then 23 within minutes, then quiet again.
    gains = [0, 1, 0, 23] + [0] * 40
    found = _alarms(run(series("github:new-org/launch", gains, every=HOUR, first=0)), "burst")

    assert found and found[0].detected_at - (START + 3 * HOUR) <= timedelta(hours=6)
    assert "judged on 3 hours of history" in found[0].summary


def test_a_wave_after_a_repositorys_organic_launch_hours_is_a_verdict_within_six_hours() -> None:
    # A repository of the independent generator (seed 102) watched from its first hours: ten stars over
    # its first nine hours (an organic launch), then +28 within the hour, then quiet. Its own hours of
    # growth set the pace; the hours ahead share their day, so they vary as a typical account's days do.
    # Hourly gains from 3 stars: 3, 4, 4, 5, 7, 10, 10, 11, 12, 13 (hours 0-13), 41 at hour 14, then 44.
    gains = [1, 0, 1, 2, 3, 0, 1, 1, 1, 0, 0, 0, 0, 28, 1, 0, 0, 1, 0, 1] + [0] * 11
    found = _alarms(run(series("github:new-org/launched", gains, every=HOUR, first=3)), "burst")

    assert found and found[0].detected_at - (START + 13 * HOUR) <= timedelta(hours=6)
    assert "+28 stars" in found[0].summary


@pytest.mark.parametrize("every", [timedelta(days=1), QUARTER])
def test_a_drip_on_top_of_noisy_organic_growth_is_found_within_three_daily_gains(every: timedelta) -> None:
    # Organic 1-40 a day, over-dispersed (a day's rate varies by CV 0.8); from a moment inside day 30 a
    # seller adds exactly 400 a day, spread over the day.
    rng = random.Random(3)
    onset = 30.4  # days
    per_day = round(timedelta(days=1) / every)
    rates = [20 * rng.gammavariate(1.5, 1 / 1.5) for _ in range(45)]
    gains = []
    for step in range(45 * per_day):
        day = step / per_day
        organic = _poisson_gains(rng, 1, rates[int(day)] / per_day)[0]
        drip = 400 * (min(day + 1 / per_day, 45) - max(day, onset)) if day + 1 / per_day > onset else 0
        gains.append(organic + round(drip))
    start = START + timedelta(days=onset)
    found = [
        d
        for d in _alarms(run(series("x:dripped", gains, every=every, first=3_000)), "regular_growth")
        if d.detected_at > start
    ]

    assert found and found[0].detected_at - start <= timedelta(hours=72)
    assert (
        found[0].summary.startswith("inauthentic inflow")
        and "on top of the account's own growth" in found[0].summary
    )


def test_a_noisy_declining_account_raises_no_alarm() -> None:
    # Losing about 30 a day net, with gains that swing by a day's worth either way and heavy slow days.
    rng = random.Random(4)
    gains = [round(40 * rng.gammavariate(0.8, 1 / 0.8)) - round(rng.gauss(70, 9)) for _ in range(120)]
    found = run(series("x:declining", gains, first=50_000))

    assert [d for d in found if d.severity is not Severity.INFO] == []


def test_a_repository_has_no_churn_detector_and_its_summaries_say_stars() -> None:
    repository = all_detectors(AccountRef("github", "octo-org/hello"))
    user = all_detectors(AccountRef("github", "octocat"))

    assert "churn" not in [d.name for d in repository] and "churn" in [d.name for d in user]
    assert {d.noun for d in repository} == {"stars"} and {d.noun for d in user} == {"followers"}


def test_watchers_going_up_and_down_on_a_repository_are_not_churn() -> None:
    # For a repository the following column holds its watchers: their swings are not follow/unfollow.
    watchers = [100] * 20 + [140, 140, 100, 100, 145, 145, 100, 100, 150, 150] + [100] * 11
    found = run(series("github:octo-org/watched", [1] * 40, following=watchers))

    assert of_kind(found, "churn") == []


@pytest.mark.parametrize(
    ("k", "mean", "variance", "expected"),
    [
        (5, 0.2, 0.2, 2.262e-6),  # Poisson: the sum of e^-0.2 0.2^n/n! for n >= 5
        (10, 3, 9, 0.0402),  # negative binomial, size 1.5
        (0, 3, 9, 1.0),  # at or below the mean: no surprise
    ],
)
def test_negative_binomial_tail(k: float, mean: float, variance: float, expected: float) -> None:
    assert math.exp(log_nb_tail(k, mean, variance)) == pytest.approx(expected, rel=2e-3)


@pytest.mark.parametrize(("busy", "alarmed"), [(9_000, False), (40_000, True)])
def test_a_busy_third_day_is_judged_against_how_little_two_days_say_of_the_rate(
    busy: int, alarmed: bool
) -> None:
    # A daily export polled an hour early, watched from its first days (+300, +800): two days of an
    # over-dispersed account say little of its rate. Thirty times the first is a busy day it may have; a
    # hundred times is a batch.
    samples = series("x:young", [300, 800, busy, 900, 700], first=500_000, every=timedelta(hours=23))
    found = run(samples)

    assert bool(_alarms(found, "burst")) is alarmed
