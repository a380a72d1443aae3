"""The scale benchmark: the real daemon (``python -m service run``) watching 10,000 and 100,000 X accounts of a
fast local fake platform, on SQLite and PostgreSQL, with weeks of history loaded first.

    python -m bench.scale [--sizes 10000,100000] [--databases sqlite,postgresql] [--reuse] [--keep]
    make bench-scale

For each size and database it loads the history (``bench/scale_history.py``), starts the fake platform
(``bench/fake_platform.py``, a process of its own) and then the daemon, configured as a user would (the
fake's address as X's ``base_url``, its rate budget raised), and measures:

- start-up to ready (``/readyz`` 200 and the first poll request at the platform) with the saved states,
  several times, and once more with no saved states (a cold start, which rebuilds them from samples);
- peak and steady RSS of the daemon's process, its CPU time from /proc/<pid>/stat;
- poll cycles at a scaled interval (every account polled once per interval; ``--interval``): wall time to
  the last answer and to the last sample stored, and the daemon's CPU time per cycle;
- /metrics latency (plain and gzip, as Prometheus asks) while cycles run, and the CPU one scrape costs;
- the daemon's CPU while idle, the CPU of stopping (which saves every state), and of one maintenance run
  (rollups) per sample, to estimate the average share of a core at a 15-minute interval;
- ``flockwatch status`` and ``flockwatch detections`` wall time;
- database bytes per sample and per rollup row, and an estimate of bytes per account and year.

Raw figures go to ``bench/results/scale-<accounts>-<database>.json``; ``docs/benchmarks-scale.md`` is written
from every result file present, so sizes can be run one at a time.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.engine import make_url

from bench import scale_report
from bench.scale_daemon import ROOT, Daemon, FakePlatform, daemon_config, fetch, load_average
from bench.scale_history import History, hour_floor, load
from service.config import RetentionConfig
from service.store import models
from service.store.database import open_engine
from service.store.rollups import Maintenance

RESULTS = ROOT / "bench/results"
REPORT = ROOT / "docs/benchmarks-scale.md"
PG_ADMIN = "postgresql+psycopg://flockwatch:flockwatch@127.0.0.1:5432/flockwatch_test"
HISTORY = {10_000: (30.0, 30.0, True), 100_000: (30.0, 7.0, True)}  # days, raw days, rollups of the raw
SCRAPE_EVERY = 5.0  # seconds between two scrapes while cycles run (Prometheus: 15-60 s)


@dataclass
class Case:
    accounts: int
    database: str  # sqlite or postgresql
    url: str
    folder: Path
    history: History
    interval: float  # the scaled poll interval, seconds
    cycles: int = 3  # measured cycles without scrapes
    scrape_cycles: int = 2  # cycles with /metrics scraped meanwhile
    warm_repeats: int = 2  # further warm starts, each up to its first cycle stored
    quiet: float = 10.0  # seconds of idle CPU measured between two cycles
    cli_repeats: int = 2
    cold: bool = True  # also a start with no saved states (rebuilt from samples)
    patience: float = 3600.0  # seconds a start-up may take


@dataclass
class Cycle:
    start: float  # epoch seconds of the first request
    polled: float  # seconds to the last answer
    stored: float | None  # seconds to the last sample in the database
    cpu: float | None  # the daemon's CPU seconds from start to stored
    users: int


@dataclass
class Run:
    """One start of the daemon, measured until it stopped."""

    kind: str  # warm or cold
    ready: float = 0.0  # seconds: /readyz 200 and a first poll request seen
    readyz: float = 0.0
    first_request: float = 0.0
    cpu_to_ready: float = 0.0
    loaded: dict[str, Any] = field(default_factory=dict)  # the daemon's "detection states loaded" event
    cycles: list[Cycle] = field(default_factory=list)
    scrapes: list[dict[str, Any]] = field(default_factory=list)
    quiet: dict[str, float] = field(default_factory=dict)
    rss_peak: int = 0
    rss_steady: int = 0
    rss_phases: dict[str, int] = field(default_factory=dict)  # highest RSS read in each phase
    average_cpu_share: float | None = None  # over whole scaled intervals
    stop: dict[str, Any] = field(default_factory=dict)
    load: list[float] = field(default_factory=list)  # load averages at start and end


# -- one start of the daemon ----------------------------------------------------------------------------


def measured_run(case: Case, fake: FakePlatform, kind: str, cycles: int, scrape_cycles: int = 0) -> Run:
    run = Run(kind, load=[load_average()])
    listen = f"127.0.0.1:{free_port()}"
    config = daemon_config(case.folder, case.url, fake, case.interval, listen)
    fake.requests()  # what came before is not this run's
    database = open_engine(case.url)
    daemon = Daemon(config, case.folder / f"daemon-{kind}.log")
    try:
        requests = _wait_ready(daemon, fake, listen, case.patience, run)
        ready_at = time.time()
        run.rss_phases["start-up"] = daemon.watch.rss_peak_between(daemon.started, ready_at)
        follower = _CycleFollower(case, fake, database, daemon, requests)
        run.cycles = [follower.next() for _ in range(cycles)]
        _settle_rss(run, daemon)
        run.rss_phases["cycles"] = daemon.watch.rss_peak_between(ready_at, time.time())
        if scrape_cycles:
            scrapes_from = time.time()
            run.scrapes = _scraped(listen, lambda: [follower.next() for _ in range(scrape_cycles)], run)
            run.rss_phases["cycles with scrapes"] = daemon.watch.rss_peak_between(scrapes_from, time.time())
            run.quiet = _quiet_costs(case, daemon, listen, run.cycles[-1])
        run.average_cpu_share = _average_share(daemon, run.cycles, case.interval)
        run.rss_peak = daemon.watch.peak
        run.stop = asdict(daemon.stop())
        run.stop["states_saved"] = _last(daemon.events("detection states saved"), "accounts")
    finally:
        daemon.kill()
        database.dispose()
    run.load.append(load_average())
    return run


def _wait_ready(
    daemon: Daemon, fake: FakePlatform, listen: str, patience: float, run: Run
) -> list[tuple[float, float, int]]:
    """Until /readyz says 200 and the platform has seen a first request; returns the requests seen."""
    requests: list[tuple[float, float, int]] = []
    readyz = None
    deadline = time.monotonic() + patience
    while readyz is None or not requests:
        if not daemon.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the daemon did not become ready (see {daemon.log})")
        if readyz is None and fetch(f"http://{listen}/readyz", timeout=10).status == 200:
            readyz = time.time()
        requests += fake.requests()
        time.sleep(0.2)
    run.readyz = readyz - daemon.started
    run.first_request = requests[0][0] - daemon.started
    run.ready = max(run.readyz, run.first_request)
    run.cpu_to_ready = daemon.watch.cpu_at(daemon.started + run.ready)
    loaded = daemon.events("detection states loaded")
    run.loaded = {
        k: loaded[-1].get(k) for k in ("accounts", "restored", "rebuilt", "samples_replayed", "seconds")
    }
    return requests


class _CycleFollower:
    """Cuts the platform's request log into cycles (every account asked once) and waits for each cycle's
    samples to be in the database."""

    def __init__(
        self,
        case: Case,
        fake: FakePlatform,
        database: Engine,
        daemon: Daemon,
        requests: list[tuple[float, float, int]],
    ) -> None:
        self.case, self.fake, self.database, self.daemon = case, fake, database, daemon
        self.pending = list(requests)

    def next(self) -> Cycle:
        taken: list[tuple[float, float, int]] = []
        users = 0
        deadline = time.monotonic() + self.case.interval * 4 + 600
        while users < self.case.accounts:
            if not self.pending:
                if not self.daemon.alive() or time.monotonic() > deadline:
                    raise RuntimeError(f"a poll cycle did not complete (see {self.daemon.log})")
                time.sleep(0.2)
                self.pending = self.fake.requests()
                continue
            request = self.pending.pop(0)
            taken.append(request)
            users += request[2]
        start, polled = taken[0][0], max(r[1] for r in taken)
        stored = self._stored_at(start, deadline)
        cpu = self.daemon.watch.cpu_between(start, stored) if stored else None
        return Cycle(start, polled - start, stored - start if stored else None, cpu, users)

    def _stored_at(self, start: float, deadline: float) -> float | None:
        """When the database first held a sample of every account from ``start`` on."""
        since = datetime.fromtimestamp(start, UTC)
        while time.monotonic() < deadline:
            with self.database.connect() as conn:
                if samples_since(conn, since) >= self.case.accounts:
                    return time.time()
            time.sleep(0.5)
        return None


def samples_since(conn: Connection, since: datetime) -> int:
    query = text("SELECT count(*) FROM samples WHERE observed_at >= :since")
    query = query.bindparams(bindparam("since", type_=models.UtcDateTime()))
    return int(conn.scalar(query, {"since": since}) or 0)


def _settle_rss(run: Run, daemon: Daemon) -> None:
    run.rss_steady = daemon.watch.rss[-1] if daemon.watch.rss else 0


def _scraped(listen: str, during: Any, run: Run) -> list[dict[str, Any]]:
    """Scrape /metrics every SCRAPE_EVERY seconds (plain and gzip in turn) while ``during()`` runs."""
    scrapes: list[dict[str, Any]] = []
    done = threading.Event()

    def scrape() -> None:
        gzipped = False
        while not done.is_set():
            got = fetch(f"http://{listen}/metrics", gzipped=gzipped)
            scrapes.append(
                {
                    "at": time.time(),
                    "gzip": gzipped,
                    "seconds": got.seconds,
                    "bytes": got.size,
                    "page": len(got.page),
                    "status": got.status,
                }
            )
            gzipped = not gzipped
            done.wait(SCRAPE_EVERY)

    thread = threading.Thread(target=scrape, daemon=True)
    thread.start()
    try:
        run.cycles += during()
    finally:
        done.set()
        thread.join(timeout=120)
    return scrapes


def _quiet_costs(case: Case, daemon: Daemon, listen: str, last: Cycle) -> dict[str, float]:
    """Between two cycles: the daemon's CPU rate when idle, and the CPU of one scrape asking for gzip (as
    Prometheus does) right after a cycle (every account changed: its series are formatted again) and of one when
    nothing changed."""
    next_cycle = last.start + case.interval
    watch = daemon.watch
    time.sleep(2)
    quiet_from = time.time()
    time.sleep(case.quiet)
    idle = watch.cpu_between(quiet_from, time.time()) / (time.time() - quiet_from)
    costs = {"idle_cpu_per_second": idle}
    for name in ("scrape_after_cycle", "scrape_unchanged"):
        before, started = watch.cpu_at(time.time()), time.time()
        got = fetch(f"http://{listen}/metrics", gzipped=True)  # as Prometheus asks
        time.sleep(max(2.0, 2 * got.seconds))  # past the page's reuse window: the next one renders anew
        costs[name] = watch.cpu_at(time.time()) - before - idle * (time.time() - started)
    costs["fit_before_next_cycle"] = float(time.time() < next_cycle)
    return costs


def _average_share(daemon: Daemon, cycles: list[Cycle], interval: float) -> float | None:
    """The daemon's CPU over whole intervals from the first measured cycle, per second of wall time."""
    if len(cycles) < 2:
        return None
    start, end = cycles[0].start, cycles[-1].start
    return daemon.watch.cpu_between(start, end) / (end - start)


