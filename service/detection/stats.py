"""Small robust statistics, written for a handful of values per call (no numpy needed at this size)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

MAD_TO_SD: Final = 1.4826  # MAD of a normal distribution times this is its standard deviation


def median(values: list[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return float(ordered[mid]) if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


def mad_sd(values: list[float], centre: float) -> float:
    """Robust standard deviation: scaled median absolute deviation."""
    return MAD_TO_SD * median([abs(v - centre) for v in values])


def robust_scale(values: list[float], centre: float, step: int) -> float:
    """A spread that is never zero: MAD, floored by Poisson noise, 10% of the level and the count's precision.

    The floors keep a perfectly regular history (MAD = 0) from turning every later wobble into an outlier.
    """
    # Comparisons written out rather than max() of four: this runs for every account every day.
    scale = mad_sd(values, centre)
    level = abs(centre)
    poisson = math.sqrt(level + 1.0)
    if poisson > scale:
        scale = poisson
    if 0.1 * level > scale:
        scale = 0.1 * level
    return float(step) if step > scale else scale


def day_to_day_sd(rates: list[float]) -> float:
    """Noise from successive differences: a level shift inside the window moves one difference, not all."""
    if len(rates) < 3:
        return 0.0
    steps = [abs(rates[i] - rates[i - 1]) for i in range(1, len(rates))]
    return MAD_TO_SD * median(steps) / math.sqrt(2.0)


def weighted_mean_sd(rates: Sequence[float], days: Sequence[float]) -> tuple[float, float]:
    """Mean daily rate and the standard deviation of one day's gain, from periods of unequal length.

    A period of L days averages L daily gains, so its rate has variance sd²/L; weighting by L undoes that.
    """
    total = sum(days, 0.0)
    mean = sum((r * d for r, d in zip(rates, days, strict=True)), 0.0) / total
    if len(rates) < 2:
        return mean, 0.0
    ss = sum((d * (r - mean) ** 2 for r, d in zip(rates, days, strict=True)), 0.0)
    return mean, math.sqrt(ss / (len(rates) - 1))


def chi2_lower_tail(statistic: float, dof: int) -> float:
    """P(X <= statistic) for X ~ chi-squared with ``dof`` degrees of freedom."""
    if statistic <= 0.0:
        return 0.0
    if statistic > dof + 10.0 * math.sqrt(2.0 * dof) + 10.0:
        return 1.0  # ten standard deviations above the mean: the lower tail is all of it
    return _lower_gamma_regularized(dof / 2.0, statistic / 2.0)


def _lower_gamma_regularized(a: float, x: float) -> float:
    # Series expansion; converges fast for the small x of a lower tail test and is exact enough elsewhere.
    term = 1.0 / a
    total = term
    for n in range(1, 500):
        term *= x / (a + n)
        total += term
        if term < total * 1e-12:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - math.lgamma(a)) * total)


def signed(value: float) -> str:
    """A gain as people write it: +768, -1,250 (thousands separated, sign always shown)."""
    return f"{round(value):+,}"


def days(value: float) -> str:
    """A span in whole days, as a sentence says it: 1 day, 9 days."""
    n = round(value)
    return "1 day" if n == 1 else f"{n} days"


def count(value: float) -> str:
    return f"{round(value):,}"


def percent(fraction: float) -> str:
    """Two significant figures where it matters: 0.04%, 1.3%, 12%."""
    size = abs(fraction)
    digits = 0 if size >= 0.1 else 1 if size >= 0.01 else 2 if size >= 0.001 else 3
    return f"{fraction * 100:.{digits}f}%"
