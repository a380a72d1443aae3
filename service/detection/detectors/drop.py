"""Sustained loss: a one-sided CUSUM on the daily rate, standardised by the account's own recent growth.

It opens on two losing periods in a row, each at least four robust standard deviations below the usual
rate (and, for an account already shrinking, losing at least twice as fast), once the CUSUM passes its
threshold (the daily fall after a bought phase),
or at once on a single loss that is both extreme for the account and at least 0.5% of its followers (a purge).
A loss that an organic decline explains does not count: the reference is the account's own recent rate.
"""

from __future__ import annotations

from service.detection.base import DROP, Finding, Period, PeriodHistory, Point, Severity
from service.detection.stats import count, median, percent, robust_scale, signed

REFERENCE_PERIODS = 14
MIN_REFERENCE_PERIODS = 4
CUSUM_SLACK = 1.0  # standard deviations of drift tolerated per period
CUSUM_THRESHOLD = 6.0
UNUSUAL_Z = 4.0
PURGE_Z = 6.0
PURGE_SHARE = 0.005
PLATFORM_SIGNAL_Z = 4.0
PLATFORM_SIGNAL_SHARE = 0.001


class _Loss:
    __slots__ = ("days", "followers_before", "loss", "reference", "rising", "start")

    def __init__(self, start: float, followers_before: int, reference: float) -> None:
        self.start = start
        self.followers_before = followers_before
        self.reference = reference
        self.loss = 0
        self.days = 0.0
        self.rising = 0


class DropDetector:
    name = DROP

    def __init__(self) -> None:
        self.score = 0.0
        self.platform_signal: tuple[float, float, float] | None = None  # (start, end, relative change)
        self._cusum = 0.0
        self._scale = 1.0
        self._run: _Loss | None = None  # losing periods since the CUSUM left zero
        self._losing_periods = 0
        self._open = False

    def observe(self, point: Point, period: Period | None, history: PeriodHistory) -> list[Finding]:
        self.platform_signal = None
        if period is None:
            return []
        if self._open and self._run is not None:
            return self._follow(self._run, period)
        rates = history.rates(REFERENCE_PERIODS)
        if len(rates) < MIN_REFERENCE_PERIODS:
            return []
        reference = median(rates)
        self._scale = robust_scale(rates, reference, period.step)
        z = (reference - period.rate) / self._scale
        self._note_platform_signal(period, z)
        self._cusum = max(0.0, self._cusum + z - CUSUM_SLACK)
        if self._cusum == 0.0 or period.gain >= 0:
            self._run = None if self._cusum == 0.0 else self._run
            self._losing_periods = 0
            return []
        if self._run is None:
            self._run = _Loss(period.start, period.followers - period.gain, reference)
        self._run.loss -= period.gain
        self._run.days += period.days
        # Only losses well beyond the account's usual count toward confirmation: a declining account
        # loses every day, and its noisier days are not a drop.
        unusual = z >= UNUSUAL_Z and (reference >= 0 or period.rate < 2 * reference)
        self._losing_periods = self._losing_periods + 1 if unusual else 0
        if not unusual or not self._confirmed(self._run, period, z):
            return []
        self._open = True
        return [self._finding(self._run)]

    def _confirmed(self, run: _Loss, period: Period, z: float) -> bool:
        if run.loss < max(3 * period.step, 10):
            return False
        if self._cusum >= CUSUM_THRESHOLD and self._losing_periods >= 2:
            return True
        # One period is enough only for a loss far beyond a day's usual movement (further still for an
        # account that is shrinking anyway).
        usual_move = 2 * self._scale + (2 if run.reference >= 0 else 3) * abs(run.reference)
        big = -period.gain >= max(PURGE_SHARE * run.followers_before, usual_move * period.days)
        return z >= PURGE_Z and big

    def _note_platform_signal(self, period: Period, z: float) -> None:
        before = period.followers - period.gain
        if z >= PLATFORM_SIGNAL_Z and before > 0 and -period.gain >= PLATFORM_SIGNAL_SHARE * before:
            self.platform_signal = (period.start, period.end, period.gain / before)

    def _follow(self, run: _Loss, period: Period) -> list[Finding]:
        if period.gain < 0:
            run.loss -= period.gain
            run.days += period.days
            run.rising = 0
            return [self._finding(run)]
        run.rising += 1
        if run.rising < 2:
            return []
        finding = self._finding(run)
        finding.ended_at = period.start
        self._open = False
        self._run = None
        self._cusum = 0.0
        self._losing_periods = 0
        self.score = 0.0
        return [finding]

    def _finding(self, run: _Loss) -> Finding:
        share = run.loss / max(run.followers_before, 1)
        days = max(run.days, 1.0)
        self.score = min(1.0, 0.5 + 0.05 * self._cusum + 5 * share)
        severity = Severity.CRITICAL if share >= 0.05 or days >= 10 else Severity.WARNING
        summary = (
            f"lost {count(run.loss)} followers ({percent(share)}) over {days:.0f} days, "
            f"{signed(-run.loss / days)}/day, after gaining {signed(run.reference)}/day before"
        )
        return Finding(DROP, run.start, self.score, severity, summary)
