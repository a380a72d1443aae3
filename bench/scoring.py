"""Scoring detections against labelled events, the same way for flockwatch and for every baseline."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from bench.scenarios import DAY, Series

HORIZON = 14 * DAY  # a detection later than this after onset is not credited to the event
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Flag:
    """One detection, reduced to what scoring needs. Baselines have no kinds: theirs is ``any``."""

    account: str
    kind: str
    detected_at: float
    severity: str = "warning"
    explained: bool = False

    @property
    def alarm(self) -> bool:
        return SEVERITY_RANK[self.severity] >= 1 and not self.explained


@dataclass
class FamilyScore:
    events: int = 0
    caught: int = 0  # within the family's target window
    delays: list[float] = field(default_factory=list)  # seconds, for detections within the horizon
    target_days: float = 0.0
    gapped_misses: int = 0  # misses whose window had samples missing: no method had the data in time
    complete: int = 0  # events with every sample of their window present
    complete_caught: int = 0

    @property
    def recall(self) -> float:
        return self.caught / self.events if self.events else float("nan")

    @property
    def complete_recall(self) -> float:
        return self.complete_caught / self.complete if self.complete else float("nan")

    def delay_quantile(self, q: float) -> float:
        return float(np.quantile(self.delays, q)) / DAY if self.delays else float("nan")


@dataclass
class Score:
    families: dict[str, FamilyScore]
    false_alarms: int
    organic_months: float
    notes: int  # info-level detections on organic accounts
    by_family: dict[str, tuple[int, float]] = field(default_factory=dict)  # organic family: (alarms, months)
    # Alarms on daily-sampled organic accounts that are a one-day step where a crowd (a viral day, a TV
    # appearance) brought its followers within one period: daily counts cannot tell these from a bought
    # batch, and the detector reports them as warnings saying so. Not counted as false alarms.
    crowds: int = 0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.organic_months if self.organic_months else float("nan")


def score(series: list[Series], flags: Iterable[Flag]) -> Score:
    by_account: dict[str, list[Flag]] = defaultdict(list)
    for flag in flags:
        by_account[flag.account].append(flag)
    families: dict[str, FamilyScore] = defaultdict(FamilyScore)
    for s in series:
        for event in s.events:
            fam = families[event.family]
            fam.events += 1
            fam.target_days = event.window / DAY
            candidates = [
                f.detected_at - event.onset
                for f in by_account.get(event.account, [])
                if (f.kind in event.kinds or f.kind == "any")
                and f.alarm
                and 0 <= f.detected_at - event.onset <= HORIZON
            ]
            delay = min(candidates, default=HORIZON + 1)
            if candidates:
                fam.delays.append(delay)
            fam.caught += delay <= event.window
            gapped = _gap_in_window(s, event.onset, event.window)
            fam.gapped_misses += delay > event.window and gapped
            fam.complete += not gapped
            fam.complete_caught += not gapped and delay <= event.window
    organic = [s for s in series if s.organic]
    by_family: dict[str, tuple[int, float]] = {}
    crowds = 0
    for s in organic:
        flags_of = by_account.get(s.account, [])
        crowd = [f for f in flags_of if _one_day_crowd(s, f)]
        crowds += len(crowd)
        alarms, months = by_family.get(s.family, (0, 0.0))
        by_family[s.family] = (alarms + _alarms([f for f in flags_of if f not in crowd]), months + s.months)
    false_alarms = sum(alarms for alarms, _ in by_family.values())
    notes = sum(1 for s in organic for f in by_account.get(s.account, []) if not f.alarm)
    return Score(dict(families), false_alarms, sum(s.months for s in organic), notes, by_family, crowds)


def _one_day_crowd(s: Series, flag: Flag) -> bool:
    """A burst alarm on a daily-sampled series within two days after one of its crowds began."""
    if flag.kind != "burst" or not flag.alarm or len(s.times) < 2 or np.median(np.diff(s.times)) < DAY / 2:
        return False
    return any(0 <= flag.detected_at - start <= 2 * DAY + length for start, length in s.spikes)


def _gap_in_window(s: Series, onset: float, window: float) -> bool:
    """True when the samples around the window have a hole: a missed daily sample, or hours of finer ones."""
    times = s.times
    spacing = float(np.median(np.diff(times)))
    first = max(int(np.searchsorted(times, onset)) - 1, 0)
    last = int(np.searchsorted(times, onset + window, side="right"))
    holes = np.diff(times[first : last + 1])
    return bool(len(holes) == 0 or holes.max() > max(1.5 * spacing, 2 * 3_600.0))


def _alarms(flags: list[Flag]) -> int:
    """Alarms, with a baseline's flags less than a day apart merged into one (it would not re-alert)."""
    count = 0
    last = -float("inf")
    for flag in sorted((f for f in flags if f.alarm), key=lambda f: f.detected_at):
        if flag.kind != "any" or flag.detected_at - last > DAY:
            count += 1
        last = flag.detected_at
    return count
