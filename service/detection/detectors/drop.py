"""Sustained loss: a one-sided CUSUM on the daily rate, standardised by the account's own recent growth.

It opens on two losing periods in a row, each at least four robust standard deviations below the usual
rate (and, for an account already shrinking, losing at least three times as fast), once the CUSUM passes
its threshold (the daily fall after a bought phase); for an account that was clearly growing, once it has
turned to losing for two periods (the fall after a noisy bought phase); or at once on a single loss that
is both extreme for the account and at least 0.5% of its followers (a purge). With sub-daily samples it
need not wait for two day-long periods: a loss over the last 36 hours, in both halves, as unusual as
those two periods together, is the same evidence. A loss that an organic decline explains does not
count: the reference is the account's own recent rate.
"""

from __future__ import annotations

import math
from typing import Final

from service.detection.base import DROP, Detector, Finding, Period, Point, Severity
from service.detection.evidence import FIT_PERIODS, SPREAD_PERIODS, shift_variance
from service.detection.history import AccountHistory, TimedCounts
from service.detection.snapshot import StateReader, StateWriter
from service.detection.stats import count, day_to_day_sd, percent, signed
from service.detection.stats import days as span

# The reference is the account's usual rate (history.usual): a fall is measured against the last week.
SCALE_PERIODS: Final = (
    14  # day-to-day noise is measured over two weeks, a level change in them does not count
)
MIN_REFERENCE_PERIODS: Final = 4
CUSUM_SLACK: Final = 1.0  # standard deviations of drift tolerated per period
CUSUM_THRESHOLD: Final = 6.0
UNUSUAL_Z: Final = 4.0
GROWING_SCALES: Final = 3.0  # clearly growing: the usual rate at least this many robust sd above zero
TURNED_SHARE: Final = 2e-4  # and a turn to losing must lose this share of followers to count alone
SHRINKING_FACTOR: Final = 3.0  # an account already shrinking must lose this many times faster
PURGE_Z: Final = 6.0
PURGE_SHARE: Final = 0.005
PLATFORM_SIGNAL_Z: Final = 3.0
PLATFORM_SIGNAL_SHARE: Final = 0.001
SUB_DAILY: Final = 43_200.0
FADED: Final = 0.25  # a loss under a quarter of the run's fastest no longer continues the drop


POINTS_KEPT: Final = 40  # points of the last 36 hours, one every POINT_EVERY, and the one before them
SUSTAINED: Final = 36 * 3_600.0  # sub-daily samples: a loss this long, in both halves, is sustained
SUSTAINED_Z: Final = 5.0  # over 1.5 days, about the evidence of two periods at UNUSUAL_Z each
HOUR: Final = 3_600.0
POINT_EVERY: Final = 2 * HOUR  # enough to tell a fall in both halves of 36 hours, in half the memory


class _Loss:
    __slots__ = ("end", "followers_before", "followers_now", "reference", "rising", "start", "worst")

    def __init__(self, start: float, followers_before: int, reference: float) -> None:
        self.start = start
        self.followers_before = followers_before
        self.followers_now = followers_before
        self.end = start
        self.reference = reference
        self.rising = 0
        self.worst = 0.0  # the fastest loss per day seen in the run

    @property
    def loss(self) -> int:
        return self.followers_before - self.followers_now

    @property
    def days(self) -> float:
        return max((self.end - self.start) / 86_400.0, 1.0)

    def reach(self, at: float, followers: int) -> None:
        self.end = at
        self.followers_now = followers

    def save(self, out: StateWriter) -> None:
        for value in (self.start, self.end, self.reference, self.worst):
            out.number(value)
        out.integer(self.followers_before)
        out.integer(self.followers_now)
        out.integer(self.rising)

    @staticmethod
    def load(state: StateReader) -> _Loss:
        start, end, reference, worst = state.number(), state.number(), state.number(), state.number()
        run = _Loss(start, state.integer(), reference)
        run.reach(end, state.integer())
        run.worst = worst
        run.rising = state.integer()
        return run


