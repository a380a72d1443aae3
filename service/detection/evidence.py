"""What an account's own process makes plausible: the yardstick every change is judged against.

Organic growth is many people deciding to follow, at a rate that itself wanders from day to day. Gains in a
window of ``w`` days are modelled as negative binomial: a Poisson count of arrivals whose rate is uncertain,

    mean      = f * w                           f: the arrival rate (followers per day)
    variance  = p * w + q * w**2 + max(f**2 / c, r) * w**2

where ``p`` is the noise of arrivals over minutes to hours (at least Poisson; measured from successive
differences of sub-daily samples, which a slow change of level does not inflate), ``q`` is the variance of
the day's level (the account's over-dispersion: a quiet day, a busy day) and ``c`` says how sure the rate is
(the arrivals it rests on); for a whole day, ``r`` is how unsure the periods the rate rests on leave it
(their typical spread over their number). A change is then as surprising as the tail probability of what
was seen: +25 stars in ten minutes on a repository that gains one a week is odds of 1 in 10^40; +25 on an account
gaining 2,000 a day is nothing. There are no floors in followers: counts from 0 to 10^9 are judged alike.

Without history the rate comes from a weak prior, the rate a typical account of that size has (a thousandth
of its followers a day, at least one), worth a single arrival: one hour of real growth outweighs it.
"""

from __future__ import annotations

import math
from typing import Final, final

from service.detection.stats import mad_sd, median

PRIOR_SHARE: Final = 1e-3  # a typical account gains about this share of its followers a day
PRIOR_RATE: Final = 1.0  # and at least one follower a day
# The prior on the rate is a gamma distribution worth one arrival, and before its own days say otherwise
# a day varies by about its mean (CV 1). Before the first period closes, wider still (worth 0.3 of an
# arrival, CV 1.8 as the real Bibis Beauty Palace series): rates of accounts of one size differ by orders
# of magnitude, and the first hours of an established account's ordinary growth are not a burst.
PRIOR_SHAPE: Final = 1.0
PRIOR_DISPERSION: Final = 1.0 / PRIOR_SHAPE
NEWBORN_SHAPE: Final = 0.3
PRIOR_PERIODS: Final = 3.0  # the prior dispersion is worth this many periods
DEPARTURES_Z: Final = 3.0  # a burst on a shrinking account is judged as if departures paused this much
NOISE_PRIOR: Final = 48.0  # sub-daily differences worth as much as the Poisson default (2 days hourly)
FIT_PERIODS: Final = 14  # the usual rate rests on the last two weeks of periods
SPREAD_PERIODS: Final = 25  # the spread on more: one busy day in a month is the account's own nature
# A window this long is a daily period (a daily export may be polled hours early): its whole gain is judged
# against the rate as the periods measured it. A sub-daily burst's window (six hours, from a sample up to
# twelve hours older) stays shorter, and burst.py tells a delivery there from the hours around it.
WHOLE_DAY: Final = 0.8
MEDIAN_EFFICIENCY: Final = math.pi / 2  # the variance of a median of n values is this times the mean's


