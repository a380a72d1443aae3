"""Per-account rolling state shared by the detectors: the open day-scale period and the recent periods."""

from __future__ import annotations

import math
from array import array
from typing import Final, final

from service.detection.base import DAY, Period, Point
from service.detection.evidence import (
    FIT_PERIODS,
    PRIOR_RATE,
    PRIOR_SHARE,
    SPREAD_PERIODS,
    Process,
    fit,
    newborn,
)
from service.detection.snapshot import SnapshotError, StateReader, StateWriter
from service.detection.stats import median, robust_scale

HISTORY_PERIODS: Final = 25  # the most any detector reads (the spread of the account's process)
MIN_PERIOD_DAYS: Final = 0.9  # a period closes once it spans this long; daily samples close one each
MIN_PERIOD: Final = MIN_PERIOD_DAYS * DAY
USUAL_PERIODS: Final = 7  # an account's usual rate is the median of its last week of periods
SUB_DAILY: Final = 0.5  # days: samples closer than this measure the noise of minutes to hours
NOISE_HALF_LIFE: Final = 3.0  # days over which that noise is measured
NOISE_SETTLED: Final = 12.0  # differences (decayed) before it is used at all
# A difference beyond this many times the noise measured so far is a jump (a burst being judged), not
# noise: it counts as NOISE_BUMP times it, so that a lasting change of the noise still shows, slowly.
NOISE_REJECT: Final = 100.0
NOISE_BUMP: Final = 4.0
NOISE_SEED: Final = 2.0  # before any difference, the noise is Poisson at the prior rate, worth this many


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
        "_earlier",
        "_earlier_of",
        "_excluded",
        "_last_gap",
        "_last_rate",
        "_noise_count",
        "_noise_sum",
        "_noise_weight",
        "_pending",
        "_process",
        "_process_of",
        "_pushed",
        "_rates",
        "_steps",
        "_usual",
        "_usual_of",
        "_usual_scale",
        "_usual_step",
        "hold_noise",
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
        # The noise of the gain over minutes to hours, from successive differences of sub-daily rates:
        # a difference of two neighbouring rates has variance noise * (1/gap1 + 1/gap2), and a slow change
        # of level (a busy day, the time of day) hardly moves it. Exponentially decayed sums.
        self._noise_sum = 0.0
        self._noise_weight = 0.0
        self._noise_count = 0.0
        self._last_rate = 0.0  # gain per day over the latest gap
        self._last_gap = 0.0  # days; 0 when the latest gap was not sub-daily
        self.hold_noise = False  # set while a burst is being followed: its samples are not noise
        self._process: Process | None = None
        self._process_of = -1
        self._earlier: Process | None = None
        self._earlier_of = -1
        # Gains already reported as inauthentic inflow are not the account's own growth: each period's
        # such gain (made only once there is one), and the open period's.
        self._excluded: array[float] | None = None
        self._pending = 0.0
        # The closed periods' rates, worked out once while the detectors read them as a period closes
        # (and dropped when it is pushed, so nothing boxed stays between periods).
        self._rates: list[float] | None = None

    def exclude(self, gain: float, at: float) -> None:
        """Leave ``gain``, which arrived from ``at`` on, out of the account's own growth (its period's, the
        open one or the last closed one); a negative gain puts it back."""
        excluded = self._excluded
        anchor = self._anchor
        self._process = self._earlier = None  # the fits no longer hold
        self._rates = None
        if anchor is None or at >= anchor.at or self._pushed == 0:
            self._pending += gain
        elif excluded is not None and len(excluded):
            excluded[-1] += gain
        elif len(self._bounds) > 1:
            self._excluded = array("d", [0.0] * (len(self._bounds) - 1))
            self._excluded[-1] = gain

    def add(self, point: Point) -> Period | None:
        """Record a sample; return the period it closes, if any."""
        last = self.last
        if last is not None:
            self._measure_noise((point.at - last.at) / DAY, point.followers - last.followers, last.followers)
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

    def _measure_noise(self, gap: float, gain: int, followers: int) -> None:
        if gap >= SUB_DAILY:
            self._last_gap = 0.0
            return
        rate = gain / gap
        previous = self._last_gap
        if previous > 0.0 and 0.5 * previous <= gap <= 2.0 * previous and not self.hold_noise:
            weight = 1.0 / gap + 1.0 / previous
            if self._noise_weight == 0.0:
                self._noise_sum = NOISE_SEED * weight * max(PRIOR_RATE, PRIOR_SHARE * followers)
                self._noise_weight = NOISE_SEED * weight
            # One jump (a delivered batch, from the first hours on) must not set the noise.
            value = (rate - self._last_rate) ** 2
            usual = weight * self._noise_sum / self._noise_weight
            if value > NOISE_REJECT * usual:
                value = NOISE_BUMP * usual
            decay = math.exp(-gap * math.log(2.0) / NOISE_HALF_LIFE)
            self._noise_sum = self._noise_sum * decay + value
            self._noise_weight = self._noise_weight * decay + weight
            self._noise_count = self._noise_count * decay + 1.0
        self._last_rate = rate
        self._last_gap = gap

    def noise(self) -> tuple[float, float]:
        """Variance per day of the gain over minutes to hours (0 until enough sub-daily samples say), and
        how many differences (decayed) it rests on."""
        if self._noise_count < NOISE_SETTLED:
            return 0.0, 0.0
        return self._noise_sum / self._noise_weight, self._noise_count

    def sample_gap(self) -> float:
        """Days between the latest two samples when sub-daily (the scale the noise is measured at), else 0."""
        return self._last_gap

    def pending(self) -> float:
        """Gain of the open period already reported as inauthentic inflow."""
        return self._pending

    def closed_at(self) -> float:
        """When the latest period closed (its end; the start of the open period)."""
        return self._anchor.at if self._anchor is not None and self._pushed else -math.inf

    def started(self) -> Point | None:
        """The first sample, while no period has closed yet (a new account)."""
        return self._anchor if self._pushed == 0 else None

    def process(self, step: int, current: Period | None = None) -> Process:
        """The account's own growth process (evidence.py) from its last FIT_PERIODS periods, ``current``'s
        last when given: worked out once per period."""
        of = self._pushed + (0 if current is None else 1)
        cached = self._process
        if cached is not None and of == self._process_of:
            return cached
        # The fit with this period (burst reads it as the period closes) is the fit without the next one
        # (drop reads it as the next closes): kept for that, unless an exclusion came in between.
        earlier = self._earlier
        if earlier is not None and of == self._earlier_of:
            return earlier
        rates = self.rates(SPREAD_PERIODS - (0 if current is None else 1))
        days = self._span(min(len(rates), FIT_PERIODS - (0 if current is None else 1)))
        followers = self.last.followers if self.last is not None else 0
        if current is not None:
            rates.append((current.gain - self._pending) / current.days)
            days += current.days
            followers = current.followers
        noise, measured = self.noise()
        made = fit(rates, days, followers, noise, measured, step) if rates else newborn(followers, 0, 0.0)
        if cached is not None and self._process_of > self._earlier_of:
            self._earlier, self._earlier_of = cached, self._process_of
        self._process = made
        self._process_of = of
        return made

    def process_before_last(self) -> Process:
        """The process as it stood before the latest period closed (not cached: needed only when a rise
        under way as a period closed is judged)."""
        rates = self._all_rates()[-SPREAD_PERIODS - 1 : -1]
        days = self._span(min(len(rates), FIT_PERIODS) + 1) - self._span(1)
        if not rates:
            first = self._bounds
            return newborn(first.count(0) if len(first) else 0, 0, 0.0)
        noise, measured = self.noise()
        return fit(rates, days, self._bounds.count(len(self._bounds) - 2), noise, measured, 1)

    def _span(self, periods: int) -> float:
        """Days covered by the last ``periods`` periods."""
        bounds = self._bounds
        if periods <= 0 or len(bounds) < 2:
            return 0.0
        return (bounds.time(len(bounds) - 1) - bounds.time(len(bounds) - 1 - periods)) / DAY

    def push(self, period: Period) -> None:
        """Keep the period ``add`` just returned (after the detectors read the history without it)."""
        self._pushed += 1
        self._rates = None
        bounds = self._bounds
        if not len(bounds):
            bounds.append(period.start, period.followers - period.gain)
        bounds.append(period.end, period.followers)
        steps = self._steps
        if steps is None and period.step != 1:  # most counts are exact: their steps are not stored
            steps = self._steps = array("q", [1] * (len(bounds) - 1))
        if steps is not None:
            steps.append(period.step)
        excluded = self._excluded
        if excluded is None and self._pending != 0.0:
            excluded = self._excluded = array("d", [0.0] * (len(bounds) - 2))
        if excluded is not None:
            excluded.append(self._pending)
        self._pending = 0.0
        if len(bounds) > HISTORY_PERIODS + 1:
            bounds.drop_first(1)
            if steps is not None:
                del steps[0]
            if excluded is not None:
                del excluded[0]

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
        """The rates of the account's own growth in the last ``last`` periods, oldest first (computed as
        Period computes them, less any gain reported as inauthentic inflow)."""
        rates = self._rates
        if rates is None:
            rates = self._rates = self._all_rates()
        return rates[-last:] if 0 < last < len(rates) else (rates[:] if last > 0 else [])

    def raw_rates(self, last: int) -> list[float]:
        """The rates of the last ``last`` periods as counted, inauthentic inflow included."""
        if self._excluded is None:
            return self.rates(last)
        n = min(last, len(self._bounds) - 1)
        v = self._bounds.tail(n + 1) if n > 0 else []
        return [(v[2 * k + 3] - v[2 * k + 1]) / ((v[2 * k + 2] - v[2 * k]) / DAY) for k in range(max(n, 0))]

    def _all_rates(self) -> list[float]:
        n = len(self._bounds) - 1
        if n <= 0:
            return []
        # Counts are whole numbers below 2**53, so their float difference is the exact integer gain.
        v = self._bounds.tail(n + 1)
        excluded = self._excluded
        if excluded is None:
            return [(v[2 * k + 3] - v[2 * k + 1]) / ((v[2 * k + 2] - v[2 * k]) / DAY) for k in range(n)]
        e = excluded[-n:].tolist()
        return [(v[2 * k + 3] - v[2 * k + 1] - e[k]) / ((v[2 * k + 2] - v[2 * k]) / DAY) for k in range(n)]

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
                rates.append((current.gain - self._pending) / current.days)
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
        for value in (
            self._noise_sum,
            self._noise_weight,
            self._noise_count,
            self._last_rate,
            self._last_gap,
        ):
            out.number(value)
        out.number(self._pending)
        out.flag(self.hold_noise)
        out.numbers(self._excluded if self._excluded is not None else array("d"))
        # The fits are cached within a period while the noise moves on: saved, so that a restored history
        # answers with the very fit the original would have.
        out.integer(self._process_of)
        _save_process(out, self._process)
        out.integer(self._earlier_of)
        _save_process(out, self._earlier)

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
        self._noise_sum, self._noise_weight, self._noise_count = (
            state.number(),
            state.number(),
            state.number(),
        )
        self._last_rate, self._last_gap = state.number(), state.number()
        self._pending = state.number()
        self.hold_noise = state.flag()
        excluded = state.numbers(HISTORY_PERIODS)
        self._excluded = excluded if excluded else None
        if excluded and len(excluded) != len(self._bounds) - 1:
            raise SnapshotError("snapshot history is inconsistent")
        self._usual_of = -1
        self._process_of = state.integer()
        self._process = _load_process(state)
        self._earlier_of = state.integer()
        self._earlier = _load_process(state)
        self._rates = None


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


def _save_process(out: StateWriter, process: Process | None) -> None:
    out.flag(process is not None)
    if process is not None:
        for value in (process.rate, process.spread, process.noise, process.days, process.certainty):
            out.number(value)
        for value in (process.measured, process.typical, process.downside):
            out.number(value)
        out.integer(process.periods)


def _load_process(state: StateReader) -> Process | None:
    if not state.flag():
        return None
    rate, spread, noise, days, certainty = (state.number() for _ in range(5))
    measured, typical, downside = (state.number() for _ in range(3))
    return Process(rate, spread, noise, days, state.integer(), certainty, measured, typical, downside)
