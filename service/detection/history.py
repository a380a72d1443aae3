"""Per-account rolling state shared by the detectors: the open day-scale period and the recent periods."""

from __future__ import annotations

from array import array
from typing import Final, final

from service.detection.base import DAY, Period, Point
from service.detection.snapshot import SnapshotError, StateReader, StateWriter
from service.detection.stats import median, robust_scale

HISTORY_PERIODS: Final = 25  # the most any detector reads (rate_change)
MIN_PERIOD_DAYS: Final = 0.9  # a period closes once it spans this long; daily samples close one each
MIN_PERIOD: Final = MIN_PERIOD_DAYS * DAY
USUAL_PERIODS: Final = 7  # an account's usual rate is the median of its last week of periods


@final
class TimedCounts:
    """(time, count) pairs, oldest first, in one array of float64: a few hundred bytes for dozens of
    samples, where a list of tuples takes kilobytes. Counts are exact up to 2**53."""

    __slots__ = ("_values",)

    def __init__(self) -> None:
        self._values: array[float] = array("d")

    def __len__(self) -> int:
        return len(self._values) >> 1

    def append(self, at: float, count: int) -> None:
        values = self._values
        values.append(at)
        values.append(count)

    def time(self, index: int) -> float:
        return self._values[2 * index]

    def count(self, index: int) -> int:
        return int(self._values[2 * index + 1])

    def last_time(self) -> float:
        return self._values[-2]

    def tail(self, n: int) -> list[float]:
        """The last ``n`` pairs, flattened (time, count, time, count, ...): one C-level copy, then list
        reads, which compiled code does far faster than reading the array item by item."""
        return self._values[-2 * n :].tolist() if n > 0 else []

    def drop_first(self, n: int) -> None:
        del self._values[: 2 * n]

    def clear(self) -> None:
        del self._values[:]

    def save(self, out: StateWriter, start: int = 0) -> None:
        """The pairs from index ``start`` on."""
        out.numbers(self._values[2 * start :] if start else self._values)

    def load(self, state: StateReader, limit: int) -> None:
        values = state.numbers(2 * limit)
        if len(values) % 2:
            raise SnapshotError("snapshot holds half a sample")
        self._values = values


@final
class AccountHistory:
    """Turns samples at any spacing into periods of about a day or more, keeping the last few dozen.

    Periods follow each other (one ends where the next starts), so the recent ones are kept as their
    boundaries: times and counts in arrays of primitives, at most HISTORY_PERIODS + 1 of each (and each
    period's count precision, only once one is not 1). A reader gets Period objects built on demand;
    nothing per period stays boxed in memory.
    """

    __slots__ = (
        "_anchor",
        "_bounds",
        "_pushed",
        "_steps",
        "_usual",
        "_usual_of",
        "_usual_scale",
        "_usual_step",
        "last",
    )

    def __init__(self) -> None:
        self._bounds = TimedCounts()  # boundaries of the recent periods, oldest first
        self._steps: array[int] | None = None  # each period's count precision, at its end; None: all 1
        self._anchor: Point | None = None  # where the open period started
        self.last: Point | None = None
        self._pushed = 0  # periods pushed since the start
        self._usual = 0.0  # two floats, not a tuple: compiled, they take no object of their own
        self._usual_scale = 0.0
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
        return Period(
            anchor.at,
            point.at,
            anchor.followers,
            point.followers,
            max(anchor.step, point.step),
            point.following,
            anchor.following,
        )

    def push(self, period: Period) -> None:
        """Keep the period ``add`` just returned (after the detectors read the history without it)."""
        self._pushed += 1
        bounds = self._bounds
        if not len(bounds):
            bounds.append(period.start, period.followers - period.gain)
        bounds.append(period.end, period.followers)
        steps = self._steps
        if steps is None and period.step != 1:  # most counts are exact: their steps are not stored
            steps = self._steps = array("q", [1] * (len(bounds) - 1))
        if steps is not None:
            steps.append(period.step)
        if len(bounds) > HISTORY_PERIODS + 1:
            bounds.drop_first(1)
            if steps is not None:
                del steps[0]

    def periods(self, last: int) -> list[Period]:
        """The last ``last`` periods (at most HISTORY_PERIODS), oldest first."""
        n = min(last, len(self._bounds) - 1)
        if n <= 0:
            return []
        values = self._bounds.tail(n + 1)
        steps = self._steps[-n:].tolist() if self._steps is not None else [1] * n
        return [
            Period(values[2 * k], values[2 * k + 2], int(values[2 * k + 1]), int(values[2 * k + 3]), steps[k])
            for k in range(n)
        ]

    def periods_then(self, last: int, current: Period) -> list[Period]:
        """The last ``last`` periods, then ``current``: what a detector reads when a period closes."""
        periods = self.periods(last)
        periods.append(current)
        return periods

    def rates(self, last: int) -> list[float]:
        """The rates of the last ``last`` periods, oldest first (computed as Period computes them)."""
        n = min(last, len(self._bounds) - 1)
        if n <= 0:
            return []
        # Counts are whole numbers below 2**53, so their float difference is the exact integer gain.
        v = self._bounds.tail(n + 1)
        return [(v[2 * k + 3] - v[2 * k + 1]) / ((v[2 * k + 2] - v[2 * k]) / DAY) for k in range(n)]

    def usual(self, step: int, current: Period | None = None) -> tuple[float, float, int]:
        """The usual rate (median of the last USUAL_PERIODS rates, ``current``'s last when given), its
        robust scale, and how many rates it rests on.

        Burst reads it as a period closes (with that period), drop as the next one closes (without it): the
        same rates, so it is worked out once.
        """
        of = self._pushed + (0 if current is None else 1)
        if of != self._usual_of or step != self._usual_step:
            if current is None:
                rates = self.rates(USUAL_PERIODS)
            else:
                rates = self.rates(USUAL_PERIODS - 1)
                rates.append(current.rate)
            centre = median(rates) if rates else 0.0
            self._usual = centre
            self._usual_scale = robust_scale(rates, centre, step) if rates else 0.0
            self._usual_of = of
            self._usual_step = step
        return self._usual, self._usual_scale, min(of, USUAL_PERIODS)

    def __len__(self) -> int:
        return max(len(self._bounds) - 1, 0)

    def save(self, out: StateWriter) -> None:
        # The cached usual rate is not saved: it is recomputed from the same rates, to the same bits.
        out.integer(self._pushed)
        self._bounds.save(out)
        out.integers(self._steps if self._steps is not None else array("q"))
        save_point(out, self._anchor)
        save_point(out, self.last)

    def load(self, state: StateReader) -> None:
        self._pushed = state.integer()
        self._bounds.load(state, HISTORY_PERIODS + 1)
        steps = state.integers(HISTORY_PERIODS + 1)
        self._steps = steps if steps else None
        kept = len(self._bounds)
        if kept == 1 or (steps and len(steps) != kept):
            raise SnapshotError("snapshot history is inconsistent")
        self._anchor = load_point(state)
        self.last = load_point(state)
        self._usual_of = -1


def save_point(out: StateWriter, point: Point | None) -> None:
    out.flag(point is not None)
    if point is not None:
        out.number(point.at)
        out.integer(point.followers)
        out.optional_integer(point.following)
        out.integer(point.step)


def load_point(state: StateReader) -> Point | None:
    if not state.flag():
        return None
    return Point(state.number(), state.integer(), state.optional_integer(), state.integer())
