"""Gains too regular to be organic.

Two tests on the last few day-scale periods (rates normalised by each period's length):

- *Under-dispersed*: growth that is the sum of many independent follows varies at least like a Poisson count
  (sd >= sqrt(mean)); organic growth varies far more. A chi-squared lower-tail test on the index of dispersion
  catches exact and near-exact drips (the founding +768/day). Off when the count's rounding step could hide
  that much noise.
- *Held step* — a drip on top of the account's organic growth, within three daily gains: the rate rose to
  a level the account's own process makes implausible (odds beyond 1 in 10^4 for every full period against
  its typical days, 1 in 10^6 for all of them against its busy days too), held there within the account's own absolute day-to-day noise (a viral crowd
  decays), and is far steadier than organic growth at that level would be: over-dispersion is a property
  of how an account grows, so an organic jump to ten times the rate brings ten times the swings, where a
  drip adds none. Tested once per step, on the first 2-4 full periods after it (the period in which it
  switched on may be partial), at odds of 1 in 100 (1 in 20 for two full periods after a partial one:
  three gains of evidence). With sub-daily samples, the gains between the samples of the last six hours
  add their own evidence: independent follows vary at least like Poisson at their own rate, a drip
  delivered at an even pace far less (the two p-values are combined when the day-scale test falls short).
- *Regular plateau*: the rate jumped to at least 3x the account's own earlier rate and then held with a
  coefficient of variation under 0.25 — what a drip randomised by +-30% looks like; organic jumps (viral
  videos, shout-outs) peak and decay instead of stepping up to a flat level.

With sub-daily samples and exact counts, a held step or plateau whose followers arrive over minutes to hours
as irregularly as independent follows at the new rate would (at least Poisson, at most swings of the rate
itself) is an organic change of pace, not a drip: a seller's drip is smoother within the day, or lumpier.

Once open, the detection follows the plateau and ends when the rate leaves its band.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Final, final

from service.detection.base import DAY, REGULAR_GROWTH, Detector, Finding, Period, Point, Severity
from service.detection.detectors.burst import WINDOW, Recent
from service.detection.evidence import FIT_PERIODS, PRIOR_DISPERSION, SPREAD_PERIODS, Process, fit
from service.detection.history import NOISE_HALF_LIFE, AccountHistory
from service.detection.snapshot import StateReader, StateWriter
from service.detection.stats import chi2_lower_tail, count, mad_sd, median, signed
from service.detection.stats import days as span

# Lower-tail p-value under Poisson growth, per window tested. Tested every day on every account, so it must
# be small: at 1e-3, four organic days within +-2 of each other turned up in the benchmark's organic set.
EXACT_ALPHA: Final = 1e-5
SHORT_ALPHA: Final = {2: 1e-2, 3: 1e-3}  # two or three periods, and only right after a jump
# Two equal periods where a missed sample cost the third period a complete series would have shown by
# then: either the window itself spans GAP_WINDOW_DAYS or more (a sample inside it is missing), or the
# missed sample hid the onset and the gap's own gain, split into the earlier rate before the onset and
# whole days at the new rate, fits (see _onset_in_gap). A missed sample should not delay the verdict.
GAP_ONSET_ALPHA: Final = 3e-2
GAP_WINDOW_DAYS: Final = 2.5
GAP_PERIOD_DAYS: Final = 1.5  # a period this long spans a missed daily sample
EXACT_WINDOWS: Final = (2, 3, 4, 5, 6, 7, 8)
# A short window must be flatter: three or four organic days after a jump can match to within 1% by
# chance, five days of a viral tail can look flat to within 25%; seven cannot (its decay shows), while
# 95% of 7-day samples of a +-30% jitter have CV < 0.23.
PLATEAU_MAX_CV: Final = {5: 0.12, 6: 0.16, 7: 0.25, 8: 0.25}
PLATEAU_WINDOWS: Final = tuple(PLATEAU_MAX_CV)
MAX_WINDOW: Final = max(PLATEAU_WINDOWS)
SHORTEST_PLATEAU: Final = min(PLATEAU_WINDOWS)
PLATEAU_MIN_JUMP: Final = 3.0
JUMP_Z: Final = 2.0  # and beyond this many of the account's typical day-to-day swings
REFERENCE_PERIODS: Final = 14
MIN_REFERENCE_PERIODS: Final = 4
# A plateau is judged against a week of the account's own growth: a few days of an over-dispersed new
# account's history can sit far below where it settles.
PLATEAU_REFERENCE_PERIODS: Final = 7
HELD_WINDOWS: Final = (2, 3, 4)  # full periods at the new level
HELD_ALPHA: Final = 1e-2
PARTIAL_ALPHA: Final = 5e-2  # two full periods after a partial one: three gains of evidence
LOG_RISE: Final = math.log(1e-4)  # every full period of a held step is this unlikely for the account
LOG_RISE_ALL: Final = math.log(1e-6)  # and all of them together this unlikely
HELD_FLAT_ALPHA: Final = 1e-3  # its periods differ more than organic noise allows at this level: not held
HELD_DECAY_Z: Final = 3.0  # or the last full period is this many sd below the first: a decay
PEAK_Z: Final = 2.0  # or the partial period it began in this many sd above the new level: a peak
MAX_DISPERSION: Final = 1.0  # organic growth at a new level varies at most this much more (CV 1)
HELD_REFERENCE: Final = 4  # periods before the step, at least
# Before a step, a period this share of the way from the earlier rate to the new level (and beyond the
# account's own noise) is growth already rising: a drip switches on within a period, organic change does not.
LEAD_SHARE: Final = 0.25
# Sub-daily noise of at least this share of Poisson at the new level: arrivals as irregular as independent
# follows (the share allows for the scatter of a noise measured over a few days).
POISSON_SHARE: Final = 0.75
# Within the day: the gains between the sub-daily samples of the last hours, judged against Poisson at their
# own rate (independent arrivals and departures vary at least that much). A held step whose day-scale test
# fell short is accepted when both tests together (Fisher's combination) are this much stronger than the
# day-scale test alone needs: a drip delivered at an even pace is smoother than any crowd of people.
SMOOTH_FACTOR: Final = 0.1
SMOOTH_GAP: Final = 2.0 / 24.0  # days: samples further apart say nothing of the hours
SMOOTH_SAMPLES: Final = 5  # at least this many samples (four gains) in the window
LATE_Z: Final = 2.0  # a plateau's periods found late this many standard errors below it: still climbing
# Per degrees of freedom, a statistic at or above which the lower tail is above every alpha used here:
# P(X <= dof/3) is at least 0.06 for 1..7 degrees of freedom (checked in tests), and alphas are <= 0.03.
_SURELY_ABOVE: Final = {dof: dof / 3.0 for dof in range(1, max(EXACT_WINDOWS))}


class _Plateau:
    __slots__ = (
        "band",
        "days",
        "exact",
        "first",
        "held",
        "last_in",
        "mean",
        "misses",
        "organic",
        "reference",
        "sd",
        "within",
    )

    def __init__(self, first: float, mean: float, sd: float, days: float, exact: bool, reference: float):
        self.first = first
        self.held = False  # a held step on top of organic growth
        self.organic = 0.0  # held: how much organic growth at that level would vary, per day
        self.within = 0.0  # held on sub-daily evidence: the hours' variance over Poisson's (0: not used)
        self.mean = mean
        self.sd = sd
        self.days = days
        self.exact = exact
        self.reference = reference
        self.band = max(3.0 * sd, (0.12 if exact else 0.4) * mean)
        self.last_in = first
        self.misses = 0

    def save(self, out: StateWriter) -> None:
        for value in (self.first, self.mean, self.sd, self.days, self.reference, self.band, self.last_in):
            out.number(value)
        out.number(self.organic)
        out.number(self.within)
        out.flag(self.exact)
        out.flag(self.held)
        out.integer(self.misses)

    @staticmethod
    def load(state: StateReader) -> _Plateau:
        first, mean, sd, days, reference = (state.number() for _ in range(5))
        plateau = _Plateau(first, mean, sd, days, False, reference)
        plateau.band, plateau.last_in, plateau.organic = state.number(), state.number(), state.number()
        plateau.within = state.number()
        plateau.exact, plateau.held, plateau.misses = state.flag(), state.flag(), state.integer()
        return plateau


class RegularGrowthDetector(Detector):
    def __init__(self, noun: str = "followers", recent: Recent | None = None) -> None:
        super().__init__(REGULAR_GROWTH, per_sample=False, noun=noun)
        self._plateau: _Plateau | None = None
        # The burst detector's raw samples of the last hours (read, never kept here): the held step's
        # evidence within the day.
        self._recent = recent

    def save(self, out: StateWriter) -> None:
        super().save(out)
        out.flag(self._plateau is not None)
        if self._plateau is not None:
            self._plateau.save(out)

    def load(self, state: StateReader) -> None:
        super().load(state)
        self._plateau = _Plateau.load(state) if state.flag() else None

    def observe(self, point: Point, period: Period | None, history: AccountHistory) -> list[Finding]:
        if period is None:
            return []
        if self._plateau is not None:
            return self._follow(self._plateau, period)
        if period.gain <= 0:  # every window ends with this period
            self.score = 0.0
            return []
        plateau = _find_plateau(history.periods_then(REFERENCE_PERIODS + MAX_WINDOW - 1, period))
        if plateau is None and _may_hold(history.raw_rates(HELD_REFERENCE + max(HELD_WINDOWS)), period.rate):
            hours = _smoothness(self._recent, point)
            plateau = _held_step(history.periods_then(SPREAD_PERIODS - 1, period), hours)
        if plateau is not None and _arrives_as_follows(plateau, history, point):
            plateau = None
        if plateau is None:
            self.score = 0.0
            return []
        self._plateau = plateau
        return [self._finding(plateau)]

    def _follow(self, plateau: _Plateau, period: Period) -> list[Finding]:
        rate = period.rate
        if abs(rate - plateau.mean) <= plateau.band:
            plateau.misses = 0
            plateau.last_in = period.end
            plateau.days += period.days
            return [self._finding(plateau)]
        plateau.misses += 1
        clear_break = rate <= 0 or rate > 2 * plateau.mean
        if plateau.misses < 2 and not clear_break:
            return []
        finding = self._finding(plateau)
        finding.ended_at = plateau.last_in
        self._plateau = None
        self.score = 0.0
        return [finding]

    def _finding(self, plateau: _Plateau) -> Finding:
        days = round(plateau.days)
        if plateau.exact:
            self.score = min(1.0, 0.8 + 0.02 * days)
            summary = (
                f"gained {signed(plateau.mean)}/day for {span(days)} with sd {count(plateau.sd)} "
                f"(independent follows at that rate would vary by at least ±{count(math.sqrt(plateau.mean))}"
                "/day, organic accounts by much more)"
            )
            return Finding(REGULAR_GROWTH, plateau.first, self.score, Severity.CRITICAL, summary)
        if plateau.held:
            return self._held_finding(plateau, days)
        cv = plateau.sd / plateau.mean
        self.score = min(1.0, 0.5 + (1 - cv / 0.25) * 0.3 + 0.02 * days)
        severity = Severity.CRITICAL if cv < 0.1 and days >= 7 else Severity.WARNING
        jump = (
            f"{plateau.mean / plateau.reference:.1f}x its earlier {signed(plateau.reference)}/day"
            if plateau.reference >= 1
            else f"up from {signed(plateau.reference)}/day before"
        )
        summary = (
            f"gained {signed(plateau.mean)}/day ±{cv * 100:.0f}% for {span(days)}, {jump} "
            "(organic jumps that size peak and decay rather than hold this flat)"
        )
        return Finding(REGULAR_GROWTH, plateau.first, self.score, severity, summary)

    def _held_finding(self, plateau: _Plateau, days: int) -> Finding:
        self.score = min(1.0, 0.6 + 0.03 * days)
        severity = Severity.CRITICAL if days >= 7 else Severity.WARNING
        jump = (
            f"{plateau.mean / plateau.reference:.0f}x its earlier {signed(plateau.reference)}/day"
            if plateau.reference >= 1
            else f"up from {signed(plateau.reference)}/day before"
        )
        summary = (
            f"inauthentic inflow: gained {signed(plateau.mean)}/day for {span(days)}, {jump}, and held within "
            f"±{count(plateau.sd)}/day where organic growth at that level would vary by about "
            f"±{count(plateau.organic)}/day{_within(plateau.within)}; consistent with a drip of bought "
            f"{self.noun} on top of the account's own growth"
        )
        return Finding(REGULAR_GROWTH, plateau.first, self.score, severity, summary)


def _within(index: float) -> str:
    if index <= 0.0:
        return ""
    return (
        f", and arrived within the day at {index:.2f} of the variance independent follows at that pace "
        "would show"
    )


@final
class _Window:
    __slots__ = ("days", "mean", "n", "sd", "step")

    def __init__(self, n: int, mean: float, sd: float, days: float, step: int) -> None:
        self.n = n
        self.mean = mean  # daily rate
        self.sd = sd  # of one day's gain
        self.days = days
        self.step = step


def _find_plateau(recent: list[Period]) -> _Plateau | None:
    """Tests the windows of the last 2..MAX_WINDOW periods with only gains, their statistics built up
    incrementally, shortest first."""
    days = gains = weighted_squares = 0.0
    step = 1
    for n in range(1, min(MAX_WINDOW, len(recent)) + 1):
        p = recent[-n]
        if p.gain <= 0:
            return None
        days += p.days
        gains += p.gain
        weighted_squares += p.gain * p.rate
        step = max(step, p.step)
        mean = gains / days
        # A shortcut: the exact test needs a mean of 20, the plateau test a step under 5% of it.
        if n < 2 or mean < 20.0:
            continue
        variance = max(weighted_squares - mean * mean * days, 0.0) / (n - 1)
        plateau = _test_window(_Window(n, mean, math.sqrt(variance), days, step), recent)
        if plateau is not None:
            return plateau
    return None


def _test_window(w: _Window, recent: list[Period]) -> _Plateau | None:
    # The periods before the window are sliced off only when a test gets as far as reading them.
    if w.n in EXACT_WINDOWS and _exact(w, recent):
        return _Plateau(recent[-w.n].start, w.mean, w.sd, w.days, True, _reference(recent[: -w.n]) or 0.0)
    # Fewer, longer periods (an outage) count once they cover as many days as the shortest window.
    long_enough = w.n in PLATEAU_WINDOWS or (w.n >= 3 and w.days >= SHORTEST_PLATEAU)
    if long_enough and _flat_after_jump(w, recent):
        return _Plateau(recent[-w.n].start, w.mean, w.sd, w.days, False, _reference(recent[: -w.n]) or 0.0)
    return None


def _exact(w: _Window, recent: list[Period]) -> bool:
    # Rounding to ``step`` can make noisy growth look constant; the test needs noise well above a step.
    if w.mean < max(20.0, (2.0 * w.step) ** 2):
        return False
    # Integer counts cannot vary by less than a rounding unit: 1/12 keeps the test finite for sd = 0.
    dispersion = (w.n - 1) * max(w.sd * w.sd, w.step * w.step / 12.0) / w.mean
    alpha = EXACT_ALPHA
    if w.n < 4:
        if dispersion > 0.05:  # nowhere near: skip the reference
            return False
        # Two or three equal gains happen by chance now and then; right after a jump they do not.
        before = recent[: -w.n]
        reference = _reference(before)
        if reference is None or not _jumped(w.mean, reference):
            return False
        # Two gains alike are weak evidence (exact equality at +300/day is p = 0.013): only after a jump
        # beyond the account's own swings. Three alike after a jump are strong enough on their own.
        if w.n == 2 and not _beyond_swings(w.mean, before):
            return False
        alpha = SHORT_ALPHA[w.n]
        if w.n == 2 and (w.days >= GAP_WINDOW_DAYS or _onset_in_gap(before, w.mean)):
            alpha = GAP_ONSET_ALPHA
    if dispersion >= _SURELY_ABOVE[w.n - 1]:
        return False  # far above any tested critical value: skip the series expansion (same verdict)
    return chi2_lower_tail(dispersion, w.n - 1) < alpha


def _onset_in_gap(before: list[Period], mean: float) -> bool:
    """True when the period before the window spans a missed sample and its gain is the account's earlier
    rate up to an onset inside it plus whole days at ``mean`` after: the drip switched on in the gap."""
    if not before or before[-1].days < GAP_PERIOD_DAYS:
        return False
    gap = before[-1]
    reference = _reference(before[:-1])
    if reference is None or not _jumped(mean, reference):
        return False
    inside = round((gap.gain - reference * gap.days) / (mean - reference))  # days of the new rate
    if inside < 1 or inside >= gap.days:
        return False
    residual = gap.gain - reference * (gap.days - inside) - mean * inside
    # Poisson noise of the new rate plus a loose allowance for the earlier rate's day-to-day swings.
    return abs(residual) <= 3.0 * math.sqrt(mean * inside) + 0.5 * abs(reference) * (gap.days - inside)


def _flat_after_jump(w: _Window, recent: list[Period]) -> bool:
    # The allowed spread follows the days covered: a missed sample should not delay the verdict.
    max_cv = PLATEAU_MAX_CV[min(max(w.n, round(w.days), SHORTEST_PLATEAU), MAX_WINDOW)]
    if w.sd > max_cv * w.mean or w.step > 0.05 * w.mean or len(recent) - w.n < PLATEAU_REFERENCE_PERIODS:
        return False
    before = recent[: -w.n]
    reference = _reference(before)
    if reference is None or w.mean - reference < max(20.0, 5.0 * w.step) or not _jumped(w.mean, reference):
        return False
    if _decays(recent[-w.n :]) or _after_spike(before, w.mean) or not _beyond_swings(w.mean, before):
        return False
    return not _reached_before(w, before)


def _reached_before(w: _Window, before: list[Period]) -> bool:
    """True when the account already grew at the plateau's level, or halfway to it, in the week before the
    step: an organic change of rate that came over days (a ramp, busy days mixed with quiet ones), not a
    drip switched on. The step's own periods (in the plateau's band, found late) and one partial period
    before them are not the week before."""
    low = w.mean - 2.0 * w.sd
    end = len(before)
    while end > 0 and before[end - 1].rate >= low:
        end -= 1
    week = before[max(end - 1 - PLATEAU_REFERENCE_PERIODS, 0) : max(end - 1, 0)]
    reference = _reference(before)
    if reference is None:
        return False
    halfway = 0.5 * (reference + w.mean)
    if any(p.rate >= halfway for p in week) or _ramped(before[:end], reference, w.mean):
        return True
    return _still_climbing(before[end:], w)


def _still_climbing(late: list[Period], w: _Window) -> bool:
    """True when the periods taken for the step's own, found late, sit below the plateau by more than its
    own spread allows (two standard errors): the level was still climbing there, as organic growth does,
    where a drip holds its level from the period after it switched on."""
    if len(late) < 2:
        return False
    mean = sum((p.gain for p in late), 0.0) / sum((p.days for p in late), 0.0)
    return w.mean - mean >= LATE_Z * w.sd * math.sqrt(1.0 / len(late) + 1.0 / w.n)


def _ramped(lead: list[Period], reference: float, mean: float) -> bool:
    """True when two successive periods of the week before the step both grew a quarter of the way to the
    plateau and beyond the account's own noise before them: a drip switches on within one period (the one
    it straddles), while an organic change of pace climbs over days, or comes as busy days at the new pace."""
    quarter = reference + LEAD_SHARE * (mean - reference)
    for i in range(max(len(lead) - PLATEAU_REFERENCE_PERIODS, HELD_REFERENCE + 1), len(lead)):
        pair = lead[i - 1 : i + 1]
        if min(p.rate for p in pair) < quarter:
            continue  # a cheap look first
        process = _reference_process(lead[: i - 1])
        if _elevated(pair[0], process) and _elevated(pair[1], process):
            return True
    return False


def _jumped(mean: float, reference: float) -> bool:
    return mean >= PLATEAU_MIN_JUMP * max(reference, 0.0)


def _beyond_swings(mean: float, before: list[Period]) -> bool:
    """True when a level is above the account's usual rate by more than JUMP_Z of its typical day-to-day
    swings. Three times a usual rate near or below zero is no jump: an account whose arrivals and
    departures nearly balance swings by thousands a day around a net rate near zero, and any positive
    level would pass for one."""
    rates = [p.rate for p in before[-SPREAD_PERIODS:]]
    usual = median(rates[-REFERENCE_PERIODS:])
    return mean - usual > JUMP_Z * mad_sd(rates, usual)


def _reference(before: list[Period]) -> float | None:
    before = before[-REFERENCE_PERIODS:]
    if len(before) < MIN_REFERENCE_PERIODS:
        return None
    return median([p.rate for p in before])


def _after_spike(before: list[Period], mean: float) -> bool:
    """True when the plateau follows a higher peak: the tail of a viral spike, not a drip switched on."""
    return any(p.rate > 1.3 * mean for p in before[-7:])


def _decays(window: list[Period]) -> bool:
    """True when the second half runs clearly below the first: the shape of a viral spike, not a drip."""
    half = len(window) // 2
    first = sum(p.gain for p in window[:half]) / sum((p.days for p in window[:half]), 0.0)
    second = sum(p.gain for p in window[half:]) / sum((p.days for p in window[half:]), 0.0)
    return second < 0.65 * first


def _may_hold(rates: list[float], latest: float) -> bool:
    """A cheap look before any held step is tested: the last 2-4 rates well above the ones before."""
    rates.append(latest)
    for full in HELD_WINDOWS:
        before = rates[-full - 7 : -full]
        if before and min(rates[-full:]) >= 2.0 * max(median(before), 1.0):
            return True
    return False


def _held_step(recent: list[Period], hours: tuple[float, float] = (1.0, 0.0)) -> _Plateau | None:
    """A step up held steady on top of the account's organic growth, in the first 2-4 full periods after
    it (after a partial one, if the step began inside it)."""
    for full in HELD_WINDOWS:
        if len(recent) < full + HELD_REFERENCE:
            return None
        window = recent[-full:]
        before = recent[:-full]
        if min(p.rate for p in window) < 2.0 * max(median([p.rate for p in before[-7:]]), 1.0):
            continue  # a cheap look first: no step to speak of
        plateau = _held(window, before, hours)
        if plateau is not None:
            return plateau
    return None


def _held(window: list[Period], before: list[Period], hours: tuple[float, float]) -> _Plateau | None:
    # The window starts at the step: the period before it is the account's usual growth, or partial
    # (the step began inside it) after usual growth. Tested once per step, not every day of a new level.
    process = _reference_process(before)
    partial = _elevated(before[-1], process)
    if partial:
        level = sum((p.gain for p in window), 0.0) / sum((p.days for p in window), 0.0)
        if len(before) - 2 < HELD_REFERENCE or _built_up(before[:-1], level):
            return None
        process = _reference_process(before[:-1])
    if not _risen(window, process):
        return None
    days = sum((p.days for p in window), 0.0)
    level = sum((p.gain for p in window), 0.0) / days
    squares = sum((p.days * (p.rate - level) ** 2 for p in window), 0.0)
    absolute = process.spread + level  # the account's own day-to-day noise, and Poisson at the new level
    dof = len(window) - 1
    if 1.0 - chi2_lower_tail(squares / absolute, dof) < HELD_FLAT_ALPHA:
        return None  # not held: the periods differ far more than organic noise
    if partial and _peaked(before[-1], level, absolute):
        return None
    first, last = window[0], window[-1]
    if first.rate - last.rate > HELD_DECAY_Z * math.sqrt(absolute * (1.0 / first.days + 1.0 / last.days)):
        return None  # decaying, as a crowd leaves
    # The account's own over-dispersion from its typical (median) spread: the cautious side here, as a
    # larger one would make any steady new level look too steady to be organic.
    dispersion = _dispersion([p.rate for p in before[-SPREAD_PERIODS:]])
    organic = level + dispersion * level * level  # variance of a day's gain, organic at this level
    alpha = PARTIAL_ALPHA if partial and len(window) == 2 else HELD_ALPHA
    steady = chi2_lower_tail(squares / organic, dof)
    within = steady >= alpha and _fisher(steady, hours[0]) < SMOOTH_FACTOR * alpha
    if steady >= alpha and not within:
        return None
    start = before[-1].start if partial else first.start
    sd = math.sqrt(squares / dof / (days / len(window)))
    plateau = _Plateau(start, level, sd, days, False, process.rate)
    plateau.held = True
    plateau.within = hours[1] if within else 0.0
    plateau.organic = math.sqrt(organic)
    plateau.band = max(HELD_DECAY_Z * math.sqrt(absolute), 0.2 * level)
    return plateau


def _fisher(first: float, second: float) -> float:
    """Fisher's combination of two independent p-values: P(chi-squared with 4 dof >= -2 ln(p1 p2))."""
    half = -math.log(max(first * second, 1e-300))
    return math.exp(-half) * (1.0 + half)


