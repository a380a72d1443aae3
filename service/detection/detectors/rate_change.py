"""A change point in the growth rate that is large against the account's own history.

The mean rate of the last five periods is compared with the median of the three weeks before; a change is
reported when every one of those periods sits on the same side, beyond four of the account's own robust
standard deviations and by at least half the old rate. Reported as information: a rate change alone is
not an accusation, the other detectors say what kind of change it looks like.
"""

from __future__ import annotations

from typing import Final

from service.detection.base import (
    RATE_CHANGE,
    Detector,
    Finding,
    Period,
    Point,
    Severity,
    load_finding,
    save_finding,
)
from service.detection.history import AccountHistory
from service.detection.snapshot import StateReader, StateWriter
from service.detection.stats import median, robust_scale, signed

RECENT: Final = 5
REFERENCE: Final = 21
MIN_REFERENCE: Final = 10
MIN_Z: Final = 4.0


class RateChangeDetector(Detector):
    def __init__(self) -> None:
        super().__init__(RATE_CHANGE, per_sample=False)
        self._open: Finding | None = None

    def save(self, out: StateWriter) -> None:
        super().save(out)
        save_finding(out, self._open)

    def load(self, state: StateReader) -> None:
        super().load(state)
        self._open = load_finding(state)

    def observe(self, point: Point, period: Period | None, history: AccountHistory) -> list[Finding]:
        if period is None:
            return []
        rates = history.rates(RECENT + REFERENCE - 1)  # every period before this one, as far back as read
        if len(rates) + 1 < RECENT + MIN_REFERENCE:
            return []
        recent = history.periods_then(RECENT - 1, period)
        change = _change(recent, rates[: len(rates) - (RECENT - 1)], period.step)
        if change is None:
            return self._close(period.end)
        recent_rate, reference, z = change
        self.score = min(1.0, z / (4 * MIN_Z))
        started = self._open.started_at if self._open else recent[0].start
        direction = "rose" if recent_rate > reference else "fell"
        summary = (
            f"growth {direction} from {signed(reference)}/day to {signed(recent_rate)}/day over the last "
            f"{RECENT} periods, {z:.0f} times the account's usual day-to-day variation"
        )
        self._open = Finding(RATE_CHANGE, started, self.score, Severity.INFO, summary)
        return [self._open]

    def _close(self, at: float) -> list[Finding]:
        self.score = 0.0
        if self._open is None:
            return []
        finding = self._open
        finding.ended_at = at
        self._open = None
        return [finding]


def _change(recent: list[Period], before: list[float], step: int) -> tuple[float, float, float] | None:
    reference = median(before)
    # Every recent period must sit beyond the reference on one side: when they straddle it, the robust
    # scale (a second sort) is not needed to say no. Loops rather than min()/max() of generators: this
    # runs for every account every day.
    gain = 0
    days = 0.0
    lowest = highest = recent[0].rate
    for p in recent:
        gain += p.gain
        days += p.days
        lowest = p.rate if p.rate < lowest else lowest
        highest = p.rate if p.rate > highest else highest
    if lowest <= reference <= highest:
        return None
    scale = robust_scale(before, reference, step)
    rate = gain / days
    z = abs(rate - reference) / scale
    if z < MIN_Z or abs(rate - reference) < 0.5 * abs(reference):
        return None
    if not (lowest > reference + 2 * scale or highest < reference - 2 * scale):
        return None
    return rate, reference, z
