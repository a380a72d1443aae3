"""Following-count manipulation: mass-follow spikes and follow/unfollow seesaws.

Growth hackers follow many accounts to be followed back, then unfollow them. Both show in the following
count, where the platform gives one. Daily-scale periods are read; a spike is a rise of at least 20% of the
following count (and 50 accounts) in one period, a seesaw is three or more reversals of at least 5% within
ten periods.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Final

from service.detection.base import (
    CHURN,
    Detector,
    Finding,
    Period,
    Point,
    Severity,
    load_finding,
    save_finding,
)
from service.detection.history import AccountHistory, TimedCounts
from service.detection.snapshot import StateReader, StateWriter
from service.detection.stats import count, signed

SPIKE_SHARE: Final = 0.2
SPIKE_MIN: Final = 50
SWING_SHARE: Final = 0.05
SWING_MIN: Final = 20
SEESAW_PERIODS: Final = 10
SEESAW_REVERSALS: Final = 3
QUIET_PERIODS: Final = 5


class ChurnDetector(Detector):
    def __init__(self) -> None:
        super().__init__(CHURN, per_sample=False)
        # The last SEESAW_PERIODS periods: their starts and their signed swings (0 when small).
        self._swings: TimedCounts | None = (
            None  # made at the first following count (many platforms have none)
        )
        self._open: Finding | None = None
        self._quiet = 0

    def save(self, out: StateWriter) -> None:
        super().save(out)
        (self._swings or TimedCounts()).save(out)
        save_finding(out, self._open)
        out.integer(self._quiet)

    def load(self, state: StateReader) -> None:
        super().load(state)
        swings = TimedCounts()
        swings.load(state, SEESAW_PERIODS)
        self._swings = swings if len(swings) else None
        self._open = load_finding(state)
        self._quiet = state.integer()

    def observe(self, point: Point, period: Period | None, history: AccountHistory) -> list[Finding]:
        if period is None or period.following_gain is None or period.following is None:
            return []
        change = period.following_gain
        before = max(period.following - change, 1)
        big_swing = abs(change) >= max(SWING_MIN, SWING_SHARE * before)
        swings = self._swings
        if swings is None:
            swings = self._swings = TimedCounts()
        swings.append(period.start, change if big_swing else 0)
        if len(swings) > SEESAW_PERIODS:
            swings.drop_first(1)
        verdict = self._spike(period, before) or self._seesaw(swings, before)
        if verdict is None:
            return self._quiet_period(period.end)
        self._quiet = 0
        if self._open is not None:
            verdict.started_at = self._open.started_at
        self._open = verdict
        self.score = verdict.score
        return [verdict]

    def _spike(self, period: Period, before: int) -> Finding | None:
        change = period.following_gain or 0
        if change < max(SPIKE_MIN, SPIKE_SHARE * before):
            return None
        summary = (
            f"following count jumped {signed(change)} ({change / before * 100:.0f}%) "
            f"to {count(period.following or 0)} in {period.days:.1f} days: a mass-follow"
        )
        score = min(1.0, 0.5 + change / before)
        return Finding(CHURN, period.start, score, Severity.WARNING, summary)

    def _seesaw(self, kept: TimedCounts, before: int) -> Finding | None:
        swings = [(kept.time(i), kept.count(i)) for i in range(len(kept)) if kept.count(i) != 0]
        reversals = sum(1 for (_, a), (_, b) in pairwise(swings) if (a > 0) != (b > 0))
        if reversals < SEESAW_REVERSALS:
            return None
        largest = max(abs(s) for _, s in swings)
        summary = (
            f"following count went up and down {reversals} times in {len(kept)} periods, "
            f"by up to {count(largest)} ({largest / before * 100:.0f}%): a follow/unfollow seesaw"
        )
        score = min(1.0, 0.4 + 0.1 * reversals)
        return Finding(CHURN, swings[0][0], score, Severity.WARNING, summary)

    def _quiet_period(self, at: float) -> list[Finding]:
        self._quiet += 1
        if self._open is None or self._quiet < QUIET_PERIODS:
            return []
        finding = self._open
        finding.ended_at = at
        self._open = None
        self.score = 0.0
        return [finding]
