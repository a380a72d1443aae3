"""Does scraping /metrics slow polling down? And how long does the whole page take for a large watchlist?

Part 1 runs the real daemon (``flockwatch run``) against the simulated Mastodon platform (a separate process)
with ``--accounts`` accounts polled every ``--interval``, and for ``--seconds`` each lets 0, 10 and 50 concurrent
scrapers fetch /metrics back to back. It reports the samples the daemon stored meanwhile (its
``flockwatch_samples_written_total``) and the scrapers' /metrics latency.

Part 2 renders the whole page (the service's registry, the per-account series, the anomaly scores) from a
synthetic board and engine of 10,000 and 100,000 accounts, a thirtieth of them changing between two renders, in
the worker thread the daemon uses, while a timer on the event loop measures how late it wakes (the stall polls
would see).

    python -m bench.scrape_load [--accounts 300] [--seconds 60] [--sizes 10000,100000] [--no-write]

Writes docs/benchmarks-scrape.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from service.accounts import PLATFORMS, AccountRef
from service.board import Board
from service.clock import SystemClock
from service.detection.engine import DetectionEngine
from service.detection.metrics import DetectionCollector, ScoreExposition
from service.exposition import AccountExposition
from service.metrics import ServiceMetrics
from service.samples import AccountState, Sample
from service.simulator.scenarios import Scenario, organic
from service.simulator.server import SimulatedPlatform
from service.web import MetricsPage

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs/benchmarks-scrape.md"
DOMAIN = "bench.example"
SCRAPERS = (0, 10, 50)
GROUPS = 30
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


# --- part 1: the daemon under scrapers -------------------------------------------------------------------------


def serve_platform(accounts: int, port_file: str) -> None:
    """The simulated platform, in a process of its own (so that it does not share the daemon's or our CPU)."""

    async def main() -> None:
        scenarios = [
            Scenario(f"user{i}@{DOMAIN}", "organic", 1000 + i, organic(f"u{i}", 20, 0.5))
            for i in range(accounts)
        ]
        simulated = SimulatedPlatform(scenarios, SystemClock())
        await simulated.start()
        announce(port_file, simulated.port)
        await asyncio.Event().wait()

    asyncio.run(main())


def announce(port_file: str, port: int) -> None:
    Path(port_file).write_text(str(port), encoding="utf-8")


def daemon_config(folder: Path, platform_port: int, accounts: int, interval: float, listen: str) -> Path:
    config = {
        "database": {"url": f"sqlite:///{folder / 'load.db'}"},
        "http": {"listen": listen},
        "poll": {"interval": f"{interval}s", "jitter": "0s", "timeout": "5s"},
        "log": {"level": "warning"},
        "platforms": {
            "mastodon": {
                "base_url": f"http://127.0.0.1:{platform_port}",
                "allow_hosts": [f"127.0.0.1:{platform_port}"],
                "rate_limit": {"requests": 1_000_000, "window": "1m"},
            }
        },
        "watchlist": [
            {"account": f"mastodon:user{i}@{DOMAIN}", "interval": f"{interval * group_spread(i):.2f}s"}
            for i in range(accounts)
        ],
    }
    path = folder / "flockwatch.yml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def group_spread(account: int, groups: int = GROUPS) -> float:
    """Accounts in poll groups of intervals from 0.8 to 1.2 times the nominal one, without jitter: the samples
    stored in a window then vary little from run to run, unlike one group whose cycles fall in or out of it."""
    return 0.8 + 0.4 * (account % groups) / groups


async def samples_written(session: aiohttp.ClientSession, url: str) -> float:
    async with session.get(url) as response:
        page = await response.text()
    line = next(x for x in page.splitlines() if x.startswith("flockwatch_samples_written_total "))
    return float(line.split()[1])


async def scraper(session: aiohttp.ClientSession, url: str, until: float, latencies: list[float]) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        async with session.get(url) as response:
            await response.read()
        latencies.append((time.perf_counter() - started) * 1000)


async def load_round(url: str, scrapers: int, seconds: float) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        before = await samples_written(session, url)
        latencies: list[float] = []
        until = time.monotonic() + seconds
        await asyncio.gather(
            *(scraper(session, url, until, latencies) for _ in range(scrapers)), asyncio.sleep(seconds)
        )
        after = await samples_written(session, url)
    return {"samples": after - before, "scrapes": len(latencies), **latency_summary(latencies)}


def latency_summary(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50": float("nan"), "p99": float("nan")}
    ordered = sorted(latencies)
    return {
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
    }


async def wait_until_up(url: str, patience: float = 60) -> None:
    deadline = time.monotonic() + patience
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the daemon did not answer on {url}")


def run_daemon_round(
    config: Path, listen: str, scrapers: int, seconds: float, warm: float
) -> dict[str, float]:
    database = config.parent / "load.db"
    for leftover in config.parent.glob("load.db*"):
        leftover.unlink()
    daemon = subprocess.Popen(
        [sys.executable, "-m", "service", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(config.parent / "daemon.log", "ab"),  # noqa: SIM115 - closed with the process
        cwd=ROOT,
    )
    try:
        url = f"http://{listen}/metrics"
        asyncio.run(wait_until_up(url))
        time.sleep(warm)  # every account polled once: the cycle is steady
        return asyncio.run(load_round(url, scrapers, seconds))
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
        assert database.exists()


def part_one(accounts: int, interval: float, seconds: float) -> dict[int, dict[str, float]]:
    with tempfile.TemporaryDirectory(prefix="flockwatch-scrape-") as folder:
        port_file = os.path.join(folder, "port")
        simulated = multiprocessing.get_context("spawn").Process(
            target=serve_platform, args=(accounts, port_file), daemon=True
        )
        simulated.start()
        try:
            while not os.path.exists(port_file) or not Path(port_file).read_text():
                time.sleep(0.1)
            listen = f"127.0.0.1:{free_port()}"
            config = daemon_config(Path(folder), int(Path(port_file).read_text()), accounts, interval, listen)
            return {n: run_daemon_round(config, listen, n, seconds, warm=2 * interval) for n in SCRAPERS}
        finally:
            simulated.terminate()
            simulated.join()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- part 2: the whole page for a large synthetic watchlist ---------------------------------------------------


def synthetic_board(refs: list[AccountRef], rng: random.Random) -> Board:
    """A week of hourly points per account, built directly (the board's own path takes minutes at 100,000)."""
    board = Board()
    board.keep_only(set(refs))
    hours = [NOW - timedelta(hours=h) for h in range(7 * 24 + 2, -1, -1)]
    for ref in refs:
        view = board.view(ref)
        followers = rng.randrange(100, 2_000_000)
        for i, at in enumerate(hours):
            view._extend(at.timestamp(), followers + 90 * i)
        view.latest = Sample(ref, hours[-1], view.counts[-1], rng.randrange(5000), rng.randrange(90000))
        view.state, view.last_polled_at = AccountState.ACTIVE, NOW
    return board


def fed_engine(refs: list[AccountRef], rng: random.Random) -> DetectionEngine:
    engine = DetectionEngine()
    start = (NOW - timedelta(hours=48)).timestamp()
    for ref in refs:
        followers = rng.randrange(100, 2_000_000)
        for hour in range(49):
            followers += rng.randrange(-20, 200)
            engine.observe_values(ref, start + 3600 * hour, followers)
    return engine


def advance(board: Board, engine: DetectionEngine, refs: list[AccountRef], round_number: int) -> None:
    """A new sample for a thirtieth of the accounts (polled every 15 min, scraped every 30 s)."""
    for ref in refs[round_number % 30 :: 30]:
        view = board.view(ref)
        assert view.latest is not None
        at = view.latest.observed_at + timedelta(minutes=15 * (round_number + 1))
        sample = Sample(ref, at, view.latest.followers + 3, view.latest.following, view.latest.posts)
        board.record_sample(sample)
        engine.observe(sample)


def page_renderer(board: Board, engine: DetectionEngine) -> tuple[MetricsPage, CollectorRegistry]:
    registry = CollectorRegistry()
    ServiceMetrics(registry)
    DetectionCollector(engine, registry)
    sections = [AccountExposition(board).chunks, ScoreExposition(engine).chunks]
    page = MetricsPage(
        lambda: (generate_latest(registry), *(piece for s in sections for piece in s())), min_age=0
    )
    return page, registry


async def loop_lag_during(render: asyncio.Future[bytes] | asyncio.Task[bytes], tick: float = 0.005) -> float:
    """The longest the event loop woke late (ms) while ``render`` ran: what a poll due then would wait."""
    worst = 0.0
    while not render.done():
        expected = time.perf_counter() + tick
        await asyncio.sleep(tick)
        worst = max(worst, time.perf_counter() - expected)
    return worst * 1000


async def timed_renders(page: MetricsPage, advance_round: object, rounds: int) -> dict[str, float]:
    times, lags, size = [], [], 0
    for round_number in range(rounds):
        advance_round(round_number)  # type: ignore[operator]
        gc.collect()
        started = time.perf_counter()
        render = asyncio.ensure_future(page.get())
        lags.append(await loop_lag_during(render))
        size = len(await render)
        times.append((time.perf_counter() - started) * 1000)
    ordered = sorted(times)
    return {"p50": statistics.median(ordered), "p99": ordered[-1], "lag": max(lags), "bytes": size}


def part_two(accounts: int, rounds: int) -> dict[str, float]:
    rng = random.Random(5)
    refs = [AccountRef(PLATFORMS[i % len(PLATFORMS)], f"account{i}") for i in range(accounts)]
    board, engine = synthetic_board(refs, rng), fed_engine(refs, rng)
    page, _ = page_renderer(board, engine)

    async def measure() -> dict[str, float]:
        started = time.perf_counter()
        first = len(await page.get())
        cold = (time.perf_counter() - started) * 1000
        result = await timed_renders(page, lambda n: advance(board, engine, refs, n), rounds)
        return {**result, "cold": cold, "first_bytes": first}

    try:
        return asyncio.run(measure())
    finally:
        page.close()


# --- report ---------------------------------------------------------------------------------------------------


def report(
    load: dict[int, dict[str, float]], pages: dict[int, dict[str, float]], args: argparse.Namespace
) -> str:
    base = load[0]["samples"] or 1
    load_rows = "\n".join(
        f"| {n} | {r['samples']:,.0f} | {100 * (r['samples'] - base) / base:+.1f}% | {r['scrapes']:,.0f} | "
        + ("-" if n == 0 else f"{r['p50']:.1f} | {r['p99']:.1f}")
        + (" | -" if n == 0 else "")
        + " |"
        for n, r in load.items()
    )
    page_rows = "\n".join(
        f"| {n:,} | {r['bytes'] / 1e6:.1f} MB | {r['cold']:.0f} | {r['p50']:.0f} | {r['p99']:.0f} | {r['lag']:.1f} |"
        for n, r in pages.items()
    )
    return f"""# /metrics under load

Measured by `python -m bench.scrape_load{" " + " ".join(args.argv) if args.argv else ""}` on {datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores shared with other work.

## Polling while scrapers hammer /metrics

`flockwatch run` (SQLite) watching {args.accounts} accounts of the simulated Mastodon platform (its own process), in
{GROUPS} poll groups polled every {0.8 * args.interval:g} to {1.2 * args.interval:g} s without jitter; for {args.seconds:g} s, 0, 10 or 50 scrapers fetch /metrics back to back (no pause
between two fetches of one scraper). Samples stored is the daemon's `flockwatch_samples_written_total` over those
{args.seconds:g} s.

| scrapers | samples stored | vs. no scraper | scrapes served | /metrics p50 (ms) | /metrics p99 (ms) |
| ---: | ---: | ---: | ---: | ---: | ---: |
{load_rows}

The page is rendered in a worker thread; scrapes that arrive while it renders share that render, and a page is
served again for a second (or for as long as its render took, if longer). Before this, the page rendered on the
event loop once per scrape: 50 scrapers cut the samples stored by 91% and 10 by 67% (issue 11).

## The whole page for a large watchlist

A synthetic board (a week of hourly points per account) and detection engine (two days of hourly samples), all
platforms; the page holds the service's registry, the per-account series and the six anomaly scores per account.
Before each of {args.rounds} renders a thirtieth of the accounts gets a new sample. Each render runs in the daemon's
worker thread while a 5 ms timer on the event loop records how late it wakes: the longest delay is what a poll
due during the render would wait.

| accounts | page | first render (ms) | p50 (ms) | max (ms) | worst event-loop delay (ms) |
| ---: | ---: | ---: | ---: | ---: | ---: |
{page_rows}

For fleets where the page itself grows too large (about 1 KB per account), `http.anomaly_scores: false` leaves
the six `flockwatch_anomaly_score` series per account out of the page (detections and their alerts stay); see
docs/observability.md.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between two polls of an account")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--sizes", default="10000,100000", help="watchlist sizes of part 2 (empty: skip)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    args.argv = list(argv if argv is not None else sys.argv[1:])
    load = part_one(args.accounts, args.interval, args.seconds)
    pages = {n: part_two(n, args.rounds) for n in (int(x) for x in args.sizes.split(",") if x)}
    text = report(load, pages, args)
    print(text)
    if not args.no_write:
        REPORT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