@final
class Process:
    """An account's own growth process, as its recent history shows it."""

    __slots__ = ("certainty", "days", "downside", "measured", "noise", "periods", "rate", "spread", "typical")

    def __init__(
        self,
        rate: float,
        spread: float,
        noise: float,
        days: float,
        periods: int,
        certainty: float,
        measured: float = 0.0,
        typical: float = -1.0,
        downside: float = -1.0,
    ) -> None:
        self.rate = rate  # usual net gain per day
        self.spread = spread  # variance of one day's gain, from the days above the usual rate
        self.typical = spread if typical < 0.0 else typical  # the same from the median deviation
        self.downside = spread if downside < 0.0 else downside  # from the days below the usual rate
        self.noise = noise  # variance per day of the gain over minutes to hours (0: not measured)
        self.measured = measured  # sub-daily differences the noise rests on
        self.days = days  # history it rests on
        self.periods = periods
        self.certainty = certainty  # arrivals the rate rests on, the prior's one included

    def at_rate(self, rate: float) -> Process:
        """The same process running at another rate (the pace of a surge already under way).

        Over-dispersion is a property of how an account grows: organic growth at twice the pace swings
        twice as much, so a faster pace carries the account's relative over-dispersion (beyond Poisson,
        at most the prior's CV 1) to its own level, as the held step judges a new level. Only once the
        account's own periods measured it (FIT_PERIODS of them): before, the spread is mostly the
        prior's, and a young repository's launch day would make every later wave look like its pace."""
        if rate > self.rate > 0.0 and self.periods >= FIT_PERIODS:
            return self._like(rate, self._carried(self.spread, rate), -1.0, self._carried(self.typical, rate))
        return self._like(rate, self.spread, -1.0)  # (its downside then taken as its spread)

    def _carried(self, variance: float, rate: float) -> float:
        """A day's ``variance`` at the usual rate, carried to a faster ``rate`` at the same relative
        over-dispersion (never less than it was)."""
        usual = self.rate
        relative = min(max(variance - usual, 0.0) / (usual * usual), PRIOR_DISPERSION)
        return max(variance, rate + relative * rate * rate)

    def calm(self) -> Process:
        """The same process judged by its typical days alone (the median deviation): its busy days left out."""
        return self._like(self.rate, self.typical, self.downside)

    def _like(self, rate: float, spread: float, downside: float, typical: float = -1.0) -> Process:
        return Process(
            rate,
            spread,
            self.noise,
            self.days,
            self.periods,
            self.certainty,
            self.measured,
            self.typical if typical < 0.0 else typical,
            downside,
        )

    def turnover(self) -> float:
        """The variance per day of the gain over minutes to hours (followers arriving and leaving, in
        clusters or not), believed as the sub-daily differences that show it pile up; 0 when unmeasured."""
        if self.measured <= 0.0:
            return 0.0
        poisson = abs(self.rate)
        return poisson + max(self.noise - poisson, 0.0) * self.measured / (self.measured + NOISE_PRIOR)

    def flows(self) -> tuple[float, float]:
        """(arrivals, departures): followers arriving and leaving per day.

        Only the net count is seen: the turnover (arrivals + departures, at least Poisson, measured from
        sub-daily samples; the daily spread stands in for it when a shrinking account has none) splits
        into the two, whose difference is the net rate."""
        # Even an account that gained nothing for weeks may gain one: a follower a day, worth one arrival.
        floor = 1.0 / (1.0 / PRIOR_RATE + self.days)
        rate = self.rate
        turnover = self.turnover()
        if turnover > 0.0:
            arrivals = max(rate, 0.5 * (turnover + rate), floor)
        elif rate > 0.0:
            arrivals = max(rate, floor)
        else:
            # A shrinking account seen only daily: its day-to-day spread is mostly how its arrivals vary
            # (busy and slow days), not how many arrive; a day's worth of its standard deviation arrives.
            arrivals = max(math.sqrt(self.spread), floor)
        return arrivals, max(arrivals - rate, 0.0)

    def arrivals(self) -> float:
        return self.flows()[0]

    def window(self, days: float) -> tuple[float, float]:
        """(mean, variance) of the arrivals in a window of ``days``.

        Arrivals are Poisson at the day's rate. The day's rate is the usual one give or
        take the account's day-to-day spread and the rate's own uncertainty: a busy day moves the whole of
        a window shorter than a day, and days beyond the first mostly on their own. Within a day the
        typical spread counts (the median's): one past delivery among the periods must not make every
        later hour look busy, and a busy day shows as hours of extra growth, which the burst detector
        reads as a ramp, not a step.
        """
        arrivals, departures = self.flows()
        certainty = max(self.certainty, PRIOR_SHAPE + arrivals * self.days)
        spread = self.spread if days >= 1.0 else self.typical
        unsure = self.unsure() if days >= WHOLE_DAY else 0.0
        level = max(spread - arrivals - departures, 0.0) + max(arrivals * arrivals / certainty, unsure)
        mean = arrivals * days
        return mean, mean + level * days * min(days, 1.0)

    def unsure(self) -> float:
        """The variance of the usual rate itself as a few periods measured it: their typical spread over
        their number (times pi/2 for a median). Not only the Poisson noise of the arrivals counted: one or
        two days of an over-dispersed account say little of its rate, however many followers they brought."""
        if self.periods <= 0:
            return 0.0  # a newborn's prior already spreads its rate (newborn())
        return MEDIAN_EFFICIENCY * self.typical / self.periods

    def log_surprise(self, excess: float, days: float) -> float:
        """log P(a gain at least ``excess`` above the usual in ``days``) under this process (0 or less).

        The gain is arrivals less departures; departures are Poisson, so the arrivals behind a gain are at
        least the gain plus the departures expected, less DEPARTURES_Z of their standard deviations."""
        departures = self.flows()[1]
        mean, variance = self.window(days)
        margin = DEPARTURES_Z * math.sqrt(departures * days)
        return log_nb_tail(mean + excess - margin, mean, variance)

    def plausible(self, excess: float, days: float, z: float) -> bool:
        """True when ``excess`` is within ``z`` standard deviations of the window's gain: never surprising
        enough to test exactly (the negative binomial's upper tail is heavier than the normal's)."""
        _, variance = self.window(days)
        return excess < z * math.sqrt(variance)


