"""What the commands share: finding and loading the configuration, printing problems, tables."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

# The configuration and database modules are imported by the functions that use them: ``flockwatch
# backtest`` needs neither, and importing them (pydantic, SQLAlchemy) costs about a second.
if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.exc import SQLAlchemyError

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
    try:
        upgrade(engine)
        yield engine
    except (DatabaseError, SQLAlchemyError) as exc:
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


def _first_line(exc: SQLAlchemyError) -> str:
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
