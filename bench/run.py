"""The detection benchmark: ``python -m bench.run`` writes docs/benchmarks.md.

Generates the labelled scenarios (bench/scenarios.py), replays them through flockwatch's streaming engine and
through the baselines, scores everything the same way (bench/scoring.py), runs the engine on the two real
series, and measures speed. ``--quick`` runs a small version for a smoke test.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.baselines.simple import mad_band, ten_percent_rule
from bench.engine_run import flags, run_engine
from bench.report import Backtest, Report, write_report
from bench.scenarios import Series, Sizes, generate
from bench.scoring import Flag, Score, score
from service.detection.base import Detection
from service.detection.csvinput import read_records, read_samples
from service.detection.engine import DetectionEngine

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / "bench" / ".venv-adtk"
PEERS = ROOT / "bench" / "baselines" / "peers.py"
RESULTS = ROOT / "bench" / "results"  # git-ignored
REAL = ROOT / "tests" / "data" / "real"  # a copy of shared/data/real
PEER_PACKAGES = ["numpy<2", "pandas==1.5.3", "scipy<1.12", "statsmodels<0.15", "matplotlib<3.9", "adtk"]


@dataclass
class Method:
    name: str
    score: Score
    seconds: float  # CPU seconds over all series


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--seed", type=int, default=20261126)
    parser.add_argument("--quick", action="store_true", help="a small run, for a smoke test")
    parser.add_argument("--no-peers", action="store_true", help="skip S-H-ESD and ADTK")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args(argv)

    sizes = Sizes.quick() if args.quick else Sizes()
    say(f"generating scenarios (seed {args.seed})")
    series = generate(args.seed, sizes)
    say(f"{len(series):,} series, {sum(len(s.times) for s in series):,} samples")

    detections, samples, engine_seconds = run_engine(series)
    say(f"flockwatch: {samples:,} samples in {engine_seconds:.1f} s ({samples / engine_seconds:,.0f}/s)")
    methods = [Method("flockwatch", score(series, flags(detections)), engine_seconds)]
    methods += [_simple("median ± 3·MAD band (Grafana)", mad_band, series)]
    methods += [_simple("+10%/24 h or -5% rule", ten_percent_rule, series)]
    peers, peer_note = ({}, "skipped (--no-peers)") if args.no_peers else _peers(series)
    methods += [Method(name, score(series, found), seconds) for name, (found, seconds) in peers.items()]

    report = Report(
        seed=args.seed,
        series=series,
        samples=samples,
        methods=[(m.name, m.score, m.seconds) for m in methods],
        engine_seconds=engine_seconds,
        backtest=_backtest_throughput(series),
        real=_real_series(),
        organic_alarms=_organic_alarms(series, detections),
        peer_note=peer_note,
        machine=f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        command="python -m bench.run" + (" --quick" if args.quick else ""),
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(write_report(report))
    say(f"wrote {args.out}")
    return 0


def _simple(name: str, rule: Callable[[np.ndarray, np.ndarray], list[float]], series: list[Series]) -> Method:
    started = time.process_time()
    found = [Flag(s.account, "any", t) for s in series for t in rule(s.times, s.followers)]
    seconds = time.process_time() - started
    say(f"{name}: {seconds:.1f} s")
    return Method(name, score(series, found), seconds)


def _peers(series: list[Series]) -> tuple[dict[str, tuple[list[Flag], float]], str]:
    python = VENV / "bin" / "python"
    if not python.exists():
        say(f"creating {VENV} for ADTK and S-H-ESD (pandas < 2)")
        made = subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=False)
        installed = (
            made.returncode == 0
            and subprocess.run(
                [str(VENV / "bin" / "pip"), "install", "-q", *PEER_PACKAGES], check=False
            ).returncode
            == 0
        )
        if not installed:
            return {}, f"not run: could not install {' '.join(PEER_PACKAGES)} into {VENV}"
    payload = json.dumps(
        [{"account": s.account, "times": s.times.tolist(), "followers": s.followers.tolist()} for s in series]
    )
    # The peers' verdicts depend only on the series: a re-run on the same scenarios reuses them.
    cached = RESULTS / f"peers-{hashlib.sha256(payload.encode()).hexdigest()[:16]}.json"
    if cached.exists():
        say(f"reusing the peers' results for these scenarios from {cached.relative_to(ROOT)}")
    else:
        RESULTS.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / "in.json"
            source.write_text(payload)
            say("running S-H-ESD and ADTK in their own environment")
            done = subprocess.run([str(python), str(PEERS), str(source), str(cached)], check=False)
            if done.returncode != 0:
                return {}, f"not run: {PEERS.name} exited with {done.returncode}"
    result = json.loads(cached.read_text())
    out = {
        name: (
            [Flag(account, "any", t) for account, times in per_account.items() for t in times],
            float(result["seconds"][name]),
        )
        for name, per_account in result["flags"].items()
    }
    return out, "run in bench/.venv-adtk (numpy < 2, pandas 1.5.3, statsmodels, adtk 0.6.2)"


RUNS = 3  # timed runs of the backtest; the best is reported, as timeit does: noise only ever adds time


def _backtest_throughput(series: list[Series]) -> Backtest:
    """End to end as ``flockwatch backtest`` runs: start-up, CSV parsing, sorting, replay and JSON output."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.csv"
        with path.open("w") as out:
            out.write("timestamp,account,followers\n")
            for s in series:
                out.writelines(
                    f"{int(t)},{s.account},{f}\n" for t, f in zip(s.times, s.followers, strict=True)
                )
        runs = [_child_seconds(["backtest", str(path)]) for _ in range(RUNS)]
        reading = min(_reading_seconds(path) for _ in range(RUNS))
    # Start-up: the interpreter and the command's imports.
    startup = min(_child_seconds(["--version"]) for _ in range(RUNS))
    return Backtest(sum(len(s.times) for s in series), runs, reading, startup)


def _child_seconds(arguments: list[str]) -> float:
    """CPU time of one ``flockwatch`` run, not wall time: the target is per core, and the machine is shared."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "service", *arguments],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def _reading_seconds(path: Path) -> float:
    started = time.process_time()
    read_records(path)  # the backtest's reader
    return time.process_time() - started


def _organic_alarms(series: list[Series], detections: list[Detection]) -> list[str]:
    organic = {s.account: s.family for s in series if s.organic}
    return [
        f"{organic[d.account]} `{d.account}`, {d.detected_at:%Y-%m-%d}: {d.kind} ({d.severity}): {d.summary}"
        for d in sorted(detections, key=lambda d: d.detected_at)
        if d.account in organic and d.severity != "info" and d.explained_by is None
    ]


def _real_series() -> list[tuple[str, list[str]]]:
    out = []
    for path in sorted(REAL.glob("*.csv")):
        engine = DetectionEngine()
        found: dict[int, object] = {}
        for sample in read_samples(path).samples:
            for d in engine.observe(sample):
                found[id(d)] = d
        lines = [
            f"{d.kind} ({d.severity}), {d.started_at:%Y-%m-%d} to "  # type: ignore[attr-defined]
            f"{d.ended_at:%Y-%m-%d}: {d.summary}"
            if d.ended_at
            else f"{d.kind}: {d.summary}"  # type: ignore[attr-defined]
            for d in found.values()
            if d.kind == "regular_growth" or d.severity != "info"  # type: ignore[attr-defined]
        ]
        out.append((path.name, lines))
    return out


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
