"""docs/benchmarks.md from one benchmark run."""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.scenarios import Series
from bench.scoring import FamilyScore, Score

FAMILY_ORDER = [
    "drip_constant",
    "drip_constant_noisy",
    "drip_jitter10",
    "drip_jitter30",
    "drip_jitter30_15min",
    "fall",
    "burst_15min",
    "purge",
    "churn",
    "platform_purge",
    "github_campaign",
    "newborn_burst",
    "staircase",
    "drip_feed",
    "seller_drip_daily",
    "seller_drip_15min",
    "refill",
    "sawtooth_drop",
    "heavy_fall",
]
# (family, minimum recall within its window) as the issue sets them
TARGETS = {
    "drip_constant": 0.98,
    "drip_jitter30": 0.85,
    "drip_jitter30_15min": 0.85,
    "burst_15min": 0.95,
    "fall": 0.9,
    "github_campaign": 0.9,  # issue 9: fake-star waves flagged within 6 h
}
MAX_FALSE_ALARMS = 0.01
THROUGHPUT_TARGET = 100_000


@dataclass
class Backtest:
    samples: int
    runs: list[float]  # CPU seconds of each end-to-end run
    reading: float  # best CPU seconds of reading and sorting the CSV
    startup: float  # best CPU seconds of starting the command

    @property
    def seconds(self) -> float:
        return min(self.runs)


@dataclass
class Report:
    seed: int
    series: list[Series]
    samples: int
    methods: list[tuple[str, Score, float]]
    engine_seconds: float
    backtest: Backtest
    real: list[tuple[str, list[str]]]
    organic_alarms: list[str]
    peer_note: str
    machine: str
    command: str


def write_report(r: Report) -> str:
    ours = r.methods[0][1]
    parts = [
        "# Detection benchmark",
        "",
        f"Written by `{r.command}` (seed {r.seed}) on {r.machine}. {len(r.series):,} generated series, "
        f"{r.samples:,} samples, {ours.organic_months:,.0f} organic account-months. The scenarios are "
        "described in `bench/scenarios.py` and `docs/detection.md`; every method is scored by the same code "
        "(`bench/scoring.py`).",
        "",
        "Scoring: an event is caught when the method raises an alarm on that account (for flockwatch: a "
        "detection of the expected kind with severity warning or critical; baselines have no kinds, so any "
        "flag counts) at or after the onset; *recall* counts those within the family's target window, "
        "delays are to the first alarm within 14 days. A *false alarm* is an alarm on an organic account "
        "(flockwatch: warning or critical, not explained by a platform event; baselines: flags more than a "
        "day apart). Information-level notes (viral ramps, one-day steps, rate changes, explained drops) are "
        "counted separately.",
        "",
        "## Targets",
        "",
        *_targets(r),
        "",
        "## flockwatch per family",
        "",
        *_families(ours),
        "",
        f"False alarms: {ours.false_alarms} in {ours.organic_months:,.0f} organic account-months "
        f"(**{ours.false_alarm_rate:.4f} per account-month**, viral spikes and platform purges included); "
        f"{ours.notes:,} information-level notes ({ours.notes / ours.organic_months:.2f} per account-month); "
        f"{ours.crowds:,} one-day crowds at warning on daily-sampled organic accounts "
        f"({ours.crowds / ours.organic_months:.3f} per account-month: a viral day that brought its followers "
        "within one period, which daily counts cannot tell from a bought batch; the warning says so). "
        "By organic family: "
        + "; ".join(
            f"{family} {alarms} in {months:,.0f} months"
            for family, (alarms, months) in sorted(ours.by_family.items())
        )
        + ".",
        "",
        "## Side by side",
        "",
        f"Peers: {r.peer_note}. Recall within each family's target window; false alarms per organic "
        "account-month; cost is CPU time per series. Read recall together with false alarms: a method that "
        "flags every few days on every account (the MAD band, PersistAD) catches nearly everything and "
        "would bury a user in alarms; S-H-ESD misses exact drips because it stops when the MAD is 0.",
        "",
        *_side_by_side(r),
        "",
        "## Speed",
        "",
        *_speed(r),
        "",
        "## flockwatch's false alarms",
        "",
        "Every warning or critical detection on an organic account, so they can be checked by hand:",
        "",
        *[f"- {line}" for line in r.organic_alarms],
        "",
        "## The real series",
        "",
        "flockwatch's `regular_growth` detections and its warnings of any kind on the two real YouTube "
        "histories in `tests/data/real/` (a copy of `shared/data/real/`; unlabelled, mostly organic: their one-day steps are viral days "
        "that daily counts cannot tell from a bought batch):",
        "",
        *_real(r),
        "",
    ]
    return "\n".join(parts)


