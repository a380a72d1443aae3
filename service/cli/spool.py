"""``spool``: what the local spool holds (samples polled but not yet in the database, records the database
refused), and ``--requeue`` to put the refused ones back in line once the cause is fixed."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from service.cli.common import CommandError, add_config_option, load_config, row_limit, table, write_listing

DEFAULT_LIMIT = 50


def register(subparsers: Any) -> None:
    spool = subparsers.add_parser(
        "spool",
        help="what the local spool holds: pending samples, quarantined records and their reasons",
        description="The spool (spool.path, else beside a SQLite database, else ./flockwatch-spool.db) "
        "holds what was polled until the database has it, and the records the database refused.",
    )
    add_config_option(spool)
    spool.add_argument(
        "--requeue", action="store_true", help="put every quarantined record back in line for the database"
    )
    spool.add_argument(
        "--limit",
        type=row_limit,
        default=DEFAULT_LIMIT,
        metavar="N",
        help="quarantined records shown (0: all)",
    )
    spool.add_argument("--format", choices=("table", "jsonl", "csv"), default="table")
    spool.set_defaults(handler=cmd_spool)


def cmd_spool(args: argparse.Namespace) -> int:
    from service.daemon import spool_path
    from service.spool import Spool

    path = spool_path(load_config(args))
    if not path.exists():
        print(f"spool:       {path} (none yet: nothing is waiting for the database)")
        return 0
    if not path.is_file():
        raise CommandError(f"the spool path is not a file: {path}")
    try:
        spool = Spool(path)
    except sqlite3.Error as exc:
        raise CommandError(f"cannot open the spool at {path}: {exc}") from None
    try:
        _show(spool, args)
    finally:
        spool.close()
    return 0


def _show(spool: Any, args: argparse.Namespace) -> None:
    if args.requeue:
        moved = spool.requeue()
        print(f"requeued {moved:,} quarantined records: the daemon writes them with the next batches")
    quarantined = spool.quarantined()
    print(f"spool:       {spool.path}")
    print(
        f"pending:     {spool.pending_samples:,} samples in {spool.pending_batches:,} batches, "
        f"{_size(spool.live_bytes)} on disk"
    )
    print(f"quarantined: {len(quarantined):,} records the database refused")
    if not quarantined:
        return
    shown = quarantined[: args.limit or None]
    records = [{"id": q.id, "at": q.at.isoformat(), "kind": q.kind, "reason": q.reason} for q in shown]
    rows = [[str(q.id), q.at.strftime("%Y-%m-%d %H:%M:%S"), q.kind, q.reason] for q in shown]
    write_listing(
        args.format,
        records,
        lambda: table(["ID", "AT (UTC)", "KIND", "REASON"], rows),
        len(quarantined) - len(shown),
    )


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB"):
        if value < 1024:
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"
