"""Per-account rolling state shared by the detectors: the open day-scale period and the recent periods."""

from __future__ import annotations

from typing import Final, final

from service.detection.base import DAY, Period, Point
from service.detection.stats import median, robust_scale

HISTORY_PERIODS: Final = 40  # enough for a 4-week reference plus a 10-day test window
MIN_PERIOD_DAYS: Final = 0.9  # a period closes once it spans this long; daily samples close one each
MIN_PERIOD: Final = MIN_PERIOD_DAYS * DAY
USUAL_PERIODS: Final = 7  # an account's usual rate is the median of its last week of periods


@final
class AccountHistory:
    """Turns samples at any spacing into periods of about a day or more, keeping the last few dozen.

    The recent periods and their rates sit in plain lists that are cut back to HISTORY_PERIODS once they
    hold twice that: reading the last n is a list slice, and memory stays bounded.
    """

    __slots__ = ("_anchor", "_pushed", "_rates", "_recent", "_usual", "_usual_of", "_usual_step", "last")

    def __init__(self) -> None:
        self._recent: list[Period] = []
        self._rates: list[float] = []  # the periods' rates, read every day
        self._anchor: Point | None = None
        self.last: Point | None = None
        self._pushed = 0  # periods pushed since the start
        self._usual = (0.0, 0.0)
        self._usual_of = -1  # the value of _pushed (plus one with a current period) _usual was computed for
        self._usual_step = 0

    def add(self, point: Point) -> Period | None:
        """Record a sample; return the period it closes, if any."""
        self.last = point
        anchor = self._anchor
        if anchor is None:
            self._anchor = point
            return None
        if point.at - anchor.at < MIN_PERIOD:
            return None
        self._anchor = point
        return Period(anchor, point)

    def push(self, period: Period) -> None:
        self._pushed += 1
        self._recent.append(period)
        self._rates.append(period.rate)
        if len(self._recent) >= 2 * HISTORY_PERIODS:
            del self._recent[:HISTORY_PERIODS]
            del self._rates[:HISTORY_PERIODS]

    def periods(self, last: int) -> list[Period]:
        """The last ``last`` periods (at most HISTORY_PERIODS), oldest first."""
        return self._recent[-min(last, HISTORY_PERIODS) :] if last > 0 else []

    def periods_then(self, last: int, current: Period) -> list[Period]:
        """The last ``last`` periods, then ``current``: what a detector reads when a period closes."""
        periods = self.periods(last)
        periods.append(current)
        return periods

    def rates(self, last: int) -> list[float]:
        return self._rates[-min(last, HISTORY_PERIODS) :] if last > 0 else []

    def usual(self, step: int, current: Period | None = None) -> tuple[float, float, int]:
        """The usual rate (median of the last USUAL_PERIODS rates, ``current``'s last when given), its
        robust scale, and how many rates it rests on.

        Burst reads it as a period closes (with that period), drop as the next one closes (without it): the
        same rates, so it is worked out once.
        """
        of = self._pushed + (0 if current is None else 1)
        if of != self._usual_of or step != self._usual_step:
            if current is None:
                rates = self._rates[-USUAL_PERIODS:]
            else:
                rates = self._rates[-(USUAL_PERIODS - 1) :]
                rates.append(current.rate)
            centre = median(rates) if rates else 0.0
            self._usual = (centre, robust_scale(rates, centre, step) if rates else 0.0)
            self._usual_of = of
            self._usual_step = step
        return self._usual[0], self._usual[1], min(of, USUAL_PERIODS)

    def __len__(self) -> int:
        return min(len(self._recent), HISTORY_PERIODS)
