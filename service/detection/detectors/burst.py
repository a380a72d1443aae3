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

from typing import Final, final

from service.detection.base import BURST, DAY, Detector, Finding, Period, Point, Severity
from service.detection.history import AccountHistory
from service.detection.stats import count, signed

HOUR: Final = 3_600.0
WINDOW: Final = 6 * HOUR  # a bought step is delivered within this
KEPT: Final = 2 * WINDOW  # raw samples kept: the window, and room to tell when the rise began
MAX_KEPT: Final = 800  # and at most this many
TRIM_AT: Final = 256
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


@final
class _Recent:
    """The raw samples of the last KEPT seconds (at most MAX_KEPT), and the rising minima of the last WINDOW:
    the lowest count the window has seen is ``low_counts[low_head]``.

    Parallel lists with a moving head rather than deques of tuples: updated on every sample, so written
    for speed; the dead front of each list is cut off once it is TRIM_AT long, so memory stays bounded.
    """

    __slots__ = ("counts", "head", "low_counts", "low_head", "low_times", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.counts: list[int] = []
        self.head = 0
        self.low_times: list[float] = []
        self.low_counts: list[int] = []
        self.low_head = 0

    def add(self, at: float, followers: int) -> None:
        self.times.append(at)
        self.counts.append(followers)
        self.head = _advance(self.times, self.counts, self.head, at - KEPT)
        low_times, low_counts = self.low_times, self.low_counts
        while len(low_counts) > self.low_head and low_counts[-1] >= followers:
            low_counts.pop()
            low_times.pop()
        low_times.append(at)
        low_counts.append(followers)
        self.low_head = _advance(low_times, low_counts, self.low_head, at - WINDOW)

    def since(self, at: float) -> list[tuple[float, int]]:
        """The kept samples from ``at`` on, oldest first."""
        times, counts = self.times, self.counts
        return [(times[i], counts[i]) for i in range(self.head, len(times)) if times[i] >= at]

    def span_back(self, now: float, span: float) -> tuple[float, int] | None:
        """The latest kept sample at least ``span`` seconds before ``now``."""
        times = self.times
        for i in range(len(times) - 1, self.head - 1, -1):
            if now - times[i] >= span:
                return times[i], self.counts[i]
        return None


def _advance(times: list[float], counts: list[int], head: int, oldest: float) -> int:
    """The new head of a pair of lists: past the samples older than ``oldest`` (never past the newest) and
    all but the last MAX_KEPT. Once the dead front is TRIM_AT long it is cut off and the head is 0."""
    while times[head] < oldest:
        head += 1
    head = max(head, len(times) - MAX_KEPT)
    if head >= TRIM_AT:
        del times[:head]
        del counts[:head]
        head = 0
    return head


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

    def observe(self, point: Point, period: Period | None, history: AccountHistory) -> list[Finding]:
        at = point.at
        recent = self._recent
        previous_at = recent.times[-1] if recent.times else None
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
        bound = point.followers - recent.low_counts[recent.low_head] + self._shrinking
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
