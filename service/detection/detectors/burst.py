"""A step of followers arriving within hours, told apart from an organic viral ramp.

The excess is the gain above the account's usual rate (median of its last week of periods). A burst opens
when more than half a day of usual growth plus 1.5 of its daily standard deviations arrive in at most six
hours (sub-daily samples) or in one period (daily samples). Then its shape decides:

- *bought step*: the excess stops within six hours of its start and growth falls straight back to usual.
  Bought followers are delivered in a batch; nothing follows them.
- *one-day step* (daily samples): the next period is back to within a quarter of the excess. A bought batch
  looks like this, and so does a video that drew a crowd for one day; daily samples cannot tell them apart,
  so it is reported as information.
- *viral ramp*: the extra growth goes on after six hours, or decays over the next periods. Reported as
  information only: attention brings followers for days, and an account that went viral is not accused.
"""

from __future__ import annotations

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
    load_period,
    save_period,
)
from service.detection.history import AccountHistory, TimedCounts
from service.detection.snapshot import SnapshotError, StateReader, StateWriter
from service.detection.stats import count, signed

HOUR: Final = 3_600.0
WINDOW: Final = 6 * HOUR  # a bought step is delivered within this
KEPT: Final = 2 * WINDOW  # the one sample kept from before the window must be at most this old
MAX_KEPT: Final = 800  # raw samples kept at most
TRIM_AT: Final = 8  # dead samples are cut off in batches of this many (each cut copies the window)
SUBDAILY_GAP: Final = 0.5 * DAY
MIN_BASELINE_PERIODS: Final = 7  # a week of history before the usual rate is trusted
MIN_STEP: Final = (
    50.0  # followers: below this a step is noise for small accounts (packages sell by the hundred)
)
RISE_OVER: Final = 0.1  # share of the peak hourly excess under which the rise counts as over
STEP_RELAPSE: Final = 0.25  # daily samples: the next period's excess, relative to the burst's, for a step
FRESH_SHARPNESS: Final = (
    3.0  # a step inside an open burst: its hourly excess, in multiples of the pace before
)


