"""What the commands share: finding and loading the configuration, printing problems, tables."""

from __future__ import annotations

import argparse
import os
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

    from service.store.database import DatabaseError, open_engine, upgrade

    try:
        engine = open_engine(url)
    except DatabaseError as exc:
        raise CommandError(str(exc)) from None
    # Bulk paths (import) use the driver's own cursors: its errors are database errors too.
    driver_error: type[Exception] = engine.dialect.loaded_dbapi.Error
    try:
        upgrade(engine)
        yield engine
    except (DatabaseError, SQLAlchemyError, driver_error) as exc:
        raise CommandError(
            str(exc) if isinstance(exc, DatabaseError) else f"database error: {_first_line(exc)}"
        ) from None
    finally:
        engine.dispose()


@contextmanager
def open_store(config: Config) -> Iterator[Store]:
    from service.store.repository import Store

    with open_database(config.database.url) as engine:
        yield Store(engine)


def add_database_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument(
        "--db", metavar="URL", help="database URL (default: the configuration's database.url)"
    )


def database_url(args: argparse.Namespace) -> str:
    return str(args.db) if args.db else load_config(args).database.url


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
            parts.append(f"[{'#' * filled}{' ' * (30 - filled)}] {fraction:4.0%}")
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