def _smoothness(recent: Recent | None, point: Point) -> tuple[float, float]:
    """How smooth the gains between the sub-daily samples of the last hours are against independent
    follows at their own rate: the lower-tail p-value of their index of dispersion (Poisson's is 1, and
    arrivals and departures of people only add to it), and the index itself. (1, 0) when the hours say
    nothing: samples further apart, rounded counts, too few followers per gain to tell."""
    if recent is None or point.step > 1:
        return 1.0, 0.0
    samples = recent.since(point.at - WINDOW)
    samples.append((point.at, point.followers))
    gains = len(samples) - 1
    days = (samples[-1][0] - samples[0][0]) / DAY
    if gains + 1 < SMOOTH_SAMPLES or samples[-1][1] - samples[0][1] < gains or days <= 0.0:
        return 1.0, 0.0
    rate = (samples[-1][1] - samples[0][1]) / days
    statistic = 0.0
    for (before, low), (after, high) in pairwise(samples):
        expected = rate * (after - before) / DAY
        if after - before > SMOOTH_GAP * DAY or expected <= 0.0:
            return 1.0, 0.0
        statistic += (high - low - expected) ** 2 / expected
    return chi2_lower_tail(statistic, gains - 1), statistic / (gains - 1)


def _peaked(partial: Period, level: float, absolute: float) -> bool:
    """True when the period the rise began in ran above the new level: a crowd's peak settling, where a
    drip switching on part-way through a period brings less than a day of it. Not over a missed sample
    (1.5 days or more): a batch delivered with the onset would have shown as a day of its own."""
    if partial.days >= GAP_PERIOD_DAYS:
        return False
    return partial.rate - level > PEAK_Z * math.sqrt(absolute / partial.days)


