"""A step of followers (or stars) arriving within hours, told apart from an organic viral ramp.

A rise is judged against the account's own process (evidence.py): the excess over its usual rate, within
the hours it took, must be a gain that process makes implausible (odds beyond 1 in 10^7 with sub-daily
samples, 1 in 10^5 for one daily period). That is what the history, however short, supports: a repository
watched from its first hour is judged against a weak prior that an hour of its own growth outweighs, and the
summary says how little history the verdict rests on. Then the shape decides:

- *a step of inauthentic inflow*: the excess stops within six hours of its start and growth falls straight
  back to usual. Delivered followers come in a batch; nothing follows them. Warning, critical when the step
  is at least three days of usual growth and 1% of the count.
- *one-day step* (daily samples): reported as a warning as soon as the period shows it. If the next period
  shows a tail (still well above usual: an organic crowd fades over days), it becomes a viral ramp; if
  growth is straight back to usual, it stays a warning, saying that a one-day crowd (a TV appearance, a
  giveaway) can look the same in daily counts and samples within the day would tell them apart. Growth
  that was already well above usual in each of the two periods before (a quarter of the step or more) is
  no one-day step: organic attention and a change of pace build up over days, a delivery does not.
- *viral ramp*: the extra growth goes on after six hours, or decays over the next periods. Reported as
  information only: attention brings followers for days, and an account that went viral is not accused.
"""

from __future__ import annotations

import math
from array import array
from typing import Final, final

from service.detection.base import (
    BURST,
    DAY,
    Detector,
    Finding,
    Period,
    Point,
    Severity,
)
from service.detection.evidence import SPREAD_PERIODS, Process, newborn, odds, unproven
from service.detection.history import AccountHistory, TimedCounts
from service.detection.snapshot import SnapshotError, StateReader, StateWriter
from service.detection.stats import count, signed

HOUR: Final = 3_600.0
WINDOW: Final = 6 * HOUR  # a delivered step arrives within this
KEPT: Final = 2 * WINDOW  # the one sample kept from before the window must be at most this old
MAX_KEPT: Final = 800  # raw samples kept at most
TRIM_AT: Final = 4  # dead samples are cut off in batches of this many (each cut copies the window)
SUBDAILY_GAP: Final = 0.5 * DAY
# Sub-daily samples test a window at every sample (about 3,000 a month at 15-minute polls), hence odds
# beyond 1 in 10^7; a daily period is one test a day.
LOG_ALPHA: Final = math.log(1e-7)
LOG_ALPHA_DAY: Final = math.log(1e-5)
# The period after a one-day step still this unusual (and a quarter of the step): a tail. At 1 in 100,
# the spread fitted to a heavy-tailed account let an organic turn's next days pass for ordinary ones.
LOG_TAIL: Final = math.log(1e-1)
CHEAP_Z: Final = 4.0  # an excess within this many standard deviations is never tested exactly
RISE_OVER: Final = 0.1  # share of the peak hourly excess under which the rise counts as over
STEP_RELAPSE: Final = 0.25  # daily samples: the next period's excess, relative to the step's, for a tail
LEAD_PERIODS: Final = 2  # daily samples: periods before a step in which a lead-in (a rise under way) shows
FRESH_SHARPNESS: Final = (
    3.0  # a step inside an open burst: its hourly excess, in multiples of the pace before
)
MINUTE_DAYS: Final = 1.0 / 1_440
SHORT_HISTORY: Final = 7.0  # days: a verdict on less history says so
SHARPNESS: Final = 4.0  # a delivery's busiest hour brings this many times the usual hourly arrivals extra


