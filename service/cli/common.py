"""What the commands share: finding and loading the configuration, printing problems, tables."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

# The configuration and database modules are imported by the functions that use them: ``flockwatch
# backtest`` needs neither, and importing them (pydantic, SQLAlchemy) costs about a second.
if TYPE_CHECKING:
    from sqlalchemy import Engine

    from service.config import Config, ConfigError
    from service.store.repository import Store

EXIT_BAD_INPUT = 2


class CommandError(Exception):
    """Bad input or an unusable setup: printed without a traceback, exit code 2."""


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=os.environ.get("FLOCKWATCH_CONFIG"),
        help="YAML configuration file (default: $FLOCKWATCH_CONFIG; without one, defaults and FLOCKWATCH_* variables)",
    )


def load_config(args: argparse.Namespace) -> Config:
    from service.config import ConfigError, load

    try:
        return load(args.config)
    except ConfigError as exc:
        raise CommandError(describe_config_error(exc)) from None


def describe_config_error(exc: ConfigError) -> str:
    lines = [
        f"{exc.source} is not valid ({len(exc.problems)} problem{'s' if len(exc.problems) > 1 else ''}):"
    ]
    return "\n".join([*lines, *(f"  {problem}" for problem in exc.problems)])


@contextmanager
def open_database(url: str) -> Iterator[Engine]:
    """The database at ``url``, migrated to the newest schema, closed afterwards."""
    from sqlalchemy.exc import SQLAlchemyError

    from service.store.database import DatabaseError, open_engine, safe_url, upgrade

    try:
        engine = open_engine(url)
    except DatabaseError as exc:
        raise CommandError(str(exc)) from None
    except ImportError:  # a URL naming a database or driver flockwatch does not ship
        raise CommandError(
            f"database.url names a database flockwatch cannot use: {safe_url(url)} "
            "(use sqlite:///PATH or postgresql+psycopg://USER@HOST/NAME)"
        ) from None
    # Bulk paths (import) use the driver's own cursors: its errors are database errors too.
    driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    try:
        if not _schema_is_current(engine):
            upgrade(engine)
        yield engine
    except (DatabaseError, SQLAlchemyError, driver_error) as exc:
        raise CommandError(
            str(exc) if isinstance(exc, DatabaseError) else f"database error: {_first_line(exc)}"
        ) from None
    finally:
        engine.dispose()


@contextmanager
def open_store(url: str) -> Iterator[Store]:
    from service.store.repository import Store

    with open_database(url) as engine:
        yield Store(engine)


def add_database_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument(
        "--db", metavar="URL", help="database URL (default: the configuration's database.url)"
    )


def database_url(args: argparse.Namespace) -> str:
    """``--db``, else $FLOCKWATCH_DATABASE__URL when no configuration file is named (without loading the
    configuration machinery), else the configuration's database.url."""
    if args.db:
        return str(args.db)
    from_env = os.environ.get("FLOCKWATCH_DATABASE__URL")
    if from_env and not args.config:
        return from_env
    return load_config(args).database.url