def _risen(window: list[Period], process: Process) -> bool:
    """True when every full period is an implausible rise against the account's typical days, and all of
    them together against its busy days as well. Each period is judged by the same spread whatever its
    length: a daily export polled an hour late (1.04 days) was judged by the busy-day tail and one polled an
    hour early by the typical days, odds of 1 in 10^4 against 1 in 10^10 for the same gain."""
    calm = process.calm()
    surprises = [process.log_surprise(p.gain - process.rate * p.days, p.days) for p in window]
    each = [calm.log_surprise(p.gain - process.rate * p.days, p.days) for p in window]
    return max(each) < LOG_RISE and sum(surprises, 0.0) < LOG_RISE_ALL


def _arrives_as_follows(plateau: _Plateau, history: AccountHistory, point: Point) -> bool:
    """True when, over minutes to hours, the new level arrives as independent follows at that rate would:
    at least Poisson, and swinging from one sample to the next by no more than the rate itself beyond it
    (CV 1, the prior's spread): an organic change of pace. A drip, steady or jittered from day to day, is
    delivered at a pace the seller sets, smoother within the day than people deciding to follow, or in
    batches, lumpier than that. Only with exact counts (rounding adds variance of its own) and once the
    sub-daily noise is measured."""
    noise, _ = history.noise()
    gap = history.sample_gap()
    if plateau.exact or noise <= 0.0 or gap <= 0.0 or point.step > 1:
        return False
    # The noise is a decayed mean (half-life NOISE_HALF_LIFE): part of it still measured the old level.
    new = 1.0 - math.exp(-math.log(2.0) * (point.at - plateau.first) / DAY / NOISE_HALF_LIFE)
    poisson = new * plateau.mean + (1.0 - new) * max(plateau.reference, 0.0)
    swings = PRIOR_DISPERSION * gap * plateau.mean * plateau.mean
    return POISSON_SHARE * poisson <= noise <= poisson + swings