def _last(events: list[dict[str, Any]], key: str) -> Any:
    return events[-1].get(key) if events else None


# -- around the runs --------------------------------------------------------------------------------------


def _until_due(case: Case, last: Run) -> None:
    """Wait until every account is due again (an interval after the last cycle began), so the next start
    polls at once: a daemon restarted sooner rightly waits for each account's interval before polling it."""
    time.sleep(max(0.0, last.cycles[-1].start + case.interval + 1 - time.time()))


def cold_start(case: Case, fake: FakePlatform) -> Run:
    """No saved states: the daemon rebuilds every account's from its samples."""
    engine = open_engine(case.url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM detector_states"))
        conn.execute(text("DELETE FROM engine_states"))
    engine.dispose()
    return measured_run(case, fake, "cold", cycles=1)


def cli_times(case: Case, config: Path) -> dict[str, Any]:
    """Wall and CPU seconds of the read-only commands, each run twice: the default page (the 50 accounts
    with the highest scores) and every account."""
    commands = {
        "status": ["status", "--config", str(config)],
        "status --limit 0": ["status", "--limit", "0", "--config", str(config)],
        "detections": ["detections", "--config", str(config)],
        "detections --active": ["detections", "--active", "--config", str(config)],
    }
    return {name: [_timed_command(args) for _ in range(case.cli_repeats)] for name, args in commands.items()}


def _timed_command(args: list[str]) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "service", *args], capture_output=True, cwd=ROOT, check=False
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "cpu": cpu, "code": done.returncode, "lines": done.stdout.count(b"\n")}


