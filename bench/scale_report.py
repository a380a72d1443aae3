"""docs/benchmarks-scale.md from the scale benchmark's result files (``bench/results/scale-*.json``)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FIFTEEN_MINUTES = 900.0
SCRAPE_INTERVAL = 30.0  # the shipped Prometheus configuration's scrape_interval
TARGETS = "100,000 accounts at a 15-minute interval on this 2-core machine"
Result = dict[str, Any]

INTRO = """# Scale: 100,000 accounts on one node

Written by `python -m bench.scale` (`make bench-scale`; the command of each run is below): the real daemon
(`python -m service run --config …`, a process of its own) polls a fast local fake of X's API v2 user lookup
(`bench/fake_platform.py`, 100 users a request, deterministic counts, a process of its own, so its CPU is not
the daemon's) through its configuration: the fake's address as `platforms.x.base_url`, its rate budget raised
to 1,000,000 requests per 15 minutes (the benchmark measures flockwatch, not X's limit), everything else the
shipped defaults (checkpoint every 15 minutes, maintenance every hour, 45 s shutdown budget). CPU and memory are
the daemon process's own, read from `/proc/<pid>/stat` and `/proc/<pid>/status` every 0.2 s (all its
threads; not PostgreSQL's server processes).

History is loaded first (`bench/scale_history.py`), as if the daemon had polled every 15 minutes: the watchlist,
raw samples, rollups, each account's last poll and detections, and each account's saved detection state from a
`DetectionEngine` run over the history. The loader writes through the Store's API (`watch_many`, `write_batch`,
`save_states`) and bulk-inserts the raw samples and rollup rows itself (COPY on PostgreSQL), which is quicker
to set up than a CSV through `flockwatch import` (measured on its own in
[benchmarks-import.md](benchmarks-import.md)). Each case's history (days in all, of which raw) is in its row
below: before the raw days the engine sees one sample an hour, as the daemon's own rebuild reads it, and only
the raw days are stored as samples and rolled up.
"""


def write(results: Path, report: Path) -> None:
    found = sorted(
        (json.loads(p.read_text()) for p in results.glob("scale-*.json")),
        key=lambda r: (r["accounts"], r["database"]),
    )
    report.write_text(render(found), encoding="utf-8")


def render(results: Sequence[Result]) -> str:
    parts = [INTRO, _runs(results), _targets(results), _startup(results), _cycles(results), _share(results)]
    parts += [_scrapes(results), _commands(results), _sizes(results), _per_year(results), _notes(results)]
    return "\n".join(parts)


# -- sections -----------------------------------------------------------------------------------------------


def _runs(results: Sequence[Result]) -> str:
    rows = [
        [
            _case(r),
            r["machine"]["date"],
            r["machine"]["command"],
            _loads(r),
            "yes" if r["machine"]["compiled"] else "no",
        ]
        for r in results
    ]
    return _section(
        "Runs",
        ["case", "when", "command", "load average (start → end of each start)", "engine compiled"],
        rows,
    )


def _targets(results: Sequence[Result]) -> str:
    big = [r for r in results if r["accounts"] >= 100_000]
    if not big:
        return "## Targets\n\nNo run at 100,000 accounts yet.\n"
    checks: list[tuple[str, Callable[[Result], tuple[float | None, str]]]] = [
        (
            "ready < 30 s with history (warm start, worst of the starts)",
            lambda r: _check(max(_warm_ready(r)), 30, "s"),
        ),
        ("RSS < 1 GiB (peak over every start)", lambda r: _check(_peak_rss(r) / 2**30, 1, "GiB", 2)),
        ("a cycle < 5 min (to the last sample stored, worst)", lambda r: _check(_worst_cycle(r), 300, "s")),
        ("< 25% of one core on average", lambda r: _check(_share_of(r), 25, "%")),
        ("/metrics p50 < 1 s (plain GET while polling)", lambda r: _check(_p(r, False, 50), 1, "s", 2)),
    ]
    rows = [[name, *(check(r)[1] for r in big)] for name, check in checks]
    return _section(f"Targets: {TARGETS}", ["target", *(_case(r) for r in big)], rows)


def _startup(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        first = r["runs"][0]
        cold = _cold(r)
        rows.append(
            [
                _case(r),
                _history(r),
                ", ".join(f"{x:.1f}" for x in _warm_ready(r)),
                f"{first['loaded'].get('seconds') or 0:.1f} ({first['loaded'].get('restored')} restored)",
                f"{first['cpu_to_ready']:.1f}",
                f"{cold['ready']:.1f}" if cold else "-",
                f"{cold['loaded'].get('samples_replayed') or 0:,}" if cold else "-",
                _mib(_peak_rss(r)),
                _mib(first["rss_steady"]),
                _phases(first),
            ]
        )
    headers = [
        "case",
        "history",
        "ready, warm (s, each start)",
        "of which states loaded (s)",
        "CPU to ready (s)",
        "ready, cold (s)",
        "cold: samples replayed",
        "peak RSS",
        "steady RSS",
        "highest RSS read: start-up / cycles / cycles with scrapes",
    ]
    note = (
        "Ready is the later of `/readyz` answering 200 and the fake seeing the first poll request, from the "
        "moment the process was started (interpreter start-up and migrations check included). A warm start "
        "finds every account's saved state; the cold start finds none (they were deleted) and rebuilds them "
        "from the raw samples (the last 30 days, hourly before the last 2). Peak RSS is the kernel's high-water "
        "mark (VmHWM) over every start of the case; steady RSS is after the measured cycles of the first start; "
        "the highest RSS read in each phase of the first start (every 0.2 s) shows where the peak comes from.\n"
    )
    return _section("Start-up and memory", headers, rows) + "\n" + note


def _cycles(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        cycles = r["runs"][0]["cycles"]
        rows.append(
            [
                _case(r),
                f"{r['interval']:g} s",
                ", ".join(f"{c['polled']:.1f}" for c in cycles),
                ", ".join(_num(c["stored"]) for c in cycles),
                ", ".join(_num(c["cpu"]) for c in cycles),
                _pct(r["runs"][0]["average_cpu_share"]),
                ", ".join(_num(run["cycles"][0]["stored"]) for run in r["runs"][1:]),
            ]
        )
    headers = [
        "case",
        "scaled interval",
        "polled (s, each cycle)",
        "stored (s)",
        "daemon CPU (s)",
        "average CPU at the scaled interval",
        "first cycle after a restart, stored (s)",
    ]
    note = (
        "A cycle runs from the fake's first request to its last answer (polled) and to the moment the database "
        "holds a sample of every account from that cycle (stored; read by the benchmark every 0.5 s). Time is "
        "scaled: every account is polled once per scaled interval, so a cycle's figures are those of a 15-minute "
        "cycle; the last cycles ran while /metrics was scraped every 5 s. The average CPU is over whole scaled "
        "intervals, scrapes included.\n"
    )
    return _section("Poll cycles", headers, rows) + "\n" + note


def _share(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        parts = _share_parts(r)
        total = sum(v for v in parts.values() if v is not None)
        rows.append(
            [_case(r), *(_num(v) for v in parts.values()), f"{total:.1f}", _pct(total / FIFTEEN_MINUTES)]
        )
    headers = [
        "case",
        "a cycle",
        "saving every state",
        "maintenance",
        "idle",
        "scrapes every 30 s",
        "CPU s per 15 min",
        "share of one core",
    ]
    note = (
        "Estimated from measured parts, per 15 minutes: one cycle (the median cycle's CPU), one checkpoint of every "
        "account's state (the CPU of stopping, which saves them all and writes the spool: an upper bound), the "
        "hourly maintenance's share (its CPU per sample rolled up, measured in the benchmark's process on the "
        "samples the runs stored, times the 4 samples per account and hour; a quarter of the run), the idle "
        "rate between cycles (scheduler ticks, the watchlist's change log every 30 s) for the rest of the "
        "15 minutes, and 30 scrapes asking for gzip (Prometheus every 30 s as shipped): one right after a cycle, "
        "which formats every account's series again, and 29 with nothing new.\n"
    )
    return _section("CPU share at a 15-minute interval", headers, rows) + "\n" + note


def _scrapes(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        scrapes = r["runs"][0]["scrapes"]
        ok = [s for s in scrapes if s["status"] == 200]
        quiet = r["runs"][0]["quiet"]
        rows.append(
            [
                _case(r),
                f"{len(ok)} of {len(scrapes)}",
                _mib(max((s["page"] for s in ok), default=0)),
                f"{_num(_p(r, False, 50), 3)} / {_num(_p(r, False, 99), 3)}",
                f"{_num(_p(r, True, 50), 3)} / {_num(_p(r, True, 99), 3)}",
                _mib(max((s["bytes"] for s in ok if s["gzip"]), default=0)),
                f"{_num(quiet.get('scrape_after_cycle'), 2)} / {_num(quiet.get('scrape_unchanged'), 2)}",
            ]
        )
    headers = [
        "case",
        "scrapes answered 200",
        "page",
        "plain p50 / p99 (s)",
        "gzip p50 / p99 (s)",
        "gzip page",
        "daemon CPU per gzip scrape: after a cycle / nothing new (s)",
    ]
    note = (
        "Scrapes are plain `urllib` GETs every 5 s while the last cycles run, every other one asking for gzip; with "
        "a few dozen scrapes the p99 is close to the slowest.\n"
    )
    return _section("/metrics while polling", headers, rows) + "\n" + note


def _commands(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        cells = [_case(r)]
        for name in ("status", "status --limit 0", "detections", "detections --active"):
            runs = r["cli"].get(name, [])
            if not runs:
                cells.append("-")
                continue
            cells.append(", ".join(f"{x['seconds']:.1f}" for x in runs) + f" ({runs[-1]['lines']:,} lines)")
        rows.append(cells)
    note = "Wall seconds of `python -m service …` (interpreter start included), each run twice, output to a pipe.\n"
    return (
        _section(
            "Commands",
            ["case", "`status`", "`status --limit 0`", "`detections`", "`detections --active`"],
            rows,
        )
        + "\n"
        + note
    )


def _sizes(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        size = r["size"]
        rows.append(
            [
                _case(r),
                f"{size['rows']['samples']:,}",
                _num(_per_row(r, "samples"), 1),
                _num(_per_row(r, "samples_hourly"), 1),
                _num(_per_row(r, "samples_daily"), 1),
                _num(_per_row(r, "detector_states"), 0),
                _mib(sum(size["bytes"].values())),
            ]
        )
    headers = [
        "case",
        "raw samples",
        "bytes per sample",
        "bytes per hourly row",
        "bytes per daily row",
        "bytes per saved state",
        "all these tables",
    ]
    note = (
        "Bytes are each table with its indexes (PostgreSQL `pg_total_relation_size`; SQLite's `dbstat` pages), "
        "after the runs, divided by its rows.\n"
    )
    return _section("Database size", headers, rows) + "\n" + note


def _per_year(results: Sequence[Result]) -> str:
    rows = []
    for database in sorted({r["database"] for r in results}):
        mine = [r for r in results if r["database"] == database]
        found = [
            _best_per_row(mine, t) for t in ("samples", "samples_hourly", "samples_daily", "detector_states")
        ]
        per = [v for v in found if v is not None]
        if len(per) < len(found):
            continue
        raw, hourly, daily, state = 90 * 96 * per[0], 180 * 24 * per[1], 365 * per[2], per[3]
        total = raw + hourly + daily + state
        rows.append(
            [
                database,
                _kib(raw),
                _kib(hourly),
                _kib(daily),
                _kib(state),
                _kib(total),
                f"{total * 100_000 / 2**30:.1f} GiB",
            ]
        )
    headers = [
        "database",
        "raw: 90 days of 96",
        "hourly: 180 days of 24",
        "daily: 365 a year (kept)",
        "saved state",
        "per account",
        "100,000 accounts",
    ]
    note = (
        "Per account after a year at 15-minute polling with the default retention (`retention.raw: 90d`, "
        "`hourly: 180d`, `daily:` kept), from the bytes per row above (the largest case that has the table). "
        "Each further year adds only the daily rows. Account events and detections are left out: a few rows an "
        "account, except for accounts whose state flaps.\n"
    )
    return _section("Bytes per account and year", headers, rows) + "\n" + note


def _notes(results: Sequence[Result]) -> str:
    return (
        "## Noise\n\nThe machine has 2 cores shared with other engineers' builds and tests (see the load averages "
        "above, taken at the start and end of every start of the daemon): wall times (ready, cycles, scrapes, "
        "commands) are the noisiest, CPU seconds less so; PostgreSQL's server runs on the same two cores and is "
        "shared with their tests.\n"
    )


# -- figures ----------------------------------------------------------------------------------------------


def _warm_ready(r: Result) -> list[float]:
    return [run["ready"] for run in r["runs"] if run["kind"] == "warm"]


def _cold(r: Result) -> Result | None:
    return next((run for run in r["runs"] if run["kind"] == "cold"), None)


def _peak_rss(r: Result) -> int:
    return max(int(run["rss_peak"]) for run in r["runs"])


def _worst_cycle(r: Result) -> float | None:
    stored = [c["stored"] for run in r["runs"] for c in run["cycles"] if c["stored"] is not None]
    return max(stored) if stored else None


def _p(r: Result, gzipped: bool, q: int) -> float | None:
    seconds: list[float] = sorted(
        s["seconds"] for s in r["runs"][0]["scrapes"] if s["status"] == 200 and s["gzip"] == gzipped
    )
    if not seconds:
        return None
    return (
        statistics.median(seconds) if q == 50 else seconds[min(len(seconds) - 1, int(q / 100 * len(seconds)))]
    )


def _share_parts(r: Result) -> dict[str, float | None]:
    first = r["runs"][0]
    cycle_cpu = statistics.median(c["cpu"] for c in first["cycles"] if c["cpu"] is not None)
    cycle_wall = statistics.median(c["stored"] for c in first["cycles"] if c["stored"] is not None)
    quiet = first["quiet"]
    maintenance = r["maintenance"]
    per_sample = maintenance["cpu"] / maintenance["samples"] if maintenance["samples"] else None
    idle = quiet.get("idle_cpu_per_second")
    after, unchanged = quiet.get("scrape_after_cycle"), quiet.get("scrape_unchanged")
    scrapes = FIFTEEN_MINUTES / SCRAPE_INTERVAL
    return {
        "cycle": cycle_cpu,
        "checkpoint": first["stop"]["cpu"],
        "maintenance": per_sample * r["accounts"] if per_sample is not None else None,
        "idle": idle * (FIFTEEN_MINUTES - cycle_wall) if idle is not None else None,
        "scrapes": (max(after, 0) + (scrapes - 1) * max(unchanged, 0)) if after is not None else None,
    }


def _share_of(r: Result) -> float:
    return 100 * sum(v for v in _share_parts(r).values() if v is not None) / FIFTEEN_MINUTES


def _per_row(r: Result, table: str) -> float | None:
    rows, size = r["size"]["rows"].get(table, 0), r["size"]["bytes"].get(table, 0)
    return size / rows if rows else None


def _best_per_row(results: Sequence[Result], table: str) -> float | None:
    having = [r for r in results if r["size"]["rows"].get(table)]
    return _per_row(max(having, key=lambda r: r["size"]["rows"][table]), table) if having else None


def _check(value: float | None, limit: float, unit: str, digits: int = 1) -> tuple[float | None, str]:
    if value is None:
        return None, "not measured"
    verdict = "met" if value < limit else "**missed**"
    return value, f"{value:,.{digits}f} {unit}: {verdict}"


# -- formatting -------------------------------------------------------------------------------------------


def _case(r: Result) -> str:
    return f"{r['accounts']:,} on {'SQLite' if r['database'] == 'sqlite' else 'PostgreSQL'}"


def _history(r: Result) -> str:
    h, loaded = r["history"], r["loaded"]
    raw = f"{h['raw_days']:g} raw" if h["raw_days"] != h["days"] else "all raw"
    return f"{h['days']:g} days ({raw}), {loaded['samples']:,} samples, states {loaded['state_bytes'] // max(loaded['states'], 1):,} B"


def _loads(r: Result) -> str:
    return "; ".join(" → ".join(f"{x:.1f}" for x in run["load"]) for run in r["runs"])


def _section(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = [f"## {title}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _phases(run: dict[str, Any]) -> str:
    phases = run.get("rss_phases") or {}
    names = ("start-up", "cycles", "cycles with scrapes")
    return " / ".join(_mib(phases[name]) if phases.get(name) else "-" for name in names)


def _mib(size: float) -> str:
    return f"{size / 2**20:,.0f} MiB"


def _kib(size: float) -> str:
    return f"{size / 1024:,.0f} KiB"