def _built_up(lead: list[Period], level: float) -> bool:
    """True when growth was already rising before the period a step began in: the period before that one
    beyond the account's own noise (two standard deviations), and a quarter of the way to the new level or
    itself after a period already above usual (one). Organic attention and a change of pace build up over
    days; one organic busy day, small against the step, is the account's own noise and says nothing about
    how the step began."""
    earlier = _reference_process(lead[:-1])
    if not _elevated(lead[-1], earlier):
        return False
    if lead[-1].rate - earlier.rate >= LEAD_SHARE * (level - earlier.rate):
        return True
    return len(lead) - 1 > HELD_REFERENCE and _elevated(lead[-2], _reference_process(lead[:-2]), 1.0)


def _reference_process(before: list[Period]) -> Process:
    rates = [p.rate for p in before[-SPREAD_PERIODS:]]
    days = sum((p.days for p in before[-FIT_PERIODS:]), 0.0)
    return fit(rates, days, before[-1].followers, 0.0, 0.0, before[-1].step)


def _elevated(period: Period, process: Process, z: float = 2.0) -> bool:
    """Above the account's usual rate by more than ``z`` of its day-to-day standard deviations."""
    return period.rate - process.rate > z * math.sqrt(process.spread / period.days)


def _dispersion(rates: list[float]) -> float:
    """The account's relative over-dispersion k (a day's variance = rate + k rate^2), from its typical
    spread (the median deviation, which one busy day does not move), at most MAX_DISPERSION."""
    usual = median(rates)
    positive = max(usual, 1.0)
    return min(max(mad_sd(rates, usual) ** 2 - max(usual, 0.0), 0.0) / (positive * positive), MAX_DISPERSION)