def _targets(r: Report) -> list[str]:
    ours = r.methods[0][1]
    rows = ["| target | measured | met |", "|---|---|---|"]
    for family, want in TARGETS.items():
        fam = ours.families.get(family)
        if fam is None:
            continue
        window = _window(fam)
        rows.append(
            f"| {family}: recall within {window} ≥ {want} | {fam.recall:.3f} "
            f"({fam.complete_recall:.3f} on the {fam.complete} events with no sample missing in the window) "
            f"| {_ok(fam.recall >= want)} |"
        )
    rate = ours.false_alarm_rate
    rows.append(
        f"| false alarms ≤ {MAX_FALSE_ALARMS} per organic account-month | {rate:.4f} | "
        f"{_ok(rate <= MAX_FALSE_ALARMS)} |"
    )
    real_regular = sum(1 for _, lines in r.real for line in lines if line.startswith("regular_growth"))
    rows.append(
        f"| zero regular_growth detections on the real series | {real_regular} | {_ok(real_regular == 0)} |"
    )
    samples, seconds = r.backtest.samples, r.backtest.seconds
    rows.append(
        f"| backtest ≥ {THROUGHPUT_TARGET:,} samples/s on one core | {samples / seconds:,.0f}/s end to end, "
        f"{r.samples / r.engine_seconds:,.0f}/s in the engine | "
        f"{_ok(samples / seconds >= THROUGHPUT_TARGET)} |"
    )
    return rows


def _families(s: Score) -> list[str]:
    rows = [
        "| family | events | target window | recall in window | median delay | p90 delay | caught ≤ 14 d "
        "| misses with samples missing in the window |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for family in _ordered(s):
        fam = s.families[family]
        rows.append(
            f"| {family} | {fam.events} | {_window(fam)} | {fam.recall:.3f} | {_delay(fam, 0.5)} | "
            f"{_delay(fam, 0.9)} | {len(fam.delays) / fam.events:.3f} | "
            f"{fam.gapped_misses} of {fam.events - fam.caught} |"
        )
    return rows


def _side_by_side(r: Report) -> list[str]:
    families = _ordered(r.methods[0][1])
    head = "| method | " + " | ".join(families) + " | false alarms / acct-month | cost / series |"
    rows = [head, "|" + "---|" * (len(families) + 3)]
    count = len(r.series)
    for name, s, seconds in r.methods:
        cells = [f"{s.families[f].recall:.2f}" if f in s.families else "-" for f in families]
        rows.append(
            f"| {name} | " + " | ".join(cells) + f" | {s.false_alarm_rate:.3f} | "
            f"{1000 * seconds / count:.2f} ms |"
        )
    return rows


def _speed(r: Report) -> list[str]:
    b = r.backtest
    samples, seconds, reading, startup = b.samples, b.seconds, b.reading, b.startup
    runs = ", ".join(f"{run:.1f}" for run in b.runs)
    return [
        "- Times are CPU seconds of one process: the machine is shared, and wall time would measure the "
        "neighbours too. The detection modules run compiled by mypyc, as `make install` and `pip install` "
        "build them (setup.py).",
        f"- Engine alone (samples already parsed): {r.samples:,} samples in "
        f"{r.engine_seconds:.1f} s = **{r.samples / r.engine_seconds:,.0f} samples/s**.",
        "- `flockwatch backtest` end to end (`python -m service backtest FILE.csv > /dev/null` on a CSV of "
        "every scenario in Unix seconds, each account's rows together as an export writes them, which the "
        "reader sorts into time order; start-up, CSV parsing, sorting, replay and JSON output): "
        f"{samples:,} samples in {seconds:.1f} s = **{samples / seconds:,.0f} samples/s**, the best of "
        f"{len(b.runs)} runs ({runs} s: on a shared machine, noise only ever adds time). Of that, reading "
        f"and sorting the CSV takes {reading:.1f} s ({samples / reading:,.0f} samples/s) and starting the "
        f"command (interpreter and imports) {startup:.2f} s; the rest is the replay.",
        "- Memory: per account the engine keeps the boundaries of the last 25 day-scale periods, 6 hours of "
        "raw samples for the burst detector, hourly points of 36 hours for the drop detector and 10 "
        "following-count swings, in arrays of primitives: about 4 KB per account at 15-minute sampling, "
        "however long the history (`python -m bench.engine_memory`, docs/benchmarks-memory.md).",
        "- Per-series cost of every method is in the side-by-side table (same series, same run). S-H-ESD and "
        "ADTK are batch methods: they re-read the whole series on every run, where flockwatch does constant "
        "work per new sample.",
    ]


def _real(r: Report) -> list[str]:
    out = []
    for name, lines in r.real:
        out.append(f"- `{name}`: {len(lines)} detection(s)")
        out += [f"  - {line}" for line in lines]
    return out


def _ordered(s: Score) -> list[str]:
    return [f for f in FAMILY_ORDER if f in s.families] + sorted(set(s.families) - set(FAMILY_ORDER))


def _window(fam: FamilyScore) -> str:
    return f"{fam.target_days * 24:.0f} h" if fam.target_days < 1 else f"{fam.target_days:.0f} d"


def _delay(fam: FamilyScore, q: float) -> str:
    days = fam.delay_quantile(q)
    if math.isnan(days):
        return "-"
    return f"{days * 24:.1f} h" if fam.target_days < 1 else f"{days:.2f} d"


def _ok(met: bool) -> str:
    return "yes" if met else "**no**"