def fit(rates: list[float], days: float, followers: int, noise: float, measured: float, step: int) -> Process:
    """The process of an account whose recent periods had these daily ``rates`` (oldest first, the last
    FIT_PERIODS of them ``days`` long), now at ``followers``, with short-scale ``noise`` (0 when
    unmeasured) resting on ``measured`` differences, counts rounded to ``step``."""
    recent = rates[-FIT_PERIODS:]
    n = len(recent)
    prior = max(PRIOR_RATE, PRIOR_SHARE * followers)
    if n >= 3:
        rate = median(recent)
        if step > 1 and abs(rate) < step:
            # Counts rounded coarser than a day's growth: most days show no change, a few a whole step.
            rate = sum(recent, 0.0) / n
    else:
        # Gamma prior (one arrival at the prior rate) updated by what the periods gained.
        gained = sum(recent, 0.0) * (days / n)
        rate = (PRIOR_SHAPE + gained) / (PRIOR_SHAPE / prior + days)
    positive = max(rate, 0.0)
    # The spread: the periods' own, drawn towards a prior of CV 1 at the rate an account of that size
    # has, worth PRIOR_PERIODS periods (a week of calm days does not prove an account never has a busy
    # one); and the typical spread, from the median deviation, which one exceptional day does not move.
    # Drawn on a log scale: a prior off by a factor of 100 must fade as the account's own days pile up.
    spreading = rates[-SPREAD_PERIODS:]
    weight = max(len(spreading) - 1, 0)
    scale = max(abs(rate), prior)
    prior_spread = scale + PRIOR_DISPERSION * scale * scale
    # A count cannot vary by less than Poisson noise (of arrivals, or of departures), nor its rounding.
    floor = max(abs(rate), step * step / 12.0, 1e-3)
    observed = max(tail_variance(spreading, rate), floor) if weight else floor
    lower = max(tail_variance(spreading, rate, below=True), floor) if weight else floor
    typical = max(mad_sd(spreading, rate) ** 2, floor) if weight else floor
    spread = _blend(prior_spread, observed, weight)
    typical = _blend(prior_spread, typical, weight)
    downside = _blend(prior_spread, lower, weight)
    certainty = PRIOR_SHAPE + positive * days
    return Process(rate, spread, noise, days, n, certainty, measured, min(typical, spread), downside)


def unproven(process: Process, followers: int) -> Process:
    """The process of an account with fewer than FIT_PERIODS periods, for judging a whole day's gain: a few
    calm days do not prove it has no busy ones, so its days vary at least as a typical account's of its
    size and rate do (CV 1), its median spread included."""
    if process.periods >= FIT_PERIODS:
        return process
    scale = max(abs(process.rate), PRIOR_RATE, PRIOR_SHARE * followers)
    least = scale + PRIOR_DISPERSION * scale * scale
    return Process(
        process.rate,
        max(process.spread, least),
        process.noise,
        process.days,
        process.periods,
        process.certainty,
        process.measured,
        max(process.typical, least),
        process.downside,
    )


def _blend(prior: float, observed: float, weight: int) -> float:
    """Geometric mean of a prior (worth PRIOR_PERIODS) and what ``weight`` periods observed."""
    logs = PRIOR_PERIODS * math.log(prior) + weight * math.log(observed)
    return math.exp(logs / (PRIOR_PERIODS + weight))


def newborn(followers: int, gained: int, days: float, noise: tuple[float, float] = (0.0, 0.0)) -> Process:
    """The process of an account watched for ``days`` (under a period) that gained ``gained`` meanwhile:
    the prior, raised by what the account gained (a net loss says nothing about how many arrive)."""
    prior = max(PRIOR_RATE, PRIOR_SHARE * followers)
    rate = max(prior, (NEWBORN_SHAPE + max(gained, 0)) / (NEWBORN_SHAPE / prior + days))
    spread = rate + rate * rate / NEWBORN_SHAPE
    # Within the day, the hours ahead share the level of the hours that measured the rate (its own
    # uncertainty is the certainty's): as they pile up, their spread comes down from the wide prior's to a
    # typical account's days' (CV 1), the prior worth NEWBORN_SHAPE arrivals and CV 1 each one measured.
    own = max(gained, 0)
    typical = rate + rate * rate * (1.0 + PRIOR_DISPERSION * own) / (NEWBORN_SHAPE + own)
    return Process(rate, spread, noise[0], days, 0, NEWBORN_SHAPE + own, noise[1], typical)