def maintenance_cost(case: Case) -> dict[str, Any]:
    """One maintenance run (rollups of what the runs polled, retention) in this process: its CPU per sample
    rolled up. The daemon runs the same code in a worker thread every ``retention.every``."""
    engine = open_engine(case.url)
    with engine.connect() as conn:
        watermark = conn.scalar(text("SELECT value FROM settings WHERE name = 'rollup_watermark'"))
        since = datetime.fromisoformat(watermark) if watermark else datetime.fromtimestamp(0, UTC)
        samples = samples_since(conn, since)
    started, cpu = time.perf_counter(), time.process_time()
    report = Maintenance(engine, RetentionConfig()).run(datetime.now(UTC))
    result = {
        "samples": samples,
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "hours": report.hours,
        "days": report.days,
    }
    engine.dispose()
    return result


def database_size(case: Case) -> dict[str, Any]:
    """Bytes of each table with its indexes, and its rows."""
    engine = open_engine(case.url)
    tables = (
        "samples",
        "samples_hourly",
        "samples_daily",
        "detector_states",
        "detections",
        "account_events",
        "accounts",
    )
    with engine.connect() as conn:
        rows = {t: int(conn.scalar(text(f"SELECT count(*) FROM {t}")) or 0) for t in tables}
        sizes = (
            _pg_sizes(conn, tables) if engine.dialect.name == "postgresql" else _sqlite_sizes(conn, tables)
        )
    engine.dispose()
    total = Path(make_url(case.url).database or "").stat().st_size if case.database == "sqlite" else None
    return {"rows": rows, "bytes": sizes, "file_bytes": total}