class _Burst:
    __slots__ = (
        "last_high",
        "opened",
        "peak_hourly",
        "rate",
        "reported",
        "rested",
        "start",
        "start_followers",
        "surprise",
        "total",
        "usual_hourly",
    )

    def __init__(
        self, start: float, start_followers: int, total: float, rate: float, opened: float = 0.0
    ) -> None:
        self.start = start
        self.rate = rate  # the daily rate its excess is measured against
        self.opened = opened or start  # when the excess first crossed the threshold
        self.start_followers = start_followers
        self.total = total
        self.peak_hourly = 0.0
        self.last_high = start
        self.reported = False
        self.surprise = 0.0  # log odds of the excess under the account's own process, when it opened
        self.rested = 0.0  # days of history the verdict rests on
        self.usual_hourly = 0.0  # arrivals an hour the account's process expects

    def save(self, out: StateWriter) -> None:
        for value in (self.start, self.rate, self.opened, self.total, self.peak_hourly, self.last_high):
            out.number(value)
        out.number(self.surprise)
        out.number(self.rested)
        out.number(self.usual_hourly)
        out.integer(self.start_followers)
        out.flag(self.reported)

    @staticmethod
    def load(state: StateReader) -> _Burst:
        start, rate, opened, total = state.number(), state.number(), state.number(), state.number()
        burst = _Burst(start, 0, total, rate, opened)
        burst.opened = opened  # as saved, even when 0.0
        burst.peak_hourly = state.number()
        burst.last_high = state.number()
        burst.surprise = state.number()
        burst.rested = state.number()
        burst.usual_hourly = state.number()
        burst.start_followers = state.integer()
        burst.reported = state.flag()
        return burst


@final
class _DailyStep:
    """A one-day step on daily samples, while the next periods tell its shape."""

    __slots__ = (
        "end",
        "largest",
        "periods",
        "rate",
        "rested",
        "start",
        "start_followers",
        "surprise",
        "total",
    )

    def __init__(
        self, start: float, start_followers: int, end: float, total: float, surprise: float, rate: float
    ) -> None:
        self.start = start
        self.start_followers = start_followers
        self.end = end
        self.total = total
        self.largest = total
        self.periods = 1
        self.surprise = surprise
        self.rate = rate
        self.rested = 0.0  # days of history the verdict rests on

    @staticmethod
    def begin(period: Period, excess: float, surprise: float, process: Process) -> _DailyStep:
        step = _DailyStep(
            period.start, period.followers - period.gain, period.end, excess, surprise, process.rate
        )
        step.rested = process.days
        return step

    def extend(self, period: Period, excess: float) -> None:
        self.end = period.end
        self.total += excess
        self.largest = max(self.largest, excess)
        self.periods += 1

    def save(self, out: StateWriter) -> None:
        for value in (self.start, self.end, self.total, self.largest, self.surprise, self.rate, self.rested):
            out.number(value)
        out.integer(self.start_followers)
        out.integer(self.periods)

    @staticmethod
    def load(state: StateReader) -> _DailyStep:
        start, end, total, largest = state.number(), state.number(), state.number(), state.number()
        surprise, rate, rested = state.number(), state.number(), state.number()
        step = _DailyStep(start, state.integer(), end, total, surprise, rate)
        step.largest, step.rested, step.periods = largest, rested, state.integer()
        return step


