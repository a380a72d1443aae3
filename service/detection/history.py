"""Per-account rolling state shared by the detectors: the open day-scale period and the recent periods."""

from __future__ import annotations

from collections import deque
from itertools import islice

from service.detection.base import DAY, Period, Point, make_period

HISTORY_PERIODS = 40  # enough for a 4-week reference plus a 10-day test window
MIN_PERIOD_DAYS = 0.9  # a period closes once it spans this long; daily samples close one each
MIN_PERIOD = MIN_PERIOD_DAYS * DAY


class AccountHistory:
    """Turns samples at any spacing into periods of about a day or more, keeping the last few dozen."""

    __slots__ = ("_anchor", "_rates", "_recent", "last")

    def __init__(self) -> None:
        self._recent: deque[Period] = deque(maxlen=HISTORY_PERIODS)
        self._rates: deque[float] = deque(maxlen=HISTORY_PERIODS)  # the periods' rates, read every day
        self._anchor: Point | None = None
        self.last: Point | None = None

    def add(self, point: Point) -> Period | None:
        """Record a sample; return the period it closes, if any."""
        self.last = point
        anchor = self._anchor
        if anchor is None:
            self._anchor = point
            return None
        if point[0] - anchor[0] < MIN_PERIOD:
            return None
        period = make_period(anchor, point)
        self._anchor = point
        return period

    def push(self, period: Period) -> None:
        self._recent.append(period)
        self._rates.append(period.rate)

    def periods(self, last: int) -> list[Period]:
        recent = self._recent
        n = len(recent)
        return list(recent) if last >= n else list(islice(recent, n - last, n))

    def rates(self, last: int) -> list[float]:
        rates = self._rates
        n = len(rates)
        return list(rates) if last >= n else list(islice(rates, n - last, n))

    def __len__(self) -> int:
        return len(self._recent)