def _pg_sizes(conn: Any, tables: tuple[str, ...]) -> dict[str, int]:
    return {t: int(conn.scalar(text("SELECT pg_total_relation_size(:t)"), {"t": t})) for t in tables}


def _sqlite_sizes(conn: Any, tables: tuple[str, ...]) -> dict[str, int]:
    """Pages of each table and of the indexes on it (SQLite's dbstat table)."""
    owner = dict(conn.execute(text("SELECT name, tbl_name FROM sqlite_master")).all())
    sizes = dict.fromkeys(tables, 0)
    for name, size in conn.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")):
        table = owner.get(name, name)
        if table in sizes:
            sizes[table] += int(size)
    return sizes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- databases and history --------------------------------------------------------------------------------


def prepared_cases(
    accounts: int, databases: list[str], args: argparse.Namespace
) -> list[tuple[Case, dict[str, Any]]]:
    """A case per database, each holding the size's history: loaded now (all databases in one pass), or
    kept from an earlier run with --reuse."""
    days, raw_days, rollups = HISTORY.get(accounts, (args.days, args.days, True))
    if args.raw_days is not None:
        raw_days = min(days, args.raw_days)
    history = History(accounts, days, raw_days, hour_floor(time.time()), rollups)
    folders = {db: args.data / f"{accounts}-{db}" for db in databases}
    kept: dict[str, dict[str, Any]] = {}
    for db in databases:
        marker = folders[db] / "history.json"
        if args.reuse and marker.exists():
            kept[db] = json.loads(marker.read_text())
    fresh = [db for db in databases if db not in kept]
    if fresh:
        urls = [_fresh_database(db, accounts, folders[db], args) for db in fresh]
        loaded = asdict(
            load(urls, history, progress=_progress(f"{accounts:,} accounts into {', '.join(fresh)}"))
        )
        for db in fresh:
            kept[db] = {"history": asdict(history), "loaded": loaded}
            (folders[db] / "history.json").write_text(json.dumps(kept[db]))
    return [
        (_case(accounts, db, folders[db], History(**kept[db]["history"]), args), kept[db]["loaded"])
        for db in databases
    ]


def _case(accounts: int, database: str, folder: Path, history: History, args: argparse.Namespace) -> Case:
    interval = args.interval or max(60.0, accounts / 1000)
    url = _database_url(accounts, database, folder, args)
    return Case(
        accounts,
        database,
        url,
        folder,
        history,
        interval,
        args.cycles,
        args.scrape_cycles,
        args.warm_repeats,
        quiet=args.quiet,
        cli_repeats=args.cli_repeats,
        cold=not args.no_cold,
    )


