"""Twitter's S-H-ESD and ADTK's detectors, run in their own environment (ADTK needs pandas < 2).

Usage (by ``bench.run``): ``bench/.venv-adtk/bin/python bench/baselines/peers.py IN.json OUT.json``.
IN holds series as {"account", "times" (epoch s), "followers"}; OUT maps method -> account -> flagged times,
plus the seconds each method spent. Every method reads the same thing: the growth rate per day between
consecutive samples (a follower count itself is a trend, which both tools would flag only for its slope).

S-H-ESD follows the published algorithm (Hochenbaum, Vallis, Kejariwal 2017; Twitter AnomalyDetection R
package) rather than a Python port: STL with a periodic seasonal window and robust fitting, residual =
value - seasonal - median, then generalised ESD with median and MAD (scaled by 1.4826), max_anoms 0.02,
alpha 0.05, both tails — and, as in the R code, the loop stops when the MAD is 0. Sub-daily series are cut
into two-week pieces (``longterm``); daily series are one piece (two weeks of days is too few for 2%).
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.tsa.seasonal import STL

DAY = 86_400.0
MAX_ANOMS = 0.02
ALPHA = 0.05


def rates(times: np.ndarray, followers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dt = np.diff(times)
    return times[1:], np.diff(followers) / (dt / DAY)


def esd(values: np.ndarray, period: int) -> list[int]:
    """Indices flagged by seasonal hybrid ESD in one piece."""
    n = len(values)
    max_outliers = int(n * MAX_ANOMS)
    if n < 2 * period or max_outliers == 0:
        return []
    # R's stl(s.window = "periodic", robust = TRUE): window 10n+1, degree 0, 1 inner and 15 outer passes.
    stl = STL(values, period=period, seasonal=_periodic(n), seasonal_deg=0, robust=True)
    seasonal = stl.fit(inner_iter=1, outer_iter=15).seasonal
    data = values - seasonal - np.median(values)
    index = np.arange(n)
    flagged: list[int] = []
    anomalies = 0
    for i in range(1, max_outliers + 1):
        median = np.median(data)
        sigma = 1.4826 * np.median(np.abs(data - median))
        if sigma == 0:
            break  # as in the R package: nothing is tested once the MAD is 0
        scores = np.abs(data - median) / sigma
        worst = int(np.argmax(scores))
        flagged.append(int(index[worst]))
        p = 1 - ALPHA / (2 * (n - i + 1))
        t = stats.t.ppf(p, n - i - 1)
        critical = t * (n - i) / np.sqrt((n - i - 1 + t * t) * (n - i + 1))
        if scores[worst] > critical:
            anomalies = i
        data = np.delete(data, worst)
        index = np.delete(index, worst)
    return flagged[:anomalies]


def _periodic(n: int) -> int:
    width = 10 * n + 1
    return width if width % 2 else width + 1


def shesd(times: np.ndarray, followers: np.ndarray) -> list[float]:
    t, x = rates(times, followers)
    step = float(np.median(np.diff(t))) if len(t) > 1 else DAY
    sub_daily = step < DAY / 2
    period = round(DAY / step) if sub_daily else 7
    piece = round(14 * DAY / step) if sub_daily else len(x)
    out: list[float] = []
    for start in range(0, len(x), piece):
        chunk = x[start : start + piece]
        if len(chunk) < piece // 2 and start > 0:  # the R package folds a short tail into the last piece
            chunk = x[max(0, len(x) - piece) :]
            start = max(0, len(x) - piece)
        out += [float(t[start + i]) for i in esd(chunk, period)]
    return sorted(set(out))


def adtk_methods():  # type: ignore[no-untyped-def]
    from adtk.data import validate_series
    from adtk.detector import LevelShiftAD, PersistAD, VolatilityShiftAD

    # The settings of ADTK's own documentation examples.
    detectors = {
        "ADTK LevelShiftAD": lambda: LevelShiftAD(c=6.0, side="both", window=5),
        "ADTK VolatilityShiftAD": lambda: VolatilityShiftAD(c=6.0, side="positive", window=30),
        "ADTK PersistAD": lambda: PersistAD(c=3.0, side="positive"),
    }

    def run(make):  # type: ignore[no-untyped-def]
        def detect(times: np.ndarray, followers: np.ndarray) -> list[float]:
            t, x = rates(times, followers)
            series = validate_series(pd.Series(x, index=pd.to_datetime(t, unit="s")))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    flags = make().fit_detect(series)
                except (ValueError, RuntimeError):
                    return []
            hit = flags.fillna(False).astype(bool).to_numpy()
            return [float(v) for v in t[hit]]

        return detect

    return {name: run(make) for name, make in detectors.items()}


def _timed_shesd(item: dict) -> tuple[str, list[float], float]:  # type: ignore[type-arg]
    started = time.process_time()
    flags = shesd(np.asarray(item["times"], float), np.asarray(item["followers"], float))
    return item["account"], flags, time.process_time() - started


def main(source: str, target: str, workers: int = 2) -> None:
    with open(source) as handle:
        series = json.load(handle)
    result: dict[str, dict] = {"flags": {}, "seconds": {}}  # type: ignore[type-arg]
    # S-H-ESD is the slow one: it runs in two workers, its per-series CPU time summed inside them.
    with multiprocessing.Pool(workers) as pool:
        done = pool.map(_timed_shesd, series, chunksize=4)
    result["flags"]["S-H-ESD (Twitter)"] = {account: flags for account, flags, _ in done}
    result["seconds"]["S-H-ESD (Twitter)"] = sum(seconds for _, _, seconds in done)
    for name, method in adtk_methods().items():
        started = time.process_time()
        flags = {}
        for s in series:
            flags[s["account"]] = method(np.asarray(s["times"], float), np.asarray(s["followers"], float))
        result["seconds"][name] = time.process_time() - started
        result["flags"][name] = flags
    for name, seconds in result["seconds"].items():
        print(f"{name}: {seconds:.1f} s for {len(series)} series", file=sys.stderr, flush=True)
    with open(target, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 2)