@final
class Recent:
    """The raw samples of the last WINDOW (and the latest one before it, if at most KEPT old), and the
    rising minima of the window's counts less the usual growth: the sample from which the largest excess
    over the usual rate arrived is number ``lows[low_head]``.

    Arrays of primitives rather than lists or deques of tuples: one account holds a few dozen samples in
    a few hundred bytes. Samples before ``head`` are dead and cut off once TRIM_AT of them pile up;
    ``first`` numbers the sample at index 0, and the minima are kept as sample numbers.
    """

    __slots__ = ("first", "head", "low_head", "lows", "samples")

    def __init__(self) -> None:
        self.samples = TimedCounts()
        self.head = 0
        self.first = 0  # number of the sample at index 0, counted since the start
        self.lows: array[int] = array("q")
        self.low_head = 0

    def add(self, at: float, followers: int, rate: float) -> None:
        samples, lows = self.samples, self.lows
        samples.append(at, followers)
        level = followers - rate * at / DAY
        while len(lows) > self.low_head and self._level(lows[-1], rate) >= level:
            lows.pop()
        lows.append(self.first + len(samples) - 1)
        self._trim(at)

    def _level(self, number: int, rate: float) -> float:
        """The count of sample ``number`` less the usual growth up to it."""
        i = number - self.first
        return self.samples.count(i) - rate * self.samples.time(i) / DAY

    def rebase(self, rate: float) -> None:
        """The minima again, for a new usual rate (once a period)."""
        samples, first = self.samples, self.first
        lows: array[int] = array("q")
        for i in range(self.head, len(samples)):
            level = samples.count(i) - rate * samples.time(i) / DAY
            while len(lows) and self._level(lows[-1], rate) >= level:
                lows.pop()
            lows.append(first + i)
        self.lows = lows
        self.low_head = 0
        if len(samples):
            self._expire(samples.last_time() - WINDOW)

    def _trim(self, at: float) -> None:
        samples, oldest = self.samples, at - WINDOW
        n = len(samples)
        head = self.head
        while head + 1 < n and samples.time(head + 1) < oldest:
            head += 1  # samples[head] is now the latest sample before the window, or the oldest in it
        if samples.time(head) < oldest and samples.time(head) < at - KEPT:
            head += 1
        head = max(head, n - MAX_KEPT)
        if head >= TRIM_AT:
            samples.drop_first(head)
            self.first += head
            head = 0
        self.head = head
        self._expire(oldest)

    def _expire(self, oldest: float) -> None:
        lows, low_head, live = self.lows, self.low_head, self.first + self.head
        while lows[low_head] < live or self.samples.time(lows[low_head] - self.first) < oldest:
            low_head += 1  # never past the newest, which is inside the window
        if low_head >= TRIM_AT:
            del lows[:low_head]
            low_head = 0
        self.low_head = low_head

    def lowest(self) -> tuple[float, int]:
        """The sample from which the most excess over the usual rate has arrived."""
        i = self.lows[self.low_head] - self.first
        return self.samples.time(i), self.samples.count(i)

    def since(self, at: float) -> list[tuple[float, int]]:
        """The kept samples from ``at`` on, oldest first."""
        samples = self.samples
        return [
            (samples.time(i), samples.count(i))
            for i in range(self.head, len(samples))
            if samples.time(i) >= at
        ]

    def span_back(self, now: float, span: float) -> tuple[float, int] | None:
        """The latest kept sample at least ``span`` seconds before ``now``."""
        samples = self.samples
        for i in range(len(samples) - 1, self.head - 1, -1):
            if now - samples.time(i) >= span:
                return samples.time(i), samples.count(i)
        return None

    def save(self, out: StateWriter) -> None:
        out.integer(self.first + self.head)
        self.samples.save(out, self.head)
        out.integers(self.lows[self.low_head :])

    def load(self, state: StateReader) -> None:
        self.first = state.integer()
        self.head = 0
        self.samples.load(state, MAX_KEPT)
        self.lows = state.integers(MAX_KEPT)
        self.low_head = 0
        first, kept = self.first, len(self.samples)
        if not self.lows or any(not 0 <= low - first < kept for low in self.lows):
            raise SnapshotError("snapshot burst window is inconsistent")