class _Burst:
    __slots__ = (
        "last_high",
        "opened",
        "peak_hourly",
        "rate",
        "reported",
        "start",
        "start_followers",
        "total",
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

    def save(self, out: StateWriter) -> None:
        for value in (self.start, self.rate, self.opened, self.total, self.peak_hourly, self.last_high):
            out.number(value)
        out.integer(self.start_followers)
        out.flag(self.reported)

    @staticmethod
    def load(state: StateReader) -> _Burst:
        start, rate, opened, total = state.number(), state.number(), state.number(), state.number()
        burst = _Burst(start, 0, total, rate, opened)
        burst.opened = opened  # as saved, even when 0.0
        burst.peak_hourly = state.number()
        burst.last_high = state.number()
        burst.start_followers = state.integer()
        burst.reported = state.flag()
        return burst


@final
class _Recent:
    """The raw samples of the last WINDOW (and the latest one before it, if at most KEPT old), and the
    rising minima of the last WINDOW: the lowest count the window has seen is that of sample number
    ``lows[low_head]``.

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

    def add(self, at: float, followers: int) -> None:
        samples, lows = self.samples, self.lows
        samples.append(at, followers)
        first = self.first
        while len(lows) > self.low_head and samples.count(lows[-1] - first) >= followers:
            lows.pop()
        lows.append(first + len(samples) - 1)
        self._trim(at)

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
        lows, low_head, live = self.lows, self.low_head, self.first + head
        while lows[low_head] < live or samples.time(lows[low_head] - self.first) < oldest:
            low_head += 1  # never past the newest, which is inside the window
        if low_head >= TRIM_AT:
            del lows[:low_head]
            low_head = 0
        self.low_head = low_head

    def lowest(self) -> int:
        return self.samples.count(self.lows[self.low_head] - self.first)

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
    def __init__(self) -> None:
        super().__init__(BURST, per_sample=True)
        self._recent = _Recent()
        self._rate = 0.0  # usual gain per day
        self._sd = 0.0  # usual day-to-day standard deviation
        self._ready = False
        self._burst: _Burst | None = None
        self._daily_candidate: tuple[Period, float] | None = None  # (period, excess per day)
        self._after = 0.0  # a new burst must start after the last one ended
        self._shrinking = 0.0
        self._floor = MIN_STEP  # what _bounds gives before the first baseline

    def save(self, out: StateWriter) -> None:
        super().save(out)
        self._recent.save(out)
        for value in (self._rate, self._sd, self._after, self._shrinking, self._floor):
            out.number(value)
        out.flag(self._ready)
        out.flag(self._burst is not None)
        if self._burst is not None:
            self._burst.save(out)
        candidate = self._daily_candidate
        out.flag(candidate is not None)
        if candidate is not None:
            save_period(out, candidate[0])
            out.number(candidate[1])

    def load(self, state: StateReader) -> None:
        super().load(state)
        self._recent.load(state)
        self._rate, self._sd, self._after = state.number(), state.number(), state.number()
        self._shrinking, self._floor = state.number(), state.number()
        self._ready = state.flag()
        self._burst = _Burst.load(state) if state.flag() else None
        self._daily_candidate = (load_period(state), state.number()) if state.flag() else None

    def observe(self, point: Point, period: Period | None, history: AccountHistory) -> list[Finding]:
        at = point.at
        recent = self._recent
        previous_at = recent.samples.last_time() if len(recent.samples) else None
        recent.add(at, point.followers)
        findings: list[Finding] = []
        if self._ready and previous_at is not None:
            if at - previous_at >= SUBDAILY_GAP:
                findings = self._daily(period) if period is not None else []
            elif self._burst is not None or self._may_open(point):
                findings = self._subdaily(point)
        if period is not None:
            self._update_baseline(history, period)
        return findings

    def _may_open(self, point: Point) -> bool:
        """Cheap bound, checked on every sample: no excess can beat the rise above the window's lowest
        count (plus, for a shrinking account, the loss it was expected to make)."""
        recent = self._recent
        bound = point.followers - recent.lowest() + self._shrinking
        return bound >= self._floor and bound >= 10.0 * point.step  # bound >= self._threshold(step)

    def _update_baseline(self, history: AccountHistory, period: Period) -> None:
        rate, sd, periods = history.usual(period.step, period)
        if periods < MIN_BASELINE_PERIODS:
            return
        self._rate = rate
        self._sd = sd
        self._ready = True
        self._bounds()

    def _bounds(self) -> None:
        rate = self._rate
        self._shrinking = -rate * WINDOW / DAY if rate < 0 else 0.0
        self._floor = max(0.5 * max(rate, 0.0) + 1.5 * self._sd, MIN_STEP)  # _threshold without the step

    def _threshold(self, step: int) -> float:
        # The daily sd overstates the noise of a few hours; half of it, three times over, is still safe.
        return max(0.5 * max(self._rate, 0.0) + 1.5 * self._sd, 10.0 * step, MIN_STEP)

    @staticmethod
    def _excess(since: tuple[float, int], now: tuple[float, int], rate: float) -> float:
        return (now[1] - since[1]) - rate * (now[0] - since[0]) / DAY

    # Sub-daily samples: watch the last six hours.
    def _subdaily(self, point: Point) -> list[Finding]:
        now = (point.at, point.followers)
        burst = self._burst
        if burst is None:
            return self._open_subdaily(point, now)
        fresh = self._fresh_step(burst, point, now)
        if fresh is not None:
            # A sharp step on top of a slower excess already being followed (an organic surge, a viral
            # tail): follow the step from here, measured against the pace before it.
            self._burst = fresh
            return [self._ended(self._viral(burst, point), burst.last_high)] if burst.reported else []
        rate = burst.rate
        burst.peak_hourly = max(burst.peak_hourly, self._excess_per_hour(now, HOUR, rate))
        burst.total = max(burst.total, self._excess((burst.start, burst.start_followers), now, rate))
        # Two quiet hours, not one: Poisson noise in a small account's hourly gain must not end a viral ramp.
        if self._excess_per_hour(now, 2 * HOUR, rate) >= RISE_OVER * burst.peak_hourly:
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
        return [self._ended(self._step(burst, point), burst.last_high)]

    def _open_subdaily(self, point: Point, now: tuple[float, int]) -> list[Finding]:
        self._burst = self._rise(point, now, max(now[0] - WINDOW, self._after), self._rate)
        return []

    def _rise(self, point: Point, now: tuple[float, int], since: float, rate: float) -> _Burst | None:
        """The burst the samples from ``since`` on show above ``rate``, if their excess is over threshold."""
        window = self._recent.since(since)
        excesses = [self._excess(then, now, rate) for then in window]
        best = max(excesses, default=0.0)
        if best < self._threshold(point.step):
            return None
        # The rise began at the latest sample from which most of the excess has arrived (not all: a
        # diurnal trough before it would otherwise pull the start hours back).
        pairs = zip(reversed(window), reversed(excesses), strict=True)
        start = next(then for then, excess in pairs if excess >= 0.75 * best)
        burst = _Burst(start[0], start[1], best, rate, opened=now[0])
        burst.peak_hourly = self._excess_per_hour(now, HOUR, rate)
        return burst

    def _fresh_step(self, burst: _Burst, point: Point, now: tuple[float, int]) -> _Burst | None:
        """A new rise within the last WINDOW, over threshold against the pace the open burst kept before it,
        with its last hour FRESH_SHARPNESS times steeper than that pace."""
        anchor = self._recent.span_back(now[0], WINDOW)
        if anchor is None or anchor[0] - burst.start < 2 * HOUR:
            return None  # the open burst is too young to have a pace of its own
        pace = max((anchor[1] - burst.start_followers) / (anchor[0] - burst.start) * DAY, self._rate)
        fresh = self._rise(point, now, anchor[0], pace)
        if fresh is None or fresh.peak_hourly < FRESH_SHARPNESS * pace / 24.0:
            return None
        return fresh

    def _excess_per_hour(self, now: tuple[float, int], span: float, rate: float) -> float:
        """Excess per hour over the last ``span`` (or the shortest longer span the samples allow)."""
        then = self._recent.span_back(now[0], span)
        if then is None:
            return 0.0
        return self._excess(then, now, rate) / ((now[0] - then[0]) / HOUR)

    # Daily samples: one period raises the candidate, the next one tells its shape.
    def _daily(self, period: Period) -> list[Finding]:
        excess_rate = period.rate - self._rate
        candidate = self._daily_candidate
        point = Point(period.end, period.followers, period.following, period.step)
        if candidate is not None:
            self._daily_candidate = None
            first, first_excess = candidate
            burst = _Burst(first.start, first.followers - first.gain, first_excess * first.days, self._rate)
            if excess_rate <= STEP_RELAPSE * first_excess:
                return [self._ended(self._one_day_step(burst), first.end)]
            if excess_rate < 0.9 * first_excess:
                return [self._ended(self._viral(burst, point), period.end)]
            return []
        # A whole period averages out the noise of hours: ask for at least a day of usual growth on top.
        needed = max(self._threshold(period.step), max(self._rate, 0.0) + 3 * self._sd)
        if excess_rate * period.days >= needed and excess_rate >= 5 * self._sd:
            self._daily_candidate = (period, excess_rate)
        return []

    def _step(self, burst: _Burst, point: Point) -> Finding:
        usual = max(self._rate, 1.0)
        share = burst.total / max(burst.start_followers, 1)
        self.score = min(1.0, 0.6 + 0.1 * (burst.total / self._threshold(point.step)))
        severity = Severity.CRITICAL if burst.total >= 3 * usual and share >= 0.01 else Severity.WARNING
        surge = burst.rate != self._rate  # a step on top of a faster pace already under way
        before = (
            f"the {signed(burst.rate)}/day it was gaining just before (usually {signed(self._rate)}/day)"
            if surge
            else f"the usual {signed(self._rate)}/day"
        )
        summary = (
            f"bought step: {signed(burst.total)} followers above {before} arrived within hours "
            f"({burst.total / usual:.1f} days of usual growth) and growth went straight back to "
            + ("that pace" if surge else "usual")
        )
        return Finding(BURST, burst.start, self.score, severity, summary)

    def _one_day_step(self, burst: _Burst) -> Finding:
        self.score = 0.4
        summary = (
            f"one-day step: {signed(burst.total)} followers above the usual {signed(self._rate)}/day in one "
            "period, then straight back to usual; a bought batch or a one-day crowd (samples more often than "
            "daily would tell which)"
        )
        return Finding(BURST, burst.start, self.score, Severity.INFO, summary)

    def _viral(self, burst: _Burst, point: Point) -> Finding:
        self.score = 0.3
        summary = (
            f"viral ramp: {signed(burst.total)} followers above the usual {signed(self._rate)}/day since the "
            "start, still arriving or decaying slowly as organic attention does "
            f"(now {count(point.followers)})"
        )
        return Finding(BURST, burst.start, self.score, Severity.INFO, summary)

    @staticmethod
    def _ended(finding: Finding, at: float) -> Finding:
        finding.ended_at = at
        return finding
