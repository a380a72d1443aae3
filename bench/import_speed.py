"""The command line at fleet scale: ``import`` speed and memory, and ``status``/``detections``/``watch add``
times at 100,000 accounts, on SQLite and PostgreSQL. Writes docs/benchmarks-import.md.

1. A CSV history of ``--accounts`` accounts x ``--days`` days of samples every ``--every`` minutes is written
   (time-ordered, as exporters write; most accounts organic, one in 200 with a bought drip), then imported
   by ``python -m service import`` into a fresh database of each kind: wall time and peak RSS of the
   process, and each step's time from its progress bar.
2. A fleet of ``--fleet`` watched accounts is bulk-inserted (not through the CLI): latest counts, hourly
   rollups of ``--fleet-days`` days, raw samples for the 1% of accounts without rollups, three detections
   per account (a tenth still open); then each account's kept change and growth, set-based. Each ``status``/``detections`` command is timed end to end (a new
   process each time, as a user runs it), the median of ``--runs``; so is ``watch add --file`` of 10,000.

    python -m bench.import_speed [--accounts 10000] [--days 7] [--every 15] [--fleet 100000]
                                 [--databases sqlite,postgresql] [--workdir /tmp/flockwatch-bench] [--no-write]
                                 [--keep] [--reuse-fleet]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.store import changes
from service.store.database import open_engine, upgrade

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs/benchmarks-import.md"
PG_URL = os.environ.get(
    "FLOCKWATCH_TEST_PG_URL", "postgresql+psycopg://flockwatch:flockwatch@127.0.0.1:5432/flockwatch_test"
)
PLATFORMS = ("x", "mastodon", "bluesky", "youtube", "twitch", "github")
STATUS_COMMANDS = (
    ("status",),
    ("status", "--sort", "change-24h"),
    ("status", "--sort", "growth-7d"),
    ("status", "--sort", "followers"),
    ("status", "--platform", "mastodon", "--sort", "change-7d", "--reverse"),
    ("status", "--active", "--severity", "critical"),
    ("detections",),
    ("detections", "--active", "--sort", "score"),
    ("detections", "--kind", "drop", "--severity", "warning"),
)


@dataclass
class Run:
    seconds: float
    rss_mib: float
    steps: dict[str, float] = field(default_factory=dict)
    output: str = ""


# -- the history file ------------------------------------------------------------------------------------


def write_history(path: Path, accounts: int, days: int, every: int, seed: int = 7) -> int:
    """A time-ordered CSV; returns its rows. Organic accounts grow by a noisy rate of their own; one in 200
    gains a bought drip of a constant daily amount for the middle third of the history."""
    rng = random.Random(seed)
    names = [f"{PLATFORMS[i % 5]}:{_handle(PLATFORMS[i % 5], i)}" for i in range(accounts)]
    counts = [rng.randrange(200, 2_000_000) for _ in range(accounts)]
    rates = [max(c / 2_000, 1.0) * rng.uniform(0.2, 3.0) for c in counts]  # followers a day
    steps = days * 24 * 60 // every
    per_step = every / 1_440
    drip = {i: rng.randrange(300, 1_500) * per_step for i in range(0, accounts, 200)}
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=days + 1)
    with path.open("w", encoding="utf-8") as out:
        out.write("timestamp,account,followers\n")
        for step in range(steps):
            stamp = (start + timedelta(minutes=every * step)).strftime("%Y-%m-%dT%H:%M:%SZ")
            bought = steps // 3 <= step < 2 * steps // 3
            lines = []
            for i in range(accounts):
                counts[i] += max(int(rng.gauss(rates[i] * per_step, 1 + rates[i] * per_step)), -3)
                if bought and i in drip:
                    counts[i] += int(drip[i])
                lines.append(f"{stamp},{names[i]},{max(counts[i], 0)}\n")
            out.write("".join(lines))
    return steps * accounts


def _handle(platform_name: str, i: int) -> str:
    if platform_name == "mastodon":
        return f"user{i}@example.social"
    if platform_name == "bluesky":
        return f"user{i}.bsky.social"
    if platform_name == "youtube":
        return f"@user{i}"
    return f"user{i}"


# -- databases and processes -----------------------------------------------------------------------------


def fresh_database(kind: str, workdir: Path, name: str) -> str:
    if kind == "sqlite":
        path = workdir / f"{name}.db"
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
        return f"sqlite:///{path}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    admin.dispose()
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={name}"})
    return url.render_as_string(hide_password=False)


def run_measured(args: Sequence[str]) -> Run:
    """``python -m service ARGS`` as a user runs it: wall time, and the peak RSS of that process from its
    own rusage (os.wait4)."""
    started = time.perf_counter()
    with open(os.devnull, "w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "service", *args], stdout=sink, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        assert process.stderr is not None
        err = process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"flockwatch {' '.join(args)} failed ({process.returncode}): {err[-2_000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, _steps(err), err)


_STEP = re.compile(r"(importing|rolling up and analysing) \[#+\] 100%(.*?) in (?:(\d+)h)?(?:(\d+)m)?(\d+)s")
_RATE = re.compile(r"([\d,]+) (?:rows|samples)  ([\d,]+) (?:rows|samples)/s")


def _steps(err: str) -> dict[str, float]:
    """Each step's seconds from its progress bar's last line: count / rate when it shows them (finer than
    the bar's whole seconds), else the time it shows."""
    steps = {}
    for line in err.replace("\r", "\n").splitlines():
        match = _STEP.search(line)
        if not match:
            continue
        hours, minutes, seconds = (int(g) if g else 0 for g in match.groups()[2:])
        steps[match.group(1)] = float(hours * 3600 + minutes * 60 + seconds)
        rate = _RATE.search(match.group(2))
        if rate and int(rate.group(2).replace(",", "")):
            steps[match.group(1)] = int(rate.group(1).replace(",", "")) / int(rate.group(2).replace(",", ""))
    return steps


# -- the fleet for status and detections -----------------------------------------------------------------


def fill_fleet(url: str, accounts: int, days: int, seed: int = 11) -> None:
    """Accounts, hourly rollups, raw samples of the 1% without rollups and detections, in bulk."""
    engine = open_engine(url)
    upgrade(engine)
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    latest = [now - timedelta(seconds=rng.randrange(900)) for _ in range(accounts)]
    growth = [rng.uniform(-5, 50) for _ in range(accounts)]
    base = [rng.randrange(100, 5_000_000) for _ in range(accounts)]
    with engine.begin() as conn:
        loader = _Loader(conn.connection.driver_connection, conn.dialect.name)
        loader.put("accounts", _ACCOUNT_COLUMNS, _account_rows(accounts, latest, base, growth, days))
        hours = days * 24
        first_hour = now.replace(minute=0) - timedelta(hours=hours)
        loader.put("samples_hourly", _ROLLUP_COLUMNS, _rollup_rows(accounts, first_hour, hours, base, growth))
        stale = range(0, accounts, 100)
        loader.put("samples", _SAMPLE_COLUMNS, _raw_rows(stale, latest, hours, base, growth))
        loader.put("detections", _DETECTION_COLUMNS, _detection_rows(accounts, now, rng))
        # the kept change and growth, by the statement import runs after its samples (as the daemon keeps them)
        changes.refresh(conn, range(1, accounts + 1))
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()


_ACCOUNT_COLUMNS = "id, platform, handle, watched, state, added_at, last_polled_at, latest_at, latest_followers, backoff_step"
_ROLLUP_COLUMNS = (
    "account_id, bucket, first_at, first_followers, last_at, last_followers, min_followers, max_followers, "
    "samples, followers_step"
)
_SAMPLE_COLUMNS = "account_id, observed_at, followers, followers_step"
_DETECTION_COLUMNS = (
    "id, platform, account_id, account, kind, detector, started_at, detected_at, ended_at, updated_at, score, "
    "severity, summary, key"
)


def _account_rows(
    accounts: int, latest: list[datetime], base: list[int], growth: list[float], days: int
) -> Iterator[tuple[object, ...]]:
    for i in range(accounts):
        name = PLATFORMS[i % 6]
        handle = f"org{i}/repo{i}" if name == "github" and i % 12 == 5 else _handle(name, i)
        state = "not_found" if i % 97 == 0 else "active"
        count = int(base[i] + growth[i] * days * 24)
        yield (i + 1, name, handle, True, state, latest[i], latest[i], latest[i], count, 0)


def _rollup_rows(
    accounts: int, first_hour: datetime, hours: int, base: list[int], growth: list[float]
) -> Iterator[tuple[object, ...]]:
    for hour in range(hours):  # bucket by bucket, as maintenance writes them
        bucket = first_hour + timedelta(hours=hour)
        for i in range(accounts):
            if i % 100 == 0:
                continue  # the accounts without rollups (raw samples only)
            count = int(base[i] + growth[i] * hour)
            last = bucket + timedelta(minutes=45)
            yield (i + 1, bucket, bucket, count, last, count, count, count, 4, 1)


def _raw_rows(
    stale: range, latest: list[datetime], hours: int, base: list[int], growth: list[float]
) -> Iterator[tuple[object, ...]]:
    for i in stale:
        for step in range(hours * 4):
            yield (
                i + 1,
                latest[i] - timedelta(minutes=15 * step),
                int(base[i] + growth[i] * (hours - step / 4)),
                1,
            )


def _detection_rows(accounts: int, now: datetime, rng: random.Random) -> Iterator[tuple[object, ...]]:
    kinds = ("regular_growth", "burst", "drop")
    severities = ("info", "warning", "critical")
    for i in range(accounts):
        name = PLATFORMS[i % 6]
        account = f"{name}:{_handle(name, i)}"
        for k, kind in enumerate(kinds):
            started = now - timedelta(days=rng.uniform(1, 60))
            ended = None if rng.random() < 0.1 else started + timedelta(days=rng.uniform(1, 5))
            score = round(rng.random(), 3)
            key = f"{account}|{kind}|{kind}|{int(started.timestamp())}"
            row = (3 * i + k + 1, name, i + 1, account, kind, kind, started, started, ended, ended or now)
            yield (*row, score, severities[int(score * 2.999)], f"{kind} of {account}", key)


class _Loader:
    """Rows into a table in bulk: COPY on PostgreSQL, executemany on SQLite (times as SQLAlchemy stores them)."""

    def __init__(self, raw: object, dialect: str) -> None:
        self.raw = raw
        self.postgres = dialect == "postgresql"

    def put(self, table: str, columns: str, rows: Iterator[tuple[object, ...]]) -> None:
        cursor = self.raw.cursor()  # type: ignore[attr-defined]
        if self.postgres:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join("?" * len(columns.split(",")))
        batch: list[tuple[object, ...]] = []
        for row in rows:
            batch.append(tuple(_sqlite(v) for v in row))
            if len(batch) >= 50_000:
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", batch)
                batch = []
        if batch:
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", batch)


def _sqlite(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


# -- the run and the report ------------------------------------------------------------------------------


def bench_import(kind: str, history: Path, workdir: Path) -> Run:
    url = fresh_database(kind, workdir, "bench_import")
    return run_measured(["import", str(history), "--db", url])


def bench_commands(
    kind: str, workdir: Path, fleet: int, days: int, runs: int, reuse: bool
) -> dict[str, float]:
    url = _fleet_url(kind, workdir) if reuse else None
    if url is None:
        url = fresh_database(kind, workdir, "bench_fleet")
        started = time.perf_counter()
        fill_fleet(url, fleet, days)
        print(f"{kind}: fleet of {fleet:,} filled in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    else:
        engine = open_engine(url)
        upgrade(engine)  # a fleet made by an earlier version gets the newer migrations
        engine.dispose()
        print(f"{kind}: the fleet of an earlier run reused", file=sys.stderr)
    times = {}
    for command in STATUS_COMMANDS:
        seconds = [run_measured([*command, "--db", url]).seconds for _ in range(runs)]
        times[" ".join(command)] = statistics.median(seconds)
    listing = workdir / "watch-10000.txt"
    listing.write_text("".join(f"x:newcomer{i}\n" for i in range(10_000)))
    watch_url = fresh_database(kind, workdir, "bench_watch")
    run_measured(["db", "upgrade", "--db", watch_url])
    times["watch add --file (10,000 accounts)"] = run_measured(
        ["watch", "add", "--file", str(listing), "--db", watch_url]
    ).seconds
    return times


def _fleet_url(kind: str, workdir: Path) -> str | None:
    """The URL of the fleet an earlier run with --keep left, if there is one."""
    if kind == "sqlite":
        path = workdir / "bench_fleet.db"
        return f"sqlite:///{path}" if path.exists() else None
    admin = create_engine(PG_URL)
    with admin.connect() as conn:
        found = conn.scalar(text("SELECT count(*) FROM pg_namespace WHERE nspname = 'bench_fleet'"))
    admin.dispose()
    url = make_url(PG_URL).update_query_dict({"options": "-csearch_path=bench_fleet"})
    return url.render_as_string(hide_password=False) if found else None


def report(
    args: argparse.Namespace,
    rows: int,
    size: int,
    imports: dict[str, Run],
    commands: dict[str, dict[str, float]],
) -> str:
    kinds = list(imports or commands)
    lines = [
        "# The command line at fleet scale",
        "",
        f"Measured by `python -m bench.import_speed {' '.join(args.argv)}` on {datetime.now(UTC):%Y-%m-%d}: "
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores shared with other "
        "work (timings vary by tens of percent from run to run), SQLite "
        f"{_sqlite_version()} and PostgreSQL as configured by `.ci/run` (default settings: 128 MB shared_buffers).",
        "",
    ]
    if imports:
        lines += [
            f"## import: {args.accounts:,} accounts x {args.days} days every {args.every} minutes",
            "",
            f"{rows:,} rows, {size / 1e9:.2f} GB of CSV, time-ordered, into a fresh database.",
            "",
            "| database | samples/s (step 1) | step 1: samples | steps 2 and 3: rollups and detection, at once "
            "| total | samples/s (total) | peak RSS |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for kind, run in imports.items():
            steps = run.steps
            load = steps.get("importing", float("nan"))
            derived = steps.get("rolling up and analysing", float("nan"))
            beside = derived != derived and "while importing them" in run.output  # NaN: no second bar
            lines.append(
                f"| {kind} | {rows / load:,.0f} | {_time(load)} | {'beside step 1' if beside else _time(derived)} "
                f"| {_time(run.seconds)} "
                f"| {rows / run.seconds:,.0f} | {run.rss_mib:,.0f} MiB |"
            )
        lines.append("")
    if commands:
        lines += [
            f"## status, detections and watch at {args.fleet:,} accounts",
            "",
            f"Wall time of the command, a new process each time (Python start-up and imports included), median of "
            f"{args.runs}; hourly rollups of {args.fleet_days} days, {3 * args.fleet:,} detections.",
            "",
            "| command | " + " | ".join(kinds) + " |",
            "| --- | " + " | ".join("---:" for _ in kinds) + " |",
        ]
        for name in commands[kinds[0]]:
            lines.append(f"| `{name}` | " + " | ".join(f"{commands[k][name]:.2f} s" for k in kinds) + " |")
        lines.append("")
    return "\n".join(lines)


def _time(seconds: float) -> str:
    if seconds != seconds:  # NaN: the step did not report
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--every", type=int, default=15, help="minutes between two samples of an account")
    parser.add_argument("--fleet", type=int, default=100_000, help="accounts for status/detections (0: skip)")
    parser.add_argument("--fleet-days", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/flockwatch-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the work folder (CSV and SQLite files)")
    parser.add_argument(
        "--reuse-fleet",
        action="store_true",
        help="time the commands on the fleet a run with --keep left in the work folder (filling one takes "
        "8-14 minutes per database at 100,000 accounts)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks-import.md")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    args.workdir.mkdir(parents=True, exist_ok=True)
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    history = args.workdir / f"history-{args.accounts}x{args.days}d-{args.every}m.csv"
    rows = 0
    imports: dict[str, Run] = {}
    if not args.skip_import:
        started = time.perf_counter()
        rows = write_history(history, args.accounts, args.days, args.every)
        print(f"history: {rows:,} rows in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for kind in kinds:
            imports[kind] = bench_import(kind, history, args.workdir)
            print(f"{kind}: import {imports[kind]}", file=sys.stderr)
    size = history.stat().st_size if history.exists() else 0
    commands = (
        {
            k: bench_commands(k, args.workdir, args.fleet, args.fleet_days, args.runs, args.reuse_fleet)
            for k in kinds
        }
        if args.fleet
        else {}
    )
    text_out = report(args, rows, size, imports, commands)
    print(text_out)
    if not args.no_write:
        REPORT.write_text(text_out + "\n", encoding="utf-8")
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