class DropDetector(Detector):
    def __init__(self, noun: str = "followers") -> None:
        super().__init__(DROP, per_sample=True, noun=noun)
        self.platform_signal: tuple[float, float, float] | None = None  # (start, end, relative change)
        self._cusum = 0.0
        self._scale = 1.0
        self._run: _Loss | None = None  # losing periods since the CUSUM left zero
        self._losing_days = 0.0
        self._open = False
        self._reference: float | None = None
        # The last 36 hours, one sample every two hours (and the one before them): at most 20.
        self._points = TimedCounts()
        self._points_at = -math.inf  # time of the newest sample in _points
        self._last_at = 0.0

    def save(self, out: StateWriter) -> None:
        super().save(out)
        for value in (self._cusum, self._scale, self._losing_days, self._points_at, self._last_at):
            out.number(value)
        out.optional_number(self._reference)
        out.flag(self._open)
        out.flag(self._run is not None)
        if self._run is not None:
            self._run.save(out)
        self._points.save(out)

    def load(self, state: StateReader) -> None:
        super().load(state)
        self._cusum, self._scale, self._losing_days = state.number(), state.number(), state.number()
        self._points_at, self._last_at = state.number(), state.number()
        self._reference = state.optional_number()
        self._open = state.flag()
        self._run = _Loss.load(state) if state.flag() else None
        self._points.load(state, POINTS_KEPT)

    def observe(self, point: Point, period: Period | None, history: AccountHistory) -> list[Finding]:
        self.platform_signal = None
        at = point.at
        sub_daily = at - self._last_at < SUB_DAILY
        self._last_at = at
        if period is None:
            if sub_daily and not self._open and at - self._points_at >= POINT_EVERY:
                return self._sustained(point)
            return []
        if self._open and self._run is not None:
            return self._follow(self._run, period)
        if not self._update_reference(history, period):
            return []
        return self._on_period(period)

    def _update_reference(self, history: AccountHistory, period: Period) -> bool:
        if self._losing_days == 0.0:  # during a streak of unusual losses the reference stays as before it
            process = history.process(period.step)
            if process.periods < MIN_REFERENCE_PERIODS:
                return False
            rates = history.rates(SPREAD_PERIODS)
            # The usual rate is the median, but the losses of an account that is not growing are counts
            # skewed towards the losing side: most days lose a little, a few lose more, so the mean sits
            # below the median. There the lower of the two is the loss its own process makes usual.
            recent = rates[-SCALE_PERIODS:]
            self._reference = process.rate
            if process.rate <= 0.0:
                self._reference = min(process.rate, sum(recent, 0.0) / len(recent))
            # The account's own day-to-day swings, from successive days (a change of level, such as a
            # drip switching off, moves one of them), their heavy tail included: on an over-dispersed
            # account a slow day is a loss. Never less than Poisson noise of its turnover: followers
            # arriving and leaving both vary, even when the net rate is near zero.
            self._scale = max(
                math.sqrt(shift_variance(rates)),
                day_to_day_sd(recent),
                math.sqrt(sum(process.flows())),
                1.0,
            )
            if self._reference < GROWING_SCALES * self._scale:
                # An account that is not clearly growing loses in counts skewed to the losing side: a few
                # of its days lose far more than most. Those days are its nature (the downside spread, its
                # heavy tail included), not a drop; a fall after a bought phase is judged as before.
                self._scale = max(self._scale, math.sqrt(process.downside))
            if len(rates) < FIT_PERIODS:
                # A few calm days do not prove an account has no slow ones: until two weeks of periods
                # show its own spread, the typical one (drawn towards the prior) is the least it has.
                self._scale = max(self._scale, math.sqrt(process.typical))
        return self._reference is not None

    def _on_period(self, period: Period) -> list[Finding]:
        reference = self._reference or 0.0
        z = (reference - period.rate) / self._scale
        self._note_platform_signal(period, z)
        self._cusum = max(0.0, self._cusum + (z - CUSUM_SLACK) * min(period.days, 3.0))
        if self._cusum == 0.0 or period.gain >= 0:  # a run is a streak of losses
            self._run = None
            self._losing_days = 0.0
            return []
        if self._run is None:
            self._run = _Loss(period.start, period.followers - period.gain, reference)
        self._run.reach(period.end, period.followers)
        # Only losses well beyond the account's usual count toward confirmation: a declining account
        # loses every day, and its noisier days are not a drop.
        # An account that was clearly growing and now loses has turned: that alone is unusual (z is then
        # at least GROWING_SCALES), where a declining account's loss must be extreme to count.
        turned = reference >= GROWING_SCALES * self._scale
        unusual = z >= (GROWING_SCALES if turned else UNUSUAL_Z) and (
            reference >= 0 or period.rate < SHRINKING_FACTOR * reference
        )
        # Counted in days: a missed sample makes one period of two days' loss, as good as two periods.
        self._losing_days = self._losing_days + period.days if unusual else 0.0
        if not unusual or not self._confirmed(self._run, period, z):
            return []
        self._open = True
        return [self._finding(self._run)]

    def _confirmed(self, run: _Loss, period: Period, z: float) -> bool:
        if run.loss <= 2 * period.step:  # within the count's rounding
            return False
        # Two days of unusual loss, confirmed by the CUSUM, or by the account having turned from clear
        # growth to losing (the fall after a bought phase, when the drip was noisy enough to hide it).
        turned = run.reference >= GROWING_SCALES * self._scale
        if self._losing_days >= 1.9 and (self._cusum >= CUSUM_THRESHOLD or turned):
            return True
        # One period is enough only for a loss far beyond a day's usual movement (further still for an
        # account that is shrinking anyway). Judged against the account's own days, not a percentage.
        usual_move = 2 * self._scale + (2 if run.reference >= 0 else 3) * abs(run.reference)
        return z >= PURGE_Z and -period.gain >= usual_move * period.days

    def _note_platform_signal(self, period: Period, z: float) -> None:
        before = period.followers - period.gain
        if z >= PLATFORM_SIGNAL_Z and before > 0 and -period.gain >= PLATFORM_SIGNAL_SHARE * before:
            self.platform_signal = (period.start, period.end, period.gain / before)

    def _sustained(self, point: Point) -> list[Finding]:
        points = self._points
        points.append(point.at, point.followers)
        self._points_at = point.at
        while len(points) > 2 and point.at - points.time(1) >= SUSTAINED:
            points.drop_first(1)  # keep just one point older than the window: it is the window's start
        reference = self._reference
        if reference is None or point.at - points.time(0) < SUSTAINED:
            return []
        loss = points.count(0) - point.followers
        if loss <= 2 * point.step:
            return []
        middle = next(i for i in range(len(points)) if point.at - points.time(i) <= SUSTAINED / 2)
        if points.count(middle) <= point.followers or points.count(0) <= points.count(middle):
            return []
        days = (point.at - points.time(0)) / 86_400.0
        rate = -loss / days
        z = (reference - rate) / self._scale * days**0.5
        if z < SUSTAINED_Z or (reference < 0 and rate > SHRINKING_FACTOR * reference):
            return []
        peak = max(range(len(points)), key=lambda i: (points.count(i), points.time(i)))
        self._run = _Loss(points.time(peak), points.count(peak), reference)
        self._run.reach(point.at, point.followers)
        self._cusum = z
        self._open = True
        return [self._finding(self._run)]

    def _follow(self, run: _Loss, period: Period) -> list[Finding]:
        run.worst = min(run.worst, period.rate)
        # Still falling, and not just the slow drift that may follow a fall: an account that shrinks a
        # little every day afterwards would otherwise keep one drop open forever.
        if period.gain < 0 and period.rate < FADED * run.worst:
            run.reach(period.end, period.followers)
            run.rising = 0
            return [self._finding(run)]
        run.rising += 1
        if run.rising < 2:
            return []
        finding = self._finding(run)
        finding.ended_at = run.end
        self._open = False
        self._run = None
        self._cusum = 0.0
        self._losing_days = 0.0
        self._points.clear()
        self._points_at = -math.inf
        self.score = 0.0
        return [finding]

    def _finding(self, run: _Loss) -> Finding:
        share = run.loss / max(run.followers_before, 1)
        days = max(run.days, 1.0)
        self.score = min(1.0, 0.5 + 0.05 * self._cusum + 5 * share)
        severity = Severity.CRITICAL if share >= 0.05 or days >= 10 else Severity.WARNING
        summary = (
            f"lost {count(run.loss)} followers ({percent(share)}) over {span(days)}, "
            f"{signed(-run.loss / days)}/day, after gaining {signed(run.reference)}/day before"
        )
        return Finding(DROP, run.start, self.score, severity, summary)
