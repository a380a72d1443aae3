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
