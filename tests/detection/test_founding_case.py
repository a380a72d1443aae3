"""The case flockwatch was born from: +768 followers a day, every day, for 36 days, then a daily fall."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from service.detection.base import Severity

from .helpers import of_kind, run, series

ONSET = datetime(2026, 5, 31, tzinfo=UTC)
DRIP_DAYS = 36


def founding_case() -> list:  # type: ignore[type-arg]
    rng = random.Random(9500)
    before = [rng.choice([-3, -1, 0, 2, 4, 6, 9, 12]) for _ in range(30)]  # a quiet account, 30 days
    drip = [768] * DRIP_DAYS  # May 31 to July 5, no 767, no 769
    fall = [-rng.randint(100, 150) for _ in range(20)]
    start = ONSET - timedelta(days=len(before))
    return series("x:founding_case", before + drip + fall, start=start, first=9_500 - sum(before))


def test_regular_growth_is_flagged_within_five_daily_samples_of_onset() -> None:
    found = of_kind(run(founding_case()), "regular_growth")

    assert len(found) == 1, "one ongoing anomaly, one detection"
    detection = found[0]
    assert detection.detected_at - ONSET <= timedelta(days=5)
    assert detection.severity is Severity.CRITICAL
    assert "+768/day" in detection.summary and "sd 0" in detection.summary
    assert detection.started_at <= ONSET + timedelta(days=1)


def test_regular_growth_ends_when_the_drip_stops() -> None:
    detection = of_kind(run(founding_case()), "regular_growth")[0]

    assert detection.ended_at == ONSET + timedelta(days=DRIP_DAYS)
    assert f"for {DRIP_DAYS} days" in detection.summary


def test_the_fall_is_flagged_within_two_samples() -> None:
    fall_onset = ONSET + timedelta(days=DRIP_DAYS)
    drops = [d for d in of_kind(run(founding_case()), "drop") if d.detected_at > fall_onset]

    assert drops, "the daily fall after the bought phase must be reported"
    assert drops[0].detected_at - fall_onset <= timedelta(days=2)
    assert "after gaining +768/day before" in drops[0].summary


def _drip_with_onset_sample_missing(daily: int, extra_in_gap: int = 0) -> list:  # type: ignore[type-arg]
    rng = random.Random(9501)
    before = [rng.choice([-3, -1, 0, 2, 4, 6, 9, 12]) for _ in range(30)]
    before[-1] += extra_in_gap
    samples = series("x:gap_at_onset", before + [daily] * 20, start=ONSET - timedelta(days=30), first=20_000)
    return [s for s in samples if s.observed_at != ONSET]  # the sample that would show the onset


def test_a_small_drip_whose_onset_sample_is_missing_is_flagged_within_three_days() -> None:
    # Two equal days of +200 alone are not enough (p ~ 0.016 under Poisson growth); the missed sample's
    # gain, exactly the quiet rate before plus one day at +200, is what a complete series would show.
    found = of_kind(run(_drip_with_onset_sample_missing(200)), "regular_growth")

    assert found and found[0].detected_at - ONSET <= timedelta(days=3)
    assert found[0].severity is Severity.CRITICAL


def test_a_gap_whose_gain_does_not_fit_the_new_rate_is_not_read_as_the_onset() -> None:
    # 900 more than the new rate in the gap: the exact test does not take the gap as the onset. The two
    # equal periods after it, far steadier than this account's growth, are a held step all the same.
    found = of_kind(run(_drip_with_onset_sample_missing(200, extra_in_gap=900)), "regular_growth")

    assert found and found[0].detected_at - ONSET <= timedelta(days=3)
    assert found[0].summary.startswith("inauthentic inflow") and "sd 0" not in found[0].summary


def test_a_small_drip_with_a_sample_missing_inside_its_first_days_is_flagged_within_three_days() -> None:
    # +200/day: two equal one-day periods are not enough (p ~ 0.016); a complete series has a third by
    # day 3. With day 2's sample missing, the two periods by day 3 span three days: the same verdict.
    rng = random.Random(9502)
    before = [rng.choice([-3, -1, 0, 2, 4, 6, 9, 12]) for _ in range(30)]
    samples = series("x:gap_after_onset", before + [200] * 20, start=ONSET - timedelta(days=30), first=20_000)
    found = of_kind(run([s for s in samples if s.observed_at != ONSET + timedelta(days=2)]), "regular_growth")

    assert found and found[0].detected_at - ONSET <= timedelta(days=3)
    assert found[0].severity is Severity.CRITICAL