def tail_variance(values: list[float], centre: float, below: bool = False) -> float:
    """The variance of the upper side (or the lower, ``below``): twice the mean squared deviation above
    ``centre`` (the median).

    Not the median absolute deviation: over-dispersed growth has heavy tails it does not see (an account
    whose busy days bring ten times its quiet ones), and one busy day in a month is the account's own
    nature, which the yardstick must keep. Not the losses either: a purge says nothing about how many
    followers can arrive in a day. An anomaly already past makes the next one harder to see for a month;
    that is the safe side.
    """
    total = 0.0
    for value in values:
        if (value < centre) if below else (value > centre):
            total += (value - centre) * (value - centre)
    return 2.0 * total / max(len(values) - 1, 1)


def shift_variance(rates: list[float]) -> float:
    """Variance of a day's rate from successive differences (half their mean square), the two largest
    cut to the third: a change of level (a drip switching on or off over a day or two, a purge) moves one
    or two differences, not all, while an over-dispersed account's busy and slow days move many."""
    n = len(rates) - 1
    if n <= 0:
        return 0.0
    total = first = second = third = 0.0  # the sum, and the three largest squares
    for i in range(1, len(rates)):
        d = rates[i] - rates[i - 1]
        square = d * d
        total += square
        if square > third:
            if square > first:
                first, second, third = square, first, second
            elif square > second:
                second, third = square, second
            else:
                third = square
    if n >= 6:
        total -= first + second - 2.0 * third
    return 0.5 * total / n


def log_nb_tail(k: float, mean: float, variance: float) -> float:
    """log P(N >= k) for N negative binomial with this mean and variance (Poisson when variance <= mean).

    Only the upper tail matters here: for ``k`` at or below the mean it returns 0 (probability one).
    """
    if k <= mean:
        return 0.0
    if k <= 0.0:
        return 0.0
    if variance <= mean * (1.0 + 1e-9):
        return _log_poisson_tail(k, mean)
    size = mean * mean / (variance - mean)
    x = mean / (size + mean)  # probability of an arrival in the negative binomial's trials
    return _log_beta_regularized(k, size, x)


def _log_poisson_tail(k: float, mean: float) -> float:
    # P(N >= k) = regularized lower gamma P(k, mean); a series that converges fast when k > mean.
    if mean <= 0.0:
        return -math.inf
    term = 1.0
    total = 1.0
    n = 1
    while n < 10_000:
        term *= mean / (k + n)
        total += term
        if term < total * 1e-12:
            break
        n += 1
    return k * math.log(mean) - mean - math.lgamma(k + 1.0) + math.log(total)


def _log_beta_regularized(a: float, b: float, x: float) -> float:
    """log I_x(a, b), the regularized incomplete beta function (continued fraction, DLMF 8.17.22)."""
    if x <= 0.0:
        return -math.inf
    if x >= 1.0:
        return 0.0
    if x > (a + 1.0) / (a + b + 2.0):
        # The fraction converges slowly here; use I_x(a, b) = 1 - I_(1-x)(b, a).
        other = math.exp(_log_beta_regularized(b, a, 1.0 - x))
        return math.log(max(1.0 - other, 1e-300))
    front = (
        a * math.log(x)
        + b * math.log1p(-x)
        - math.log(a)
        - (math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))
    )
    return front - math.log(_beta_fraction(a, b, x))


def _beta_fraction(a: float, b: float, x: float) -> float:
    """1 + d1/(1 + d2/(1 + ...)) by the modified Lentz method."""
    tiny = 1e-300
    f = 1.0
    c = 1.0
    d = 0.0
    for j in range(1, 400):
        m = j // 2
        if j % 2:
            term = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1.0))
        else:
            term = m * (b - m) * x / ((a + 2 * m - 1.0) * (a + 2 * m))
        d = 1.0 + term * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + term / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(c * d - 1.0) < 1e-12:
            break
    return f


def odds(log_p: float) -> str:
    """A tail probability as people say it: "odds of 1 in 3,400", "odds of 1 in 10^9", "odds beyond 1 in
    10^12" (further out, the model's tail says nothing more that matters)."""
    if log_p >= math.log(0.5):
        return "even odds"
    decimal = -log_p / math.log(10.0)
    if decimal < 6:
        return f"odds of 1 in {round(math.exp(-log_p)):,}"
    if decimal < 12:
        return f"odds of 1 in 10^{math.floor(decimal)}"
    return "odds beyond 1 in 10^12"