def _database_url(accounts: int, database: str, folder: Path, args: argparse.Namespace) -> str:
    if database == "sqlite":
        return f"sqlite:///{folder / 'flockwatch.db'}"
    name = f"{args.pg_prefix}_{accounts}"
    return make_url(args.pg_admin).set(database=name).render_as_string(hide_password=False)


def _fresh_database(database: str, accounts: int, folder: Path, args: argparse.Namespace) -> str:
    """An empty database for the case; returns its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob("*.db*"):
        leftover.unlink()
    url = _database_url(accounts, database, folder, args)
    if database == "postgresql":
        name = make_url(url).database
        admin = open_engine(args.pg_admin)
        with admin.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    return url


def drop_database(case: Case, pg_admin: str) -> None:
    if case.database == "postgresql":
        admin = open_engine(pg_admin)
        with admin.connect() as conn:
            name = make_url(case.url).database
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                text(f'DROP DATABASE IF EXISTS "{name}"')
            )
        admin.dispose()
    for leftover in case.folder.glob("*.db*"):
        leftover.unlink()


def _progress(label: str) -> Any:
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        if done == total or done % max(total // 20, 100) == 0:
            print(
                f"  loading {label}: {done:,}/{total:,} accounts, {time.monotonic() - started:.0f} s",
                flush=True,
            )

    return report


# -- the whole benchmark ---------------------------------------------------------------------------------


def run_case(case: Case, loaded: dict[str, Any]) -> dict[str, Any]:
    fake = FakePlatform(case.folder, case.accounts, case.history.start, case.history.days)

    def say(what: str) -> None:
        print(f"{case.accounts:,} {case.database}: {what}", flush=True)

    try:
        say("warm start and cycles")
        runs = [measured_run(case, fake, "warm", case.cycles, case.scrape_cycles)]
        for _ in range(case.warm_repeats):
            say("warm start again")
            _until_due(case, runs[-1])
            runs.append(measured_run(case, fake, "warm", cycles=1))
        if case.cold:
            say("cold start")
            _until_due(case, runs[-1])
            runs.append(cold_start(case, fake))
        say("commands, maintenance, sizes")
        cli = cli_times(case, case.folder / "flockwatch.yml")
        maintenance = maintenance_cost(case)
        size = database_size(case)
    finally:
        fake.close()
    return {
        "accounts": case.accounts,
        "database": case.database,
        "interval": case.interval,
        "history": asdict(case.history),
        "loaded": loaded,
        "runs": [asdict(r) for r in runs],
        "cli": cli,
        "maintenance": maintenance,
        "size": size,
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    import service.detection.engine as engine_module

    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "cpus": len(__import__("os").sched_getaffinity(0)),
        "compiled": engine_module.__file__ is not None and not engine_module.__file__.endswith(".py"),
        "command": " ".join(["python -m bench.scale", *sys.argv[1:]]),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="accounts, comma-separated")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--days", type=float, default=7.0, help="days of history for sizes without a preset")
    parser.add_argument(
        "--raw-days",
        type=float,
        help="days of raw samples (as with a shorter retention.raw; default: by size)",
    )
    parser.add_argument("--interval", type=float, help="scaled poll interval in seconds (default: by size)")
    parser.add_argument("--cycles", type=int, default=3)
    parser.add_argument("--scrape-cycles", type=int, default=2)
    parser.add_argument("--warm-repeats", type=int, default=2)
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds of idle CPU measured")
    parser.add_argument("--cli-repeats", type=int, default=2)
    parser.add_argument("--data", type=Path, default=Path("/tmp/flockwatch-scale"), help="databases and logs")
    parser.add_argument("--pg-admin", default=PG_ADMIN, help="a PostgreSQL URL allowed to create databases")
    parser.add_argument("--pg-prefix", default="flockwatch_scale", help="name of the databases it creates")
    parser.add_argument("--no-cold", action="store_true", help="skip the start without saved states")
    parser.add_argument("--reuse", action="store_true", help="keep a history loaded by an earlier run")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--report", type=Path, default=REPORT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    for accounts in (int(size) for size in args.sizes.split(",")):
        for case, loaded in prepared_cases(accounts, args.databases.split(","), args):
            result = run_case(case, loaded)
            (args.results / f"scale-{accounts}-{case.database}.json").write_text(json.dumps(result, indent=1))
            if not args.keep:
                drop_database(case, args.pg_admin)
                (case.folder / "history.json").unlink(missing_ok=True)
    scale_report.write(args.results, args.report)
    print(f"written: {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