_REVISION = re.compile(r"^(down_revision|revision)\b[^=]*=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)


def _schema_is_current(engine: Engine) -> bool:
    """True when the database is at the newest migration, found with one query and a look at the
    migration files: read-only commands then skip Alembic, a tenth of a second to import. Anything
    unexpected answers False, and the caller migrates (which is always safe)."""
    from importlib.resources import files

    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (files("migrations") / "versions").iterdir():
        if script.name.endswith(".py"):
            for name, value in _REVISION.findall(script.read_text(encoding="utf-8")):
                (revisions if name == "revision" else parents).add(value)
    heads = revisions - parents
    try:
        with engine.connect() as conn:
            current = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except SQLAlchemyError:
        return False
    return len(heads) == 1 and current == heads


def _first_line(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def fail(message: str) -> int:
    print(f"flockwatch: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=False)).rstrip()
        for line in lines
    )


class ProgressBar:
    """One line on stderr, redrawn in place: a bar and the share done when known, the count, the rate and
    the time left. Redrawn at most every half second on a terminal, every 10 s into a file or pipe."""

    def __init__(
        self,
        label: str,
        unit: str = "rows",
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.unit = unit
        self.out = out or sys.stderr
        self.clock = clock
        self.started = clock()
        self._drawn = float("-inf")
        self._every = 0.5 if self.out.isatty() else 10.0
        self._line = ""

    def __call__(self, done: int, fraction: float | None = None) -> None:
        now = self.clock()
        if now - self._drawn >= self._every:
            self._drawn = now
            self._draw(done, fraction, now)

    def finish(self, done: int) -> None:
        self._draw(done, 1.0, self.clock())
        self.out.write("\n")
        self.out.flush()

    def _draw(self, done: int, fraction: float | None, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        parts = [self.label]
        if fraction is not None:
            filled = int(30 * min(max(fraction, 0.0), 1.0))
            parts[0] += f" [{'#' * filled}{' ' * (30 - filled)}] {fraction:4.0%}"
        if done:
            parts.append(f"{done:,} {self.unit}  {done / elapsed:,.0f} {self.unit}/s")
        if fraction is not None and 0 < fraction < 1:
            parts.append(f"ETA {_duration(elapsed * (1 - fraction) / fraction)}")
        else:
            parts.append(f"in {_duration(elapsed)}")
        line = "  ".join(parts)
        self.out.write("\r" + line.ljust(len(self._line)))
        self.out.flush()
        self._line = line


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


FORMATS = ("table", "jsonl", "csv")


def add_listing_options(parser: argparse.ArgumentParser, sorts: Sequence[str], default: str) -> None:
    """--limit, --sort, --reverse and --format, as ``status`` and ``detections`` take them."""
    parser.add_argument(
        "--limit", type=row_limit, default=50, metavar="N", help="at most N rows (default 50; 0: all)"
    )
    parser.add_argument(
        "--sort", choices=sorts, default=default, help=f"order of the rows (default {default})"
    )
    parser.add_argument("--reverse", action="store_true", help="sort the other way round")
    parser.add_argument("--format", choices=FORMATS, default="table", help="table (default), jsonl or csv")


def row_limit(text: str) -> int:
    """A ``--limit`` argument: a whole number, 0 for no limit."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (all) or more")
    return value


def write_listing(
    form: str,
    records: Sequence[dict[str, object]],
    table_text: Callable[[], str],
    more: int,
    out: TextIO | None = None,
) -> None:
    """The rows as a table (and a line saying how many more match), JSON lines or CSV (the count of the
    rows left out then goes to stderr, keeping the output machine-readable)."""
    import csv
    import json

    out = out or sys.stdout
    if form == "table":
        out.write(table_text() + "\n")
    elif form == "jsonl":
        out.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    elif records:
        writer = csv.DictWriter(out, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    if more > 0:
        note = f"... and {more:,} more (--limit 0 lists them all)"
        print(note, file=out if form == "table" else sys.stderr)


def platform_name(text: str) -> str:
    """A ``--platform`` argument: one of the declared platforms."""
    from service.accounts import PLATFORMS

    if text.lower() not in PLATFORMS:
        raise argparse.ArgumentTypeError(f"unknown platform {text[:40]!r} (known: {', '.join(PLATFORMS)})")
    return text.lower()


def kind_name(text: str) -> str:
    """A ``--kind`` argument: one of the detection kinds."""
    from service.detection.base import KINDS

    if text not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown kind {text[:40]!r} (known: {', '.join(KINDS)})")
    return text


def describe_os_error(exc: OSError) -> str:
    """An OSError in one line: what went wrong and with which file."""
    what = exc.strerror or str(exc) or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    return f"{what}: {where}" if where is not None else what
