"""How the detection targets hold across seeds: ``python -m bench.seeds`` writes docs/benchmarks-seeds.md.

The main benchmark (bench/run.py) is one draw of the scenario generator. This runs flockwatch alone (no
peers, no timing) on the same generator at its default size with several seeds and scores every run the
same way, so a target met on one seed by luck shows up as missed on the others. Each family's recall is
also given on the events whose window had no sample missing: a miss there is the detector's, a miss
elsewhere may be the data's.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

from bench.engine_run import flags, run_engine
from bench.report import MAX_FALSE_ALARMS, TARGETS
from bench.scenarios import Series, generate
from bench.scoring import Score, score

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (20261126, 1, 2, 3, 4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seeds", description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks-seeds.md")
    args = parser.parse_args(argv)
    results = []
    for seed in args.seeds:
        print(f"seed {seed}: generating and replaying", file=sys.stderr, flush=True)
        series = generate(seed)
        detections, _, _ = run_engine(series)
        results.append((seed, score(series, flags(detections)), _ceilings(series)))
    args.out.write_text(render(results), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _ceilings(series: list[Series]) -> dict[str, float]:
    """Per family, the share of events with at least one sample inside their window: no method can catch
    the rest in time (an outage hid the whole window)."""
    seen: dict[str, list[bool]] = {}
    for s in series:
        for event in s.events:
            inside = np.any((s.times > event.onset) & (s.times <= event.onset + event.window))
            seen.setdefault(event.family, []).append(bool(inside))
    return {family: sum(flags) / len(flags) for family, flags in seen.items()}


def render(results: list[tuple[int, Score, dict[str, float]]]) -> str:
    seeds = [seed for seed, _, _ in results]
    head = "| target | " + " | ".join(f"seed {seed}" for seed in seeds) + " | met on |"
    rows = [head, "|" + "---|" * (len(seeds) + 2)]
    for family, want in TARGETS.items():
        cells = [_recall_cell(s, family, want, ceilings[family]) for _, s, ceilings in results]
        met = sum(s.families[family].recall >= want for _, s, _ in results)
        rows.append(f"| {family} recall ≥ {want} | " + " | ".join(cells) + f" | {met} of {len(results)} |")
    rates = [s.false_alarm_rate for _, s, _ in results]
    met = sum(rate <= MAX_FALSE_ALARMS for rate in rates)
    cells = [f"{rate:.4f}" + ("" if rate <= MAX_FALSE_ALARMS else " **no**") for rate in rates]
    rows.append(
        f"| false alarms ≤ {MAX_FALSE_ALARMS} per organic account-month | "
        + " | ".join(cells)
        + f" | {met} of {len(results)} |"
    )
    return "\n".join(
        [
            "# Detection targets across seeds",
            "",
            f"Written by `python -m bench.seeds` on {platform.machine()}, Python {platform.python_version()}: "
            "flockwatch alone on the benchmark's generator at its default size, one run per seed, scored "
            "as in `docs/benchmarks.md` (seed 20261126 is that page's run). Each cell is the recall within "
            "the family's target window; in brackets, first the recall on the events whose window had no "
            "sample missing, then the ceiling: the share of events with at least one sample inside their "
            "window at all (an outage of 1 to 5 days, in 30% of series, can hide a whole window, and no "
            "method can catch those in time). Where a target is missed, compare it with the ceiling.",
            "",
            *rows,
            "",
        ]
    )


def _recall_cell(s: Score, family: str, want: float, ceiling: float) -> str:
    fam = s.families[family]
    mark = "" if fam.recall >= want else " **no**"
    return f"{fam.recall:.3f} ({fam.complete_recall:.3f}; {ceiling:.3f}){mark}"


if __name__ == "__main__":
    raise SystemExit(main())
