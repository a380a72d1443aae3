"""``backtest``, ``import`` and ``detections``: the detection engine from the command line.

``backtest`` runs without a database: the database modules are imported by the commands that use one.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import io
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from service.accounts import AccountError, AccountRef
from service.cli.common import (
    CommandError,
    ProgressBar,
    add_database_options,
    add_listing_options,
    database_url,
    kind_name,
    open_database,
    open_store,
    platform_name,
    write_listing,
)
from service.store.queries import DETECTION_SORTS, SEVERITIES, DetectionQuery

# The engine, the CSV reader and the database modules are imported by the commands that use them: every
# flockwatch command imports this module to build its parser, and `status` needs none of them.
if TYPE_CHECKING:
    from service.detection.base import Detection
    from service.detection.csvinput import ReadRecords, ReadResult, Record
    from service.detection.importer import Importer, ImportReport

EXIT_BAD_INPUT = 2
Loaded = TypeVar("Loaded", "ReadResult", "ReadRecords")


def register(subparsers: Any) -> None:
    backtest = subparsers.add_parser(
        "backtest",
        help="replay a CSV history through the detectors, without a database",
        description="Replay FILE.csv (timestamp,account,followers[,following][,posts]) in time order and "
        "write one line per detection.",
    )
    backtest.add_argument("file", type=Path, metavar="FILE.csv")
    backtest.add_argument("--format", choices=("jsonl", "table"), default="jsonl")
    backtest.add_argument("--skip-bad-rows", action="store_true", help="count malformed rows and go on")
    backtest.set_defaults(handler=run_backtest)

    importer = subparsers.add_parser(
        "import",
        help="load a CSV history into the database and run the detectors over it",
    )
    importer.add_argument("file", type=Path, metavar="FILE.csv")
    importer.add_argument("--skip-bad-rows", action="store_true", help="count malformed rows and go on")
    add_database_options(importer)
    importer.set_defaults(handler=run_import)

    listing = subparsers.add_parser(
        "detections",
        help="list stored detections, newest first",
        description="Stored detections, filtered and sorted in the database.",
    )
    listing.add_argument("account", nargs="?", metavar="ACCOUNT", help="only this account (platform:handle)")
    listing.add_argument("--active", action="store_true", help="only anomalies still going on")
    listing.add_argument("--platform", type=platform_name, help="only this platform")
    listing.add_argument("--kind", type=kind_name, help="only this kind of anomaly")
    listing.add_argument("--severity", choices=SEVERITIES, help="only detections at least this severe")
    add_listing_options(listing, DETECTION_SORTS, "detected")
    add_database_options(listing)
    listing.set_defaults(handler=run_detections)


def run_backtest(args: argparse.Namespace) -> int:
    from service.detection.csvinput import read_records
    from service.detection.engine import DetectionEngine
    from service.detection.replay import replay_records
    from service.memory import fewer_collections

    loaded = _load(args.file, args.skip_bad_rows, read_records)
    if loaded is None:
        return EXIT_BAD_INPUT
    records = loaded.records
    _say(f"replaying {len(records):,} samples of {loaded.accounts:,} accounts from {args.file}")
    _warn_of_the_future(records)
    found = []
    jsonl = args.format == "jsonl"
    # The rows live to the end and the engine makes no reference cycles in its stride
    with fewer_collections():
        for detection in replay_records(records, DetectionEngine(), progress=_progress("replayed")):
            if jsonl:
                print(json.dumps(detection.public(), ensure_ascii=False), flush=False)
            found.append(detection)
    if args.format == "table":
        write_table(found, sys.stdout)
    _say(f"done: {len(found):,} detections ({_by_kind(found)})")
    return 0


def _warn_of_the_future(records: Sequence[Record]) -> None:
    """Rows dated after now + 5 minutes (a clock error upstream) are replayed, but ``import`` refuses
    them: say so. The rows are sorted by time, so a bisection counts them."""
    from service.detection.csvinput import FUTURE_TOLERANCE

    cut = time.time() + FUTURE_TOLERANCE.total_seconds()
    later = len(records) - bisect.bisect_right(records, cut, key=itemgetter(0))
    if later:
        _say(f"warning: {later:,} rows are dated in the future (after now + 5 minutes); import refuses them")


def run_import(args: argparse.Namespace) -> int:
    from service.clock import SystemClock
    from service.detection.importer import Importer

    # A stop asked by `kill`, systemd or a timeout ends the import as Ctrl-C does: rolled back, cleaned up
    signal.signal(signal.SIGTERM, _interrupt)
    with open_database(database_url(args)) as database:
        importer = Importer(database, SystemClock())
        report = _import_samples(importer, args.file, args.skip_bad_rows)
        if report.findings is not None:  # done beside the import: what is left takes a moment
            importer.roll_up_and_analyse(report)
            _say(f"rolled up and analysed {report.analysed:,} samples while importing them")
        else:
            bar = ProgressBar("rolling up and analysing", unit="samples")
            importer.roll_up_and_analyse(report, bar)
            bar.finish(report.analysed)
    _say(
        f"done: {report.detections:,} detection versions stored, "
        f"{report.states:,} account states saved for the daemon"
    )
    return 0


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _import_samples(importer: Importer, path: Path, skip_bad_rows: bool) -> ImportReport:
    from service.detection.csvinput import BadRow

    bar = ProgressBar("importing")
    try:
        report = importer.load(path, skip_bad_rows, bar)
    except BadRow as exc:
        raise CommandError(
            f"{exc}\nnothing was imported (a file is imported whole or not at all; "
            "--skip-bad-rows passes over bad rows)"
        ) from None
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    bar.finish(report.rows)
    skipped = report.skipped
    if skipped.count:
        future = f", {skipped.future:,} of them dated in the future" if skipped.future else ""
        _say(f"skipped {skipped.count:,} bad rows{future}; first: {skipped.first[0]}")
    _say(
        f"stored {report.added:,} new samples ({report.rows - report.added:,} were already there) "
        f"of {len(report.accounts):,} accounts ({report.new_accounts:,} added to the watchlist)"
    )
    return report


def run_detections(args: argparse.Namespace) -> int:
    account = None
    if args.account:
        try:
            account = str(AccountRef.parse(args.account))
        except AccountError as exc:
            raise CommandError(_shorten(str(exc))) from None
    query = DetectionQuery(
        account=account,
        platform=args.platform,
        kind=args.kind,
        severity=args.severity,
        active=args.active,
        sort=args.sort,
        reverse=args.reverse,
        limit=args.limit or None,
    )
    from service.detection.recorder import detection_of

    with open_store(database_url(args)) as store:
        page = store.detection_page(query)
    found = [detection_of(row, row.key) for row in page.rows]
    write_listing(
        args.format, [d.public() for d in found], lambda: _table_text(found), page.total - len(found)
    )
    return 0


def _table_text(found: Sequence[Detection]) -> str:
    out = io.StringIO()
    write_table(found, out)
    return out.getvalue().rstrip("\n")


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _load(path: Path, skip_bad_rows: bool, read: Callable[[Path, bool], Loaded]) -> Loaded | None:
    from service.detection.csvinput import BadRow

    try:
        loaded = read(path, skip_bad_rows)
    except BadRow as exc:
        _say(f"flockwatch: {exc}")
        return None
    except OSError as exc:
        _say(f"flockwatch: cannot read {path}: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError:
        _say(f"flockwatch: {path} is not UTF-8 text")
        return None
    except csv.Error as exc:  # e.g. a quoted cell longer than the csv module takes
        _say(f"flockwatch: {path} is not a CSV file it can read: {exc}")
        return None
    if loaded.skipped:
        _say(f"skipped {len(loaded.skipped):,} malformed rows; first: {loaded.skipped[0]}")
    return loaded


TABLE_COLUMNS = ("account", "kind", "severity", "started", "detected", "ended", "score", "summary")


def write_table(detections: Sequence[Detection], out: TextIO) -> None:
    from service.detection.base import iso

    rows = [
        (
            d.account,
            d.kind,
            str(d.severity),
            _short(iso(d.started_at)),
            _short(iso(d.detected_at)),
            _short(iso(d.ended_at)) if d.ended_at else "ongoing",
            f"{d.score:.2f}",
            d.summary,
        )
        for d in detections
    ]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(TABLE_COLUMNS[:-1])]
    header = [c.upper().ljust(w) for c, w in zip(TABLE_COLUMNS, widths, strict=False)]
    out.write("  ".join(header) + "  SUMMARY\n")
    for row in rows:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1] + "\n")
    if not rows:
        out.write("(no detections)\n")


def _short(stamp: str) -> str:
    return stamp[:16].replace("T", " ")


def _by_kind(detections: Sequence[Detection]) -> str:
    counts = Counter(d.kind for d in detections)
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress(verb: str) -> Any:
    def report(done: int, total: int) -> None:
        _say(f"{verb} {done:,} of {total:,} samples")

    return report


def _bar(label: str) -> Any:
    def report(done: int, total: int) -> None:
        filled = 30 * done // max(total, 1)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{label} [{'#' * filled}{' ' * (30 - filled)}] {done:,}/{total:,}{end}")
        sys.stderr.flush()

    return report