class BurstDetector(Detector):
    def __init__(self, noun: str = "followers") -> None:
        super().__init__(BURST, per_sample=True, noun=noun)
        self._recent = Recent()
        self._process: Process | None = None  # fitted as each period closes; a prior before the first
        self._local: Process | None = None  # the same at the last period's rate, when that is the higher
        self._rate = 0.0  # its usual rate, which the window's minima are measured against
        self._burst: _Burst | None = None
        self._daily_step: _DailyStep | None = None
        self._after = 0.0  # a new burst must start after the last one ended

    def save(self, out: StateWriter) -> None:
        super().save(out)
        self._recent.save(out)
        save_process(out, self._process)
        save_process(out, self._local)
        out.number(self._rate)
        out.number(self._after)
        out.flag(self._burst is not None)
        if self._burst is not None:
            self._burst.save(out)
        out.flag(self._daily_step is not None)
        if self._daily_step is not None:
            self._daily_step.save(out)

    def load(self, state: StateReader) -> None:
        super().load(state)
        self._recent.load(state)
        self._process = load_process(state)
        self._local = load_process(state)
        self._rate, self._after = state.number(), state.number()
        self._burst = _Burst.load(state) if state.flag() else None
        self._daily_step = _DailyStep.load(state) if state.flag() else None

    @property
    def recent(self) -> Recent:
        """The raw samples of the last WINDOW (regular growth reads them as a period closes)."""
        return self._recent

    def observe(self, point: Point, period: Period | None, history: AccountHistory) -> list[Finding]:
        at = point.at
        recent = self._recent
        previous_at = recent.samples.last_time() if len(recent.samples) else None
        recent.add(at, point.followers, self._rate)
        findings: list[Finding] = []
        if previous_at is not None:
            if period is not None and (self._daily_step is not None or at - previous_at >= SUBDAILY_GAP):
                findings = self._daily(period, history)
            elif at - previous_at < SUBDAILY_GAP and (
                self._burst is not None or self._may_open(point, history)
            ):
                findings = self._subdaily(point, history)
        if period is not None:
            self._update(history, period)
        history.hold_noise = self._burst is not None
        return findings

    def _update(self, history: AccountHistory, period: Period) -> None:
        self._settle(history.process(period.step, period), (period.gain - history.pending()) / period.days)

    def _refit(self, history: AccountHistory, step: int) -> None:
        """After a step was left out of the account's own growth: its process without it."""
        if self._process is not None:
            latest = history.rates(1)
            self._settle(history.process(step), latest[0] if latest else 0.0)

    def _settle(self, process: Process, latest: float) -> None:
        self._process = process
        # An account in the tail of a crowd (a starter pack, a viral day) gains faster than its usual rate
        # for days: the last period's own growth is the yardstick while it is the higher.
        self._local = process.at_rate(latest) if latest > process.rate else None
        if process.rate != self._rate:
            self._rate = process.rate
            self._recent.rebase(process.rate)

    def _reference(self, history: AccountHistory, at: float, followers: int, exact: bool = True) -> Process:
        """The account's process as it stood before a rise that began at ``at`` from ``followers`` (for a
        cheap look, not ``exact``, the current one will do)."""
        process = self._process
        if process is not None:
            # A period that closed during the rise has the rise in it: judge by the periods before it.
            if exact and at < history.closed_at():
                return history.process_before_last()
            return self._local if self._local is not None else process
        first = history.started()  # a new account: a prior, and what it gained before the rise
        if first is None or at <= first.at:
            return newborn(followers, 0, 0.0)
        return newborn(first.followers, followers - first.followers, (at - first.at) / DAY, history.noise())

    def _may_open(self, point: Point, history: AccountHistory) -> bool:
        """Cheap bound, checked on every sample: the largest excess over the usual rate that the window
        holds is within CHEAP_Z standard deviations of what the account's process gives in that time."""
        low_at, low_count = self._recent.lowest()
        days = (point.at - low_at) / DAY
        if days <= 0.0:
            return False
        process = self._reference(history, low_at, low_count, exact=False)
        excess = point.followers - low_count - process.rate * days
        return excess > 0.0 and excess >= 2.0 * point.step and not process.plausible(excess, days, CHEAP_Z)

    @staticmethod
    def _excess(since: tuple[float, int], now: tuple[float, int], rate: float) -> float:
        return (now[1] - since[1]) - rate * (now[0] - since[0]) / DAY

    # Sub-daily samples: watch the last six hours.
    def _subdaily(self, point: Point, history: AccountHistory) -> list[Finding]:
        now = (point.at, point.followers)
        burst = self._burst
        if burst is None:
            self._burst = self._rise(point, now, max(now[0] - WINDOW, self._after), history, None)
            return []
        fresh = self._fresh_step(burst, point, now, history)
        if fresh is not None:
            # A sharp step on top of a slower excess already being followed (an organic surge, a viral
            # tail): follow the step from here, measured against the pace before it.
            self._burst = fresh
            return [self._ended(self._viral(burst, point), burst.last_high)] if burst.reported else []
        rate = burst.rate
        burst.peak_hourly = max(burst.peak_hourly, self._excess_per_hour(now, HOUR, rate))
        burst.total = max(burst.total, self._excess((burst.start, burst.start_followers), now, rate))
        # Two quiet hours, not one: Poisson noise in a small account's hourly gain must not end a viral ramp
        # (and without two hours of samples since the window began, as after an outage, it cannot end).
        quiet = self._excess_per_hour(now, 2 * HOUR, rate, math.inf)
        if quiet >= RISE_OVER * burst.peak_hourly:
            burst.last_high = now[0]
            # Timed from when the burst was noticed: the start estimate can sit hours early on a slow account.
            if not burst.reported and now[0] - burst.opened > WINDOW:
                burst.reported = True
                return [self._viral(burst, point)]
            return []
        self._burst = None
        self._after = now[0]
        self.score = 0.0
        if burst.reported:
            return [self._ended(self._viral(burst, point), now[0])]
        if not _sharp(burst):
            return []  # a busy few hours (the time of day, a lively hour), not a delivery
        history.exclude(burst.total, burst.start)
        self._refit(history, point.step)
        return [self._ended(self._step(burst, point), burst.last_high)]

    def _rise(
        self, point: Point, now: tuple[float, int], since: float, history: AccountHistory, pace: float | None
    ) -> _Burst | None:
        """The burst the samples from ``since`` on show above the usual rate (or ``pace``), if the account's
        own process makes their excess implausible."""
        window = self._recent.since(since)
        if not window:
            return None
        process = self._reference(history, window[0][0], window[0][1])
        rate = process.rate if pace is None else pace
        excesses = [self._excess(then, now, rate) for then in window]
        best = max(excesses)
        if best < 2.0 * point.step:
            return None
        reference = process if pace is None else process.at_rate(pace)
        # The rise began at the latest sample from which most of the excess has arrived (not all: a
        # diurnal trough before it would otherwise pull the start hours back). Judged over the window
        # of the largest excess and over the rise alone, whichever is the more surprising.
        pairs = zip(reversed(window), reversed(excesses), strict=True)
        start = next(then for then, excess in pairs if excess >= 0.75 * best)
        first = window[excesses.index(best)]
        surprise = min(
            reference.log_surprise(best, max((now[0] - first[0]) / DAY, MINUTE_DAYS)),
            reference.log_surprise(
                self._excess(start, now, rate), max((now[0] - start[0]) / DAY, MINUTE_DAYS)
            ),
        )
        if surprise >= LOG_ALPHA:
            return None
        burst = _Burst(start[0], start[1], best, rate, opened=now[0])
        burst.peak_hourly = self._peak_hourly(window, rate)
        burst.surprise = surprise
        first_seen = history.started()  # a new account: its history runs up to the rise
        burst.rested = process.days if first_seen is None else (start[0] - first_seen.at) / DAY
        burst.usual_hourly = max(rate, process.arrivals()) / 24.0
        return burst

    def _fresh_step(
        self, burst: _Burst, point: Point, now: tuple[float, int], history: AccountHistory
    ) -> _Burst | None:
        """A new rise within the last WINDOW, implausible against the pace the open burst kept before it,
        with its last hour FRESH_SHARPNESS times steeper than that pace."""
        anchor = self._recent.span_back(now[0], WINDOW)
        if anchor is None or anchor[0] - burst.start < 2 * HOUR:
            return None  # the open burst is too young to have a pace of its own
        pace = max((anchor[1] - burst.start_followers) / (anchor[0] - burst.start) * DAY, self._rate)
        fresh = self._rise(point, now, anchor[0], history, pace)
        if fresh is None or fresh.peak_hourly < FRESH_SHARPNESS * pace / 24.0:
            return None
        return fresh

    @staticmethod
    def _peak_hourly(window: list[tuple[float, int]], rate: float) -> float:
        """The largest excess per hour over any span of about an hour (at least 45 minutes: hourly polls
        drift by a minute or two) in the window."""
        peak = 0.0
        j = 0
        for i in range(len(window)):
            while j < len(window) and window[j][0] - window[i][0] < 0.75 * HOUR:
                j += 1
            if j == len(window):
                break
            then, now = window[i], window[j]
            peak = max(peak, BurstDetector._excess(then, now, rate) / ((now[0] - then[0]) / HOUR))
        return peak

    def _excess_per_hour(
        self, now: tuple[float, int], span: float, rate: float, unknown: float = 0.0
    ) -> float:
        """Excess per hour over the last ``span`` (or the shortest longer span the samples allow);
        ``unknown`` when the samples do not reach that far back."""
        then = self._recent.span_back(now[0], span)
        if then is None:
            return unknown
        return self._excess(then, now, rate) / ((now[0] - then[0]) / HOUR)

    # Daily samples: one period raises the step, the next ones tell its shape.
    def _daily(self, period: Period, history: AccountHistory) -> list[Finding]:
        before = self._reference(history, period.start, period.followers - period.gain)
        process = unproven(before, period.followers)
        excess = period.gain - process.rate * period.days
        step = self._daily_step
        if step is not None:
            return [self._daily_shape(step, period, process, excess, history)]
        rounding = period.step if period.step > 1 else 0  # a rounded count may be off by a step
        if excess - rounding <= 0.0 or process.plausible(excess - rounding, period.days, CHEAP_Z):
            return []
        if period.gain - rounding <= _busiest(history) * period.days:
            return []  # the account's own busiest day of the last month brought as much: its nature
        if self._led_up(history, excess / period.days):
            return []  # growth already rising over the days before: an organic turn or crowd building up
        surprise = process.log_surprise(excess - rounding, period.days)
        if surprise >= LOG_ALPHA_DAY:
            return []
        step = self._daily_step = _DailyStep.begin(period, excess, surprise, process)
        history.exclude(excess, period.end)
        return [self._one_day_step(step, None)]

    def _led_up(self, history: AccountHistory, excess: float) -> bool:
        """A rise already under way: each of the LEAD_PERIODS periods before brought at least STEP_RELAPSE
        of this daily excess above the usual rate. Organic attention and a change of the account's pace
        build up over days, as a crowd's tail fades over days after; a delivery comes from nowhere."""
        process = self._process
        rates = history.rates(LEAD_PERIODS)
        if process is None or len(rates) < LEAD_PERIODS:
            return False
        return min(rates) - process.rate >= STEP_RELAPSE * excess

    def _daily_shape(
        self, step: _DailyStep, period: Period, process: Process, excess: float, history: AccountHistory
    ) -> Finding:
        """A period after a one-day step. Still well above usual: a delivery that straddled a sample shows
        in two periods, a third makes it a tail, as an organic crowd leaves: a viral ramp."""
        elevated = (
            excess >= STEP_RELAPSE * step.largest and process.log_surprise(excess, period.days) < LOG_TAIL
        )
        if not elevated:
            self._daily_step = None
            # Left out while its shape was judged; back in the account's own growth now, as daily counts
            # cannot tell it from a one-day crowd: leaving an organic busy day out kept the spread too
            # narrow, and the account's next busy day was flagged again.
            history.exclude(-step.total, step.start)
            return self._ended(self._one_day_step(step, excess), step.end)
        if step.periods == 1:
            step.extend(period, excess)
            history.exclude(excess, period.end)
            return self._one_day_step(step, None)
        self._daily_step = None
        history.exclude(-step.total, step.start)  # organic after all: part of the account's own growth
        burst = _Burst(step.start, step.start_followers, step.total + excess, process.rate)
        point = Point(period.end, period.followers, period.following, period.step)
        return self._ended(self._viral(burst, point), period.end)

    def _step(self, burst: _Burst, point: Point) -> Finding:
        usual = max(self._rate, 1.0)
        share = burst.total / max(burst.start_followers, 1)
        self.score = _score(burst.surprise)
        severity = Severity.CRITICAL if burst.total >= 3 * usual and share >= 0.01 else Severity.WARNING
        # A step on top of a faster pace already under way (for a new account, its rate so far is usual).
        surge = self._process is not None and burst.rate != self._rate
        before = (
            f"the {_rate(burst.rate)}/day it was gaining just before (usually {_rate(self._rate)}/day)"
            if surge
            else f"the usual {_rate(burst.rate)}/day"
        )
        summary = (
            f"inauthentic inflow: {signed(burst.total)} {self.noun} above {before} arrived "
            f"{_within(burst.last_high - burst.start)} and growth went straight back to "
            f"{'that pace' if surge else 'usual'}; {odds(burst.surprise)} under the account's own "
            f"growth{_rested(burst.rested)}, consistent with bought {self.noun}"
        )
        return Finding(BURST, burst.start, self.score, severity, summary)

    def _one_day_step(self, step: _DailyStep, after: float | None) -> Finding:
        self.score = _score(step.surprise)
        share = step.total / max(step.start_followers, 1)
        usual = max(step.rate, 1.0)
        severity = Severity.CRITICAL if step.total >= 3 * usual and share >= 0.01 else Severity.WARNING
        within = "in one period" if step.periods == 1 else "in two periods (a delivery across a sample)"
        then = (
            "; the next period will show whether a tail follows (an organic crowd fades over days)"
            if after is None
            else f", then {signed(after)} above usual the next period: no tail"
        )
        summary = (
            f"one-day step: {signed(step.total)} {self.noun} above the usual {_rate(step.rate)}/day {within} "
            f"({odds(step.surprise)} under the account's own growth{_rested(step.rested)}){then}; "
            f"consistent with bought {self.noun}, though a one-day crowd (a TV appearance, a giveaway) "
            "looks the same in daily counts: samples within the day would show whether it arrived at once"
        )
        return Finding(BURST, step.start, self.score, severity, summary)

    def _viral(self, burst: _Burst, point: Point) -> Finding:
        self.score = 0.3
        summary = (
            f"viral ramp: {signed(burst.total)} {self.noun} above the usual {_rate(burst.rate)}/day since "
            "the start, still arriving or decaying slowly as organic attention does "
            f"(now {count(point.followers)})"
        )
        return Finding(BURST, burst.start, self.score, Severity.INFO, summary)

    @staticmethod
    def _ended(finding: Finding, at: float) -> Finding:
        finding.ended_at = at
        return finding


