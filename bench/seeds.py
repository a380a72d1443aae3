"""How the detection targets hold across seeds: ``python -m bench.seeds`` writes docs/benchmarks-seeds.md.

The main benchmark (bench/run.py) is one draw of the scenario generator. This runs flockwatch alone (no
peers, no timing) on the same generator at its default size with five seeds, and on the independent
generator (bench/independent.py) with five seeds of its own, and scores every run the same way, so a target
met on one seed by luck shows up as missed on the others: a target counts as met on at least 4 of 5 seeds.
Each family's recall is also given on the events whose window had no sample missing: a miss there is the
detector's, a miss elsewhere may be the data's.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

from bench import independent
from bench.engine_run import flags, run_engine
from bench.report import FAMILY_ORDER, MAX_FALSE_ALARMS, TARGETS
from bench.scenarios import Series, generate
from bench.scoring import Score, score

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (20261126, 1, 2, 3, 4)
Result = tuple[int, Score, dict[str, float]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seeds", description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--independent-seeds", type=int, nargs="+", default=list(independent.SEEDS))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-seeds.md")
    args = parser.parse_args(argv)
    results = [_run(seed, generate(seed)) for seed in args.seeds]
    checks = [_run(seed, independent.generate(seed)) for seed in args.independent_seeds]
    args.out.write_text(render(results, checks), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _run(seed: int, series: list[Series]) -> Result:
    print(f"seed {seed}: replaying {len(series):,} series", file=sys.stderr, flush=True)
    detections, _, _ = run_engine(series)
    return seed, score(series, flags(detections)), _ceilings(series)


def _ceilings(series: list[Series]) -> dict[str, float]:
    """Per family, the share of events with at least one sample inside their window: no method can catch
    the rest in time (an outage hid the whole window)."""
    seen: dict[str, list[bool]] = {}
    for s in series:
        for event in s.events:
            inside = np.any((s.times > event.onset) & (s.times <= event.onset + event.window))
            seen.setdefault(event.family, []).append(bool(inside))
    return {family: sum(flags) / len(flags) for family, flags in seen.items()}


def render(results: list[Result], checks: list[Result]) -> str:
    return "\n".join(
        [
            "# Detection targets across seeds",
            "",
            f"Written by `python -m bench.seeds` on {platform.machine()}, Python {platform.python_version()}: "
            "flockwatch alone, one run per seed, scored as in `docs/benchmarks.md` (seed 20261126 is that "
            "page's run). Each cell is the recall within the family's target window; in brackets, first the "
            "recall on the events whose window had no sample missing, then the ceiling: the share of events "
            "with at least one sample inside their window at all (an outage of 1 to 5 days, in 30% of "
            "series, can hide a whole window, and no method can catch those in time). A target is met when "
            "it holds on at least 4 of the 5 seeds; rows without a target are reported as measured.",
            "",
            "## The benchmark's generator (bench/scenarios.py)",
            "",
            *_table(results, [f for f in FAMILY_ORDER if f in results[0][1].families], TARGETS),
            *_false_alarms(results),
            "",
            "## The independent generator (bench/independent.py)",
            "",
            "A second generator written apart from the first, with another noise model (negative-binomial "
            "organic gains simulated minute by minute, poll jitter, missed polls and outages), for the four "
            "cases of issue 9's table. Its organic accounts decline, are noisy (daily CV 0.6-1.4) or change "
            "their follow rate by x0.2-5 within 1-7 days.",
            "",
            *_table(checks, list(independent.TARGETS), independent.TARGETS),
            *_false_alarms(checks),
            "",
        ]
    )


def _table(results: list[Result], families: list[str], targets: dict[str, float]) -> list[str]:
    seeds = [seed for seed, _, _ in results]
    rows = ["| family | target | " + " | ".join(f"seed {seed}" for seed in seeds) + " | met on |"]
    rows.append("|" + "---|" * (len(seeds) + 3))
    for family in families:
        want = targets.get(family)
        cells = [_cell(score, ceilings, family, want) for _, score, ceilings in results]
        met = sum(want is not None and score.families[family].recall >= want for _, score, _ in results)
        target = f"≥ {want}" if want is not None else "-"
        verdict = f"{met} of {len(results)}" if want is not None else "-"
        window = _window(results[0][1], family)
        rows.append(f"| {family} ({window}) | {target} | " + " | ".join(cells) + f" | {verdict} |")
    return rows


def _false_alarms(results: list[Result]) -> list[str]:
    rates = [score.false_alarm_rate for _, score, _ in results]
    met = sum(rate <= MAX_FALSE_ALARMS for rate in rates)
    cells = [f"{rate:.4f}" + ("" if rate <= MAX_FALSE_ALARMS else " **no**") for rate in rates]
    crowds = [score.crowds / score.organic_months for _, score, _ in results]
    lines = [
        f"| false alarms per organic account-month | ≤ {MAX_FALSE_ALARMS} | "
        + " | ".join(cells)
        + f" | {met} of {len(results)} |",
        "| one-day crowds at warning per organic account-month | - | "
        + " | ".join(f"{c:.4f}" for c in crowds)
        + " | - |",
        "",
        "False alarms by organic family, per seed (alarms in account-months): "
        + "; ".join(
            f"seed {seed}: "
            + ", ".join(
                f"{fam} {alarms}/{months:,.0f}" for fam, (alarms, months) in sorted(score.by_family.items())
            )
            for seed, score, _ in results
        )
        + ".",
    ]
    return lines


def _cell(s: Score, ceilings: dict[str, float], family: str, want: float | None) -> str:
    fam = s.families[family]
    mark = "" if want is None or fam.recall >= want else " **no**"
    return f"{fam.recall:.3f} ({fam.complete_recall:.3f}; {ceilings[family]:.3f}){mark}"


def _window(s: Score, family: str) -> str:
    days = s.families[family].target_days
    return f"{days * 24:.0f} h" if days < 1 else f"{days:.0f} d"


if __name__ == "__main__":
    raise SystemExit(main())
