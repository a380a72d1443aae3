"""The two rules people use without a library, streamed sample by sample like flockwatch.

- *Median ± k·MAD band*, as Grafana's promql-anomaly-detection robust band: the growth rate per day is
  compared with the median and MAD (scaled by 1.4826) of the previous day of rates (sub-daily samples) or
  the previous 14 rates (daily), k = 3; it alerts after two samples in a row outside the band (its
  ``for: 5m`` on 15-minute samples; on daily samples one is enough).
- *"+10% in 24 h or -5%"*: the count against the count 24 hours earlier.
"""

from __future__ import annotations

from collections import deque
from statistics import median

import numpy as np

DAY = 86_400.0
K = 3.0


def mad_band(times: np.ndarray, followers: np.ndarray) -> list[float]:
    t = times.tolist()
    f = followers.tolist()
    sub_daily = len(t) > 1 and (t[-1] - t[0]) / (len(t) - 1) < DAY / 2
    history: deque[tuple[float, float]] = deque()
    flags: list[float] = []
    outside = 0
    for i in range(1, len(t)):
        rate = (f[i] - f[i - 1]) / ((t[i] - t[i - 1]) / DAY)
        past = [r for when, r in history if when >= t[i] - DAY] if sub_daily else [r for _, r in history]
        if len(past) >= 7:
            centre = median(past)
            spread = 1.4826 * median([abs(r - centre) for r in past])
            outside = outside + 1 if abs(rate - centre) > K * spread else 0
            if outside >= (2 if sub_daily else 1):
                flags.append(t[i])
        history.append((t[i], rate))
        while history and (history[0][0] < t[i] - DAY if sub_daily else len(history) > 14):
            history.popleft()
    return flags


def ten_percent_rule(times: np.ndarray, followers: np.ndarray) -> list[float]:
    t = times.tolist()
    f = followers.tolist()
    flags: list[float] = []
    j = 0
    for i in range(len(t)):
        while j + 1 < i and t[j + 1] <= t[i] - DAY * 0.99:
            j += 1
        if t[i] - t[j] < DAY * 0.99 or f[j] <= 0:
            continue
        ratio = f[i] / f[j]
        if ratio >= 1.10 or ratio <= 0.95:
            flags.append(t[i])
    return flags