def _busiest(history: AccountHistory) -> float:
    """The fastest growth of the account's own last SPREAD_PERIODS periods (inauthentic inflow left out).
    Of n days alike, the next is the busiest of all n + 1 with odds of only 1 in n + 1, whatever the tail
    of their distribution: a gain no larger than one the account has had within the month is not
    surprising however heavy-tailed its days are, which a fitted tail can miss."""
    return max(history.rates(SPREAD_PERIODS), default=-math.inf)


def _sharp(burst: _Burst) -> bool:
    """A delivery: most of it arrived within WINDOW, and its busiest hour brought at least SHARPNESS times
    the account's usual hourly arrivals on top of them. The busiest hours of an ordinary day (its peak
    time, a lively hour) stay well under that, and a busy day brings its extra over many hours."""
    return burst.last_high - burst.start <= WINDOW and burst.peak_hourly >= SHARPNESS * burst.usual_hourly


def _score(surprise: float) -> float:
    """0.5 at odds of 1 in 10^5, 1.0 from 1 in 10^15."""
    return min(1.0, 0.25 + 0.05 * (-surprise / math.log(10.0)))


def _rate(value: float) -> str:
    """A usual rate as a sentence gives it: +768, +0.4 (small rates keep a decimal)."""
    return f"{value:+.1f}" if abs(value) < 10 else signed(value)


def _within(seconds: float) -> str:
    if seconds <= 20 * 60:
        return f"within {max(round(seconds / 60), 1)} minutes" if seconds > 60 else "at once"
    hours = seconds / HOUR
    return f"within {round(hours)} hours" if hours >= 1.5 else "within an hour"


def _rested(days: float) -> str:
    """How little history a verdict rests on, when that matters."""
    if days >= SHORT_HISTORY:
        return ""
    if days < 1.0:
        return f", judged on {max(round(days * 24), 0)} hours of history"
    return f", judged on {round(days)} days of history"


def save_process(out: StateWriter, process: Process | None) -> None:
    out.flag(process is not None)
    if process is not None:
        for value in (process.rate, process.spread, process.noise, process.days, process.certainty):
            out.number(value)
        out.number(process.measured)
        out.number(process.typical)
        out.integer(process.periods)


def load_process(state: StateReader) -> Process | None:
    if not state.flag():
        return None
    rate, spread, noise, days, certainty, measured, typical = (state.number() for _ in range(7))
    return Process(rate, spread, noise, days, state.integer(), certainty, measured, typical)
