"""Render time of ``flockwatch_anomaly_score`` for 10,000 accounts: the cached page against ``generate_latest``.

Run: ``python -m bench.score_page`` (writes ``docs/benchmarks-scores.md``). Every account gets two days of hourly samples; between two renders a
thirtieth of the accounts gets a new sample, as when 10,000 accounts are polled every 15 minutes and scraped
every 30 seconds.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from service.accounts import AccountRef
from service.detection.engine import DetectionEngine
from service.detection.metrics import ScoreCollector, ScoreExposition
from service.samples import Sample

PLATFORMS = ("x", "mastodon", "bluesky", "youtube", "twitch", "github")
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def fed_engine(accounts: int, rng: random.Random) -> tuple[DetectionEngine, dict[AccountRef, Sample]]:
    engine, latest = DetectionEngine(), {}
    for i in range(accounts):
        ref = AccountRef(PLATFORMS[i % len(PLATFORMS)], f"account{i}")
        followers = rng.randrange(100, 2_000_000)
        for hour in range(48, -1, -1):
            followers += rng.randrange(-20, 200)
            latest[ref] = Sample(ref, NOW - timedelta(hours=hour), followers, rng.randrange(0, 5000))
            engine.observe(latest[ref])
    return engine, latest


def timed(render: Callable[[], bytes]) -> float:
    gc.collect()
    started = time.perf_counter()
    render()
    return (time.perf_counter() - started) * 1000


def main(accounts: int = 10_000, rounds: int = 15) -> None:
    rng = random.Random(5)
    engine, latest = fed_engine(accounts, rng)
    cached = ScoreExposition(engine)
    registry = CollectorRegistry()
    registry.register(ScoreCollector(engine))
    cold = timed(cached.render)
    times: dict[str, list[float]] = {"cached page": [], "generate_latest": []}
    refs = list(latest)
    for round_number in range(rounds):
        for ref in refs[round_number % 30 :: 30]:
            before = latest[ref]
            latest[ref] = Sample(ref, before.observed_at + timedelta(minutes=15), before.followers + 3)
            engine.observe(latest[ref])
        times["cached page"].append(timed(cached.render))
        times["generate_latest"].append(timed(lambda: generate_latest(registry)))
    rows = "\n".join(
        f"| {name} | {statistics.median(values):.1f} | {max(values):.1f} |" for name, values in times.items()
    )
    report = f"""# /metrics render time: anomaly scores

Measured by `python -m bench.score_page` on {datetime.now(UTC):%Y-%m-%d}: {accounts:,} accounts with two days of
hourly samples through the detection engine, {accounts * 6:,} `flockwatch_anomaly_score` series; {rounds} renders, a
thirtieth of the accounts getting a new sample before each. The daemon serves the cached page
(`service.detection.metrics.ScoreExposition`), after the per-account page measured in
[benchmarks-metrics.md](benchmarks-metrics.md); the whole `/metrics` page of 10,000 accounts costs about the
sum of the two p50s. The cached page's first render took {cold:.0f} ms.

| page | p50 (ms) | max (ms) |
| --- | ---: | ---: |
{rows}
"""
    Path("docs/benchmarks-scores.md").write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
